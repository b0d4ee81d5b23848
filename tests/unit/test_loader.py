"""The loader: configured folder, download into a cache from a real HTTP server, and s3:// URIs."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from model.config import Settings
from model.data import DataSourceError, banking77_dir, banking77_labels, read_raw, resolve_uri


@pytest.fixture()
def http_source(banking77: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve the BANKING77 folder over real HTTP, recording requested paths."""
    seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            seen.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(banking77)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def test_downloads_once_into_cache(tmp_path: Path, http_source: tuple[str, list[str]], banking77: Path) -> None:
    url, seen = http_source
    settings = Settings().replace(data_dir=None, cache_dir=tmp_path, data_url=url)
    folder = banking77_dir(settings)
    assert folder == tmp_path / "banking77"
    assert (folder / "train.csv").read_bytes() == (banking77 / "train.csv").read_bytes()
    assert len(banking77_labels(settings)) == 77
    requests = len(seen)
    banking77_dir(settings)
    assert len(seen) == requests, "a second call must use the cache"


def test_failed_download_leaves_no_partial_file(tmp_path: Path) -> None:
    settings = Settings().replace(data_dir=None, cache_dir=tmp_path, data_url="http://127.0.0.1:9/none")
    with pytest.raises(DataSourceError, match="ESTEIRA_DATA_DIR"):
        banking77_dir(settings)
    assert not list((tmp_path / "banking77").iterdir())


def test_configured_folder_must_hold_the_files(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="missing train.csv"):
        banking77_dir(Settings().replace(data_dir=str(tmp_path)))


def test_shorthand(banking77: Path) -> None:
    settings = Settings().replace(data_dir=str(banking77))
    assert resolve_uri("banking77:test", settings) == str(banking77 / "test.csv")
    with pytest.raises(DataSourceError):
        resolve_uri("banking77:dev", settings)


@mock_aws
def test_reads_s3_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="data")
    s3.put_object(Bucket="data", Key="in/train.csv", Body=b"text,category\nhi,card_arrival\n")
    raw = read_raw("s3://data/in/train.csv", Settings().replace(aws_endpoint_url=None))
    assert raw.data.startswith(b"text,category") and raw.fmt == "csv"
    with pytest.raises(DataSourceError):
        read_raw("s3://data/in/missing.csv", Settings())
