"""The steps need no internet: in AWS they run in private subnets with no NAT in dev.

Each test runs with a socket guard that refuses every connection that does not stay on this machine
(the embedded AWS is on 127.0.0.1, as a VPC endpoint would be inside the VPC), with no local copy of
BANKING77 and an empty download cache: what a Lambda or training task in AWS has.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localaws import LocalAWS
from model.config import Settings
from model.data import LABELS_KEY, DataSourceError, s3_client
from pipelines.seed_data import write_labelled_csv, write_labels
from pipelines.validate_data import load_validated

BUCKET = "esteira-dev-data"


class Refused(OSError):
    """A connection that would leave the VPC."""


@pytest.fixture()
def no_internet(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Refuse non-loopback connections; returns the addresses that were refused."""
    refused: list[Any] = []
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def local(host: Any) -> bool:
        if host in (None, "localhost"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        if not local(address[0] if isinstance(address, tuple) else address):
            refused.append(address)
            raise Refused(f"no route to the internet from a private subnet: {address}")
        return connect(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not local(host):
            refused.append(host)
            raise socket.gaierror(f"no route to the internet from a private subnet: {host}")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return refused


@pytest.fixture()
def aws_like(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Seed the data bucket from BANKING77 here, then take away the local copy, as in AWS."""
    with LocalAWS(workdir=tmp_path / "localaws") as aws:
        for key, value in aws.env().items():
            monkeypatch.setenv(key, value)
        settings = Settings.from_env()
        aws.client("s3").create_bucket(Bucket=BUCKET)
        write_labels(BUCKET, settings)
        data = load_validated("banking77:test", settings=settings)
        write_labelled_csv(f"s3://{BUCKET}/train/seed.csv", data.texts[:400], data.labels[:400], settings)
        monkeypatch.delenv("ESTEIRA_DATA_DIR", raising=False)
        monkeypatch.setenv("ESTEIRA_CACHE_DIR", str(tmp_path / "empty-cache"))
        monkeypatch.setenv("ESTEIRA_LABELS_URI", f"s3://{BUCKET}/{LABELS_KEY}")  # as Terraform sets it
        yield Settings.from_env()


def test_validation_reads_the_taxonomy_from_the_data_bucket(aws_like: Settings, no_internet: list[Any]) -> None:
    data = load_validated(f"s3://{BUCKET}/train/", settings=aws_like)
    assert len(data.texts) == 400
    assert no_internet == []


def test_without_the_labels_uri_the_step_would_reach_for_the_internet(
    aws_like: Settings, no_internet: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard is real: the old behaviour (download the labels at run time) fails under it."""
    monkeypatch.delenv("ESTEIRA_LABELS_URI")
    with pytest.raises(DataSourceError, match="could not download"):
        load_validated(f"s3://{BUCKET}/train/", settings=Settings.from_env())
    assert no_internet, "the download was not attempted"


@pytest.mark.slow  # trains and evaluates in subprocesses with no route out: ~16 s
def test_training_and_evaluation_run_with_no_route_out(
    aws_like: Settings,
    settings: Settings,
    slice_files: dict[str, Path],
    no_internet: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The data, training and evaluation steps, as the workflow runs them: S3 in, MLflow (private) out."""

    from pipelines.evaluate import evaluate
    from pipelines.train import train

    s3 = Settings.from_env()
    for split, name in (("train", "train"), ("eval", "test")):
        body = slice_files[name].read_bytes()
        s3_client(s3).put_object(Bucket=BUCKET, Key=f"{split}-slice/part.csv", Body=body)
    step = settings.replace(labels_uri=s3.labels_uri, data_dir=None, cache_dir=s3.cache_dir)
    step = step.replace(aws_endpoint_url=s3.aws_endpoint_url)
    trained = train(f"s3://{BUCKET}/train-slice/", f"s3://{BUCKET}/eval-slice/", settings=step)
    verdict = evaluate(trained["model_version"], f"s3://{BUCKET}/eval-slice/", settings=step)
    assert verdict["model_version"] == trained["model_version"]
    assert no_internet == []


def test_a_missing_taxonomy_names_its_uri(aws_like: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESTEIRA_LABELS_URI", f"s3://{BUCKET}/labels/missing.json")
    with pytest.raises(DataSourceError, match="labels/missing.json"):
        load_validated(f"s3://{BUCKET}/train/", settings=Settings.from_env())


def test_terraform_gives_every_step_the_labels_uri() -> None:
    tf = Path(__file__).resolve().parents[2] / "infra/terraform"
    module = " ".join((tf / "modules/workflow/main.tf").read_text().split())
    root = " ".join((tf / "main.tf").read_text().split())
    assert 'ESTEIRA_LABELS_URI = "s3://${var.bucket_names["data"]}/${var.labels_key}"' in module
    assert "labels_key = local.contract.labels_key" in root  # the same key seed_data writes (LABELS_KEY)
    assert LABELS_KEY == "labels/categories.json"
