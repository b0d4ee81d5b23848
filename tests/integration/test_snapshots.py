"""Data snapshots by content hash (pipelines/snapshot.py): written once, reused, verified on read, and an
old model version's training data can be re-read and re-hashed after `train/` has changed.

S3 is moto in this process; MLflow is the real server of tests/conftest.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from model.classifier import ModelParams
from model.config import Settings
from model.data import DataSourceError
from model.validate import DataValidationError, ValidatedData, dataset_hash
from pipelines import registry, snapshot
from pipelines.evaluate import evaluate
from pipelines.train import train
from pipelines.validate_data import load_validated, validate_data

BUCKET = "esteira-data-test"
FAST = ModelParams(estimator="svm", calibration_folds=0, n_jobs=1)


def rows(n: int = 30) -> ValidatedData:
    texts = [f"where is my card number {i}" for i in range(n)]
    labels = ["card_arrival" if i % 2 else "lost_or_stolen_card" for i in range(n)]
    return ValidatedData("train.csv", texts, labels, dataset_hash(texts, labels), "category")


@pytest.fixture()
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


# ---- settings


def test_the_root_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ESTEIRA_SNAPSHOT_URI", raising=False)
    monkeypatch.delenv("ESTEIRA_DATA_BUCKET", raising=False)
    monkeypatch.setenv("ESTEIRA_CACHE_DIR", str(tmp_path))
    assert Settings.from_env().snapshot_root() == str(tmp_path / "snapshots")
    monkeypatch.setenv("ESTEIRA_DATA_BUCKET", "data-bucket")
    assert Settings.from_env().snapshot_root() == "s3://data-bucket/snapshots/"  # contract.yaml snapshots_prefix
    monkeypatch.setenv("ESTEIRA_SNAPSHOT_URI", "s3://elsewhere/kept/")
    assert Settings.from_env().snapshot_root() == "s3://elsewhere/kept/"


def test_uris_name_the_hash() -> None:
    data = rows()
    settings = Settings(snapshot_uri="s3://b/snapshots/")
    uri = snapshot.snapshot_uri_for(data.dataset_hash, settings)
    assert uri == f"s3://b/snapshots/sha256={data.dataset_hash[7:]}/"
    assert snapshot.is_snapshot_uri(uri) and snapshot.is_snapshot_uri(uri.rstrip("/"))
    assert snapshot.hash_of_uri(uri) == data.dataset_hash
    assert not snapshot.is_snapshot_uri("s3://b/train/")
    with pytest.raises(ValueError):
        snapshot.snapshot_uri_for("md5:abc", settings)


# ---- local folder


def test_local_write_reuse_and_verify(tmp_path: Path) -> None:
    settings = Settings(snapshot_uri=str(tmp_path / "snaps"))
    data = rows()
    first = snapshot.ensure(data, settings)
    assert first.written and first.uri.endswith(f"sha256={data.dataset_hash[7:]}/")
    folder = Path(first.uri)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert set(before) == {"rows.jsonl", "manifest.json"}
    info = json.loads(before["manifest.json"])
    assert info["dataset_hash"] == data.dataset_hash and info["rows"] == 30 and info["intents"] == 2
    assert info["source"] == "train.csv" and info["created"].endswith("Z")
    # The same rows in another order are the same data set: reused, nothing rewritten.
    shuffled = replace(data, texts=data.texts[::-1], labels=data.labels[::-1], source="other.csv")
    again = snapshot.ensure(shuffled, settings)
    assert not again.written and again.uri == first.uri
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    back = snapshot.read(first.uri, settings)
    assert back.dataset_hash == data.dataset_hash and back.texts == data.texts and back.labels == data.labels
    # load_validated takes the snapshot URI like any other source (no taxonomy needed: it is re-hashed).
    assert load_validated(first.uri, settings=settings).dataset_hash == data.dataset_hash
    # Data read from a snapshot is already kept: ensure returns its URI and touches nothing.
    assert snapshot.ensure(back, Settings(snapshot_uri=str(tmp_path / "other"))).uri == first.uri
    assert not (tmp_path / "other").exists()


def test_local_tampering_is_refused(tmp_path: Path) -> None:
    settings = Settings(snapshot_uri=str(tmp_path))
    uri = snapshot.ensure(rows(), settings).uri
    path = Path(uri) / "rows.jsonl"
    path.write_text(path.read_text().replace("card_arrival", "lost_or_stolen_card", 1))
    with pytest.raises(DataValidationError, match="the snapshot was altered"):
        load_validated(uri, settings=settings)
    (Path(uri) / "manifest.json").unlink()
    with pytest.raises(DataSourceError, match="not a complete snapshot"):
        snapshot.read(uri, settings)


def test_an_interrupted_write_is_completed_not_replaced(tmp_path: Path) -> None:
    settings = Settings(snapshot_uri=str(tmp_path))
    data = rows()
    uri = snapshot.ensure(data, settings).uri
    (Path(uri) / "manifest.json").unlink()  # as if the writer stopped between the two files
    done = snapshot.ensure(data, settings)
    assert done.written and (Path(uri) / "manifest.json").is_file()
    assert snapshot.read(uri, settings).dataset_hash == data.dataset_hash


# ---- S3 (moto)


def test_s3_write_is_conditional_and_reused(s3: object, tmp_path: Path) -> None:
    settings = Settings(snapshot_uri=f"s3://{BUCKET}/snapshots/", cache_dir=tmp_path)
    client = boto3.client("s3", region_name="us-east-1")
    data = rows()
    first = snapshot.ensure(data, settings)
    prefix = f"snapshots/sha256={data.dataset_hash[7:]}/"
    assert first.written and first.uri == f"s3://{BUCKET}/{prefix}"
    keys = {o["Key"]: o["ETag"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert set(keys) == {prefix + "rows.jsonl", prefix + "manifest.json"}
    assert not snapshot.ensure(data, settings).written
    assert {o["Key"]: o["ETag"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]} == keys
    # The conditional put itself refuses to replace (moto implements If-None-Match: *).
    with pytest.raises(client.exceptions.ClientError, match="PreconditionFailed"):
        client.put_object(Bucket=BUCKET, Key=prefix + "rows.jsonl", Body=b"{}", IfNoneMatch="*")
    assert snapshot.read(first.uri, settings).texts == data.texts
    # A manifest lost after the rows landed: completed from the rows already there (re-hashed first).
    client.delete_object(Bucket=BUCKET, Key=prefix + "manifest.json")
    assert snapshot.ensure(data, settings).written
    # Altered rows in S3 fail loudly on read.
    client.put_object(Bucket=BUCKET, Key=prefix + "rows.jsonl", Body=b'{"text": "x", "label": "card_arrival"}\n')
    with pytest.raises(DataValidationError, match="altered"):
        load_validated(first.uri, settings=settings)


# ---- the validate step, and the test: an old version's data survives a change to train/


def put_csv(client: object, key: str, frame: pd.DataFrame) -> None:
    client.put_object(Bucket=BUCKET, Key=key, Body=frame.to_csv(index=False).encode())  # type: ignore[attr-defined]


def test_validate_snapshots_both_and_old_versions_keep_their_data(
    s3: object, settings: Settings, slice_files: dict[str, Path]
) -> None:
    settings = settings.replace(snapshot_uri=f"s3://{BUCKET}/snapshots/")
    train_frame, eval_frame = pd.read_csv(slice_files["train"]), pd.read_csv(slice_files["test"])
    put_csv(s3, "train/part-000.csv", train_frame.iloc[:400])
    put_csv(s3, "eval/part-000.csv", eval_frame)

    out = validate_data(f"s3://{BUCKET}/train/", eval_uri=f"s3://{BUCKET}/eval/", settings=settings)
    assert out["status"] == "valid" and out["train"]["snapshot"] == "written" == out["eval"]["snapshot"]
    assert out["dataset_hash"] == out["train"]["dataset_hash"]  # the older top-level shape still holds
    train_snap, eval_snap = out["train"]["snapshot_uri"], out["eval"]["snapshot_uri"]
    assert train_snap == f"s3://{BUCKET}/snapshots/sha256={out['train']['dataset_hash'][7:]}/"
    # Validating the same rows again reuses both snapshots.
    again = validate_data(f"s3://{BUCKET}/train/", eval_uri=f"s3://{BUCKET}/eval/", settings=settings)
    assert again["train"]["snapshot"] == "reused" == again["eval"]["snapshot"]
    assert again["train"]["snapshot_uri"] == train_snap

    # Train on the snapshots, as the workflow does: the run and the version point to them.
    res = train(train_snap, eval_snap, params=FAST, settings=settings)
    assert res["dataset_snapshot"] == train_snap and res["eval_dataset_snapshot"] == eval_snap
    client = registry.client(settings)
    version = client.get_model_version(settings.registered_model_name, res["model_version"])
    run = client.get_run(res["run_id"])
    for tags in (version.tags, run.data.tags):
        assert tags["dataset_snapshot"] == train_snap and tags["eval_dataset_snapshot"] == eval_snap
        assert tags["dataset_hash"] == out["train"]["dataset_hash"]

    # train/ changes: one row is reworded and a labelling batch lands.
    changed = train_frame.iloc[:400].copy()
    texts = changed["text"].astype(str).tolist()
    changed["text"] = [texts[0] + " please", *texts[1:]]
    put_csv(s3, "train/part-000.csv", changed)
    put_csv(s3, "train/part-001.csv", train_frame.iloc[400:])
    newer = validate_data(f"s3://{BUCKET}/train/", settings=settings)
    assert newer["train"]["dataset_hash"] != version.tags["dataset_hash"] and "eval" not in newer

    # The old version's training data: re-read from its recorded snapshot, re-hashed to its recorded hash.
    old = load_validated(version.tags["dataset_snapshot"], settings=settings)
    assert old.dataset_hash == version.tags["dataset_hash"] == dataset_hash(old.texts, old.labels)
    assert len(old.texts) == out["train"]["rows"]
    assert snapshot.manifest(version.tags["dataset_snapshot"], settings)["source"] == f"s3://{BUCKET}/train/"

    # Evaluation given the snapshot reads it and records it.
    ev = evaluate(res["model_version"], eval_snap, settings=settings)
    assert ev["eval_dataset_snapshot"] == eval_snap


def test_training_on_raw_data_keeps_a_snapshot_first(
    settings: Settings, slice_files: dict[str, Path], tmp_path: Path
) -> None:
    settings = settings.replace(snapshot_uri=str(tmp_path / "snaps"))
    res = train(str(slice_files["train"]), str(slice_files["test"]), params=FAST, settings=settings)
    kept = load_validated(res["dataset_snapshot"], settings=settings)
    assert kept.dataset_hash == res["dataset_hash"]
    version = registry.client(settings).get_model_version(settings.registered_model_name, res["model_version"])
    assert version.tags["dataset_snapshot"] == res["dataset_snapshot"]
    assert version.tags["eval_dataset_snapshot"] == res["eval_dataset_snapshot"]
    # A retry (same data, params, code) reuses the version and reports the same snapshots.
    again = train(str(slice_files["train"]), str(slice_files["test"]), params=FAST, settings=settings)
    assert again["status"] == "reused" and again["dataset_snapshot"] == res["dataset_snapshot"]


# ---- least privilege on the strict embedded AWS: the grants Terraform and CDK give (modules/workflow)


def test_only_the_validate_role_writes_and_nobody_deletes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """validate_data: read_data + write_snapshots + decrypt/encrypt; the training task: read_data + decrypt.
    The bucket is SSE-KMS as in the stack, so writing also needs kms:GenerateDataKey."""
    from localaws import LocalAWS

    with LocalAWS(workdir=tmp_path / "aws", enforce_iam=True) as aws:
        assert aws.iam is not None
        s3, iam, kms = aws.client("s3"), aws.client("iam"), aws.client("kms")
        key = kms.create_key()["KeyMetadata"]["Arn"]
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_encryption(
            Bucket=BUCKET,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}]
            },
        )
        data_arn = f"arn:aws:s3:::{BUCKET}"
        read_data = {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": [data_arn, f"{data_arn}/*"],
        }
        decrypt = {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key}
        write = {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"{data_arn}/snapshots/*"}
        encrypt = {"Effect": "Allow", "Action": "kms:GenerateDataKey", "Resource": key}
        trust = {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}

        def become(role: str, *statements: dict[str, Any]) -> None:
            arn = iam.create_role(
                RoleName=role, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [trust]})
            )["Role"]["Arn"]
            policy = {"Version": "2012-10-17", "Statement": list(statements)}
            iam.put_role_policy(RoleName=role, PolicyName="p", PolicyDocument=json.dumps(policy))
            assert aws.iam is not None
            for name, value in aws.iam.credentials(arn, "lambda.amazonaws.com", role).items():
                monkeypatch.setenv(name, value)
            monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # boto3 keeps the first credentials it found

        settings = Settings(
            snapshot_uri=f"s3://{BUCKET}/snapshots/", aws_endpoint_url=aws.endpoint_url, cache_dir=tmp_path
        )
        data = rows()
        become("validate", read_data, decrypt, write, encrypt)
        first = snapshot.ensure(data, settings)
        assert first.written and not snapshot.ensure(data, settings).written
        role_s3 = boto3.client("s3", endpoint_url=aws.endpoint_url, region_name="us-east-1")
        with pytest.raises(role_s3.exceptions.ClientError, match="AccessDenied"):
            role_s3.delete_object(Bucket=BUCKET, Key=first.uri.split(f"{BUCKET}/", 1)[1] + "rows.jsonl")
        with pytest.raises(role_s3.exceptions.ClientError, match="PreconditionFailed"):
            role_s3.put_object(
                Bucket=BUCKET, Key=first.uri.split(f"{BUCKET}/", 1)[1] + "rows.jsonl", Body=b"", IfNoneMatch="*"
            )

        become("train", read_data, decrypt)
        assert snapshot.read(first.uri, settings).dataset_hash == data.dataset_hash
        assert snapshot.ensure(data, settings).uri == first.uri  # exists: found, nothing written
        other = rows(40)
        with pytest.raises(DataSourceError, match="AccessDenied"):  # training never writes a snapshot
            snapshot.ensure(other, settings)
