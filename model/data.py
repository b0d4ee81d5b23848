"""Read labelled text: BANKING77 from its public source (cached), or any CSV/Parquet, local or on S3.

A source may also be a folder: a local directory or an S3 prefix ending in "/". Its data files (.csv,
.tsv, .parquet; sorted by name, at any depth) together are the data set. This is how retraining picks
up new labelled data: a labelling job drops another file under the training prefix and the next run
trains on everything there, under a new dataset hash.

Reading returns raw bytes plus a parsed frame, because validation must be able to name the row of an
encoding error, which a decoder that has already replaced bad bytes can no longer do.
"""

from __future__ import annotations

import io
import json
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from model.config import Settings
from model.contract import contract

BANKING77_FILES = ("train.csv", "test.csv", "categories.json")
LABEL_COLUMNS = ("category", "label", "intent")
# Where in the data bucket the taxonomy lives (contract.yaml labels_key; ESTEIRA_LABELS_URI names it).
LABELS_KEY = contract().labels_key


class DataSourceError(RuntimeError):
    """A data source could not be found or read at all (as opposed to read but invalid)."""


@dataclass(frozen=True)
class RawTable:
    """One file as read: where it came from, its bytes, and its format."""

    source: str
    data: bytes
    fmt: str  # "csv" or "parquet"


def banking77_dir(settings: Settings | None = None) -> Path:
    """The folder holding BANKING77, downloading it into the cache when no local copy is configured."""
    settings = settings or Settings.from_env()
    if settings.data_dir:
        folder = Path(settings.data_dir).expanduser()
        missing = [name for name in BANKING77_FILES if not (folder / name).is_file()]
        if missing:
            raise DataSourceError(f"ESTEIRA_DATA_DIR={folder} does not hold BANKING77: missing {', '.join(missing)}")
        return folder
    folder = settings.cache_dir / "banking77"
    folder.mkdir(parents=True, exist_ok=True)
    for name in BANKING77_FILES:
        target = folder / name
        if target.is_file() and target.stat().st_size > 0:
            continue
        url = f"{settings.data_url.rstrip('/')}/{name}"
        partial = target.with_suffix(target.suffix + ".part")
        try:
            with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise DataSourceError(
                f"could not download {url} ({exc}); set ESTEIRA_DATA_DIR to a local copy of banking_data"
            ) from exc
        partial.replace(target)  # only a complete download ever lands in the cache
    return folder


def banking77_labels(settings: Settings | None = None) -> list[str]:
    """The 77 intents, in the data set's own order."""
    path = banking77_dir(settings) / "categories.json"
    return _label_list(str(path), path.read_bytes())


def known_labels(settings: Settings | None = None) -> list[str]:
    """The taxonomy labels are validated against: `labels_uri` when set (always, in AWS), else BANKING77's.

    In AWS the steps run in private subnets with no route to the internet, so they must never reach
    for the public source at run time; the labels travel with the data, in the data bucket.
    """
    settings = settings or Settings.from_env()
    if not settings.labels_uri:
        return banking77_labels(settings)
    uri = settings.labels_uri
    if uri.startswith("s3://"):
        bucket, _, key = uri[5:].partition("/")
        client = s3_client(settings)
        try:
            data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.ClientError as exc:
            raise DataSourceError(f"{uri}: {exc} (pipelines/seed_data.py writes the labels there)") from exc
    else:
        path = Path(uri).expanduser()
        if not path.is_file():
            raise DataSourceError(f"ESTEIRA_LABELS_URI={uri}: no such file")
        data = path.read_bytes()
    return _label_list(uri, data)


def _label_list(source: str, data: bytes) -> list[str]:
    try:
        labels = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataSourceError(f"{source} is not JSON: {exc}") from exc
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise DataSourceError(f"{source} is not a JSON list of intent names")
    return labels


def resolve_uri(uri: str, settings: Settings | None = None) -> str:
    """Expand the `banking77:train` / `banking77:test` shorthands into a concrete path."""
    if uri.startswith("banking77:"):
        split = uri.split(":", 1)[1]
        if split not in ("train", "test"):
            raise DataSourceError(f"unknown BANKING77 split {split!r}: use banking77:train or banking77:test")
        return str(banking77_dir(settings) / f"{split}.csv")
    return uri


def _format_of(uri: str) -> str:
    lowered = uri.lower()
    if lowered.endswith(".parquet") or lowered.endswith(".pq"):
        return "parquet"
    if lowered.endswith(".csv") or lowered.endswith(".csv.txt") or lowered.endswith(".tsv"):
        return "csv"
    raise DataSourceError(f"{uri}: unsupported file type (expected .csv or .parquet)")


DATA_SUFFIXES = (".csv", ".tsv", ".csv.txt", ".parquet", ".pq")


def is_folder(uri: str) -> bool:
    """An S3 prefix ending in "/" or an existing local directory."""
    if uri.startswith("s3://"):
        return uri.endswith("/")
    return Path(uri).expanduser().is_dir()


def list_data_files(uri: str, settings: Settings | None = None) -> list[str]:
    """The data files under a folder URI, sorted; raises DataSourceError if there are none."""
    settings = settings or Settings.from_env()
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[5:].partition("/")
        client = s3_client(settings)
        keys: list[str] = []
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].lower().endswith(DATA_SUFFIXES)]
        except client.exceptions.ClientError as exc:
            raise DataSourceError(f"{uri}: {exc}") from exc
        files = [f"s3://{bucket}/{key}" for key in sorted(keys)]
    else:
        root = Path(uri).expanduser()
        files = sorted(str(p) for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(DATA_SUFFIXES))
    if not files:
        raise DataSourceError(f"{uri}: no data files (.csv, .tsv, .parquet) under this folder")
    return files


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client honouring the endpoint override (moto/LocalStack) from configuration."""
    import boto3

    return boto3.client("s3", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)


def read_raw(uri: str, settings: Settings | None = None) -> RawTable:
    """Fetch a file's bytes from a local path or an s3:// URI, refusing files over the size limit."""
    settings = settings or Settings.from_env()
    uri = resolve_uri(uri, settings)
    fmt = _format_of(uri)
    if uri.startswith("s3://"):
        bucket, _, key = uri[5:].partition("/")
        client = s3_client(settings)
        try:
            head = client.head_object(Bucket=bucket, Key=key)
            if head["ContentLength"] > settings.max_file_bytes:
                raise DataSourceError(
                    f"{uri}: {head['ContentLength']} bytes exceeds the limit of {settings.max_file_bytes}"
                )
            data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.ClientError as exc:
            raise DataSourceError(f"{uri}: {exc}") from exc
        return RawTable(uri, data, fmt)
    path = Path(uri).expanduser()
    if not path.is_file():
        raise DataSourceError(f"{uri}: no such file")
    size = path.stat().st_size
    if size > settings.max_file_bytes:
        raise DataSourceError(f"{uri}: {size} bytes exceeds the limit of {settings.max_file_bytes}")
    return RawTable(str(path), path.read_bytes(), fmt)


def parse_table(raw: RawTable) -> pd.DataFrame:
    """Parse bytes into a frame of strings, keeping empty cells as "" so validation can name them."""
    if raw.fmt == "parquet":
        frame = pd.read_parquet(io.BytesIO(raw.data))
        return frame.astype(object).where(frame.notna(), None)
    sep = "\t" if raw.source.lower().endswith(".tsv") else ","
    text = raw.data.decode("utf-8-sig")
    return pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
