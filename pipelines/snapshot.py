"""Immutable snapshots of validated data, addressed by their dataset hash.

Why: `train/` and `eval/` are mutable prefixes. A model version records the hash of the rows it learnt
from (model/validate.py `dataset_hash`), but a hash names data, it does not keep it. The validate step
therefore writes the rows that passed, once, under a key derived from that hash:

    <snapshot root>/sha256=<hex>/rows.jsonl      one {"text": ..., "label": ...} per line
    <snapshot root>/sha256=<hex>/manifest.json   hash, rows, intents, source, created (written last)

The snapshot root is `Settings.snapshot_root()` (ESTEIRA_SNAPSHOT_URI; in the stack the data bucket's
contract.yaml `snapshots_prefix`). Training and evaluation read the snapshot, and the run and the
model version record its URI, so a later change to `train/` cannot change what an old version learnt.

Rules that make it immutable:
- Never overwritten: an existing snapshot is reused; writes are conditional (S3 `If-None-Match: *`,
  a local hard link that fails if the name exists), so two writers racing cannot replace each other.
- Reading re-hashes the rows with the same function that produced the key and raises
  DataValidationError if they differ: an altered snapshot is never trained on silently.
- No role in the workflow may delete under the prefix (infra: the validate Lambda may only add).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.config import Settings
from model.data import DataSourceError, s3_client
from model.validate import DataValidationError, Issue, ValidatedData, dataset_hash

ROWS_FILE = "rows.jsonl"
MANIFEST_FILE = "manifest.json"
FORMAT = "esteira-snapshot/1"
HASH_PREFIX = "sha256:"  # how model/validate.py writes a dataset hash
# The folder of one snapshot: "sha256=<64 hex>" (":" is awkward in S3 keys and URLs), "/" optional.
_FOLDER = re.compile(r"(?:^|/)sha256=([0-9a-f]{64})/?$")


@dataclass(frozen=True)
class Snapshot:
    """Where a data set's snapshot is, and whether this call wrote it or found it already there."""

    uri: str  # the folder, ending in "/"
    dataset_hash: str
    written: bool

    def summary(self) -> dict[str, object]:
        return {"snapshot_uri": self.uri, "snapshot": "written" if self.written else "reused"}


def is_snapshot_uri(uri: str) -> bool:
    """A snapshot folder URI (s3:// or local), as `snapshot_uri_for` builds it."""
    return _FOLDER.search(uri) is not None


def hash_of_uri(uri: str) -> str:
    """The dataset hash a snapshot URI names ("sha256:<hex>"); ValueError if it names none."""
    match = _FOLDER.search(uri)
    if match is None:
        raise ValueError(f"{uri} is not a snapshot URI (expected .../sha256=<64 hex digits>/)")
    return HASH_PREFIX + match.group(1)


def snapshot_uri_for(data_hash: str, settings: Settings) -> str:
    """The folder of the snapshot of the data set with this hash, under the configured root."""
    if not data_hash.startswith(HASH_PREFIX) or not re.fullmatch(r"[0-9a-f]{64}", data_hash[len(HASH_PREFIX) :]):
        raise ValueError(f"not a dataset hash: {data_hash!r}")
    folder = f"sha256={data_hash[len(HASH_PREFIX) :]}/"
    root = settings.snapshot_root()
    if root.startswith("s3://"):
        return root.rstrip("/") + "/" + folder
    return str(Path(root).expanduser() / folder) + "/"


# ---- storage: only "read", "exists" and "add if absent"; nothing here can replace or delete.
class _Folder:
    def __init__(self, uri: str, settings: Settings) -> None:
        self.uri = uri
        self.s3 = uri.startswith("s3://")
        if self.s3:
            self.bucket, _, prefix = uri[5:].partition("/")
            self.prefix = prefix.rstrip("/") + "/"
            self.client = s3_client(settings)
        else:
            self.path = Path(uri).expanduser()

    def _key(self, name: str) -> str:
        return self.prefix + name

    def exists(self, name: str) -> bool:
        if not self.s3:
            return (self.path / name).is_file()
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise DataSourceError(f"{self.uri}{name}: {exc}") from exc
        return True

    def read(self, name: str) -> bytes:
        if not self.s3:
            path = self.path / name
            if not path.is_file():
                raise DataSourceError(f"{path}: no such file (not a complete snapshot)")
            return path.read_bytes()
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
        except self.client.exceptions.ClientError as exc:
            raise DataSourceError(f"{self.uri}{name}: {exc} (not a complete snapshot?)") from exc
        return body

    def add(self, name: str, data: bytes, content_type: str) -> bool:
        """Write `name` only if it does not exist; False when it already did (nothing is replaced)."""
        if not self.s3:
            self.path.mkdir(parents=True, exist_ok=True)
            tmp = self.path / f".{name}.{uuid.uuid4().hex}.tmp"
            tmp.write_bytes(data)
            try:
                os.link(tmp, self.path / name)  # atomic, and fails if the name exists
            except FileExistsError:
                return False
            finally:
                tmp.unlink(missing_ok=True)
            return True
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(name), Body=data, ContentType=content_type, IfNoneMatch="*"
            )
        except self.client.exceptions.ClientError as exc:
            error = exc.response.get("Error", {}).get("Code")
            # 412: the key exists; 409: another conditional write of it is in flight. Either way it is not ours.
            if error in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return False
            raise DataSourceError(f"{self.uri}{name}: {exc}") from exc
        return True


def _rows_bytes(data: ValidatedData) -> bytes:
    lines = (
        json.dumps({"text": t, "label": label}, ensure_ascii=False)
        for t, label in zip(data.texts, data.labels, strict=True)
    )
    return ("\n".join(lines) + "\n").encode("utf-8")


def _parse_rows(uri: str, raw: bytes) -> tuple[list[str], list[str]]:
    texts: list[str] = []
    labels: list[str] = []
    for number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if not line:
            continue
        try:
            row = json.loads(line)
            text, label = row["text"], row["label"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataValidationError(
                [Issue("error", uri + ROWS_FILE, number, None, f"not a snapshot row: {exc}")]
            ) from exc
        if not isinstance(text, str) or not isinstance(label, str):
            raise DataValidationError([Issue("error", uri + ROWS_FILE, number, None, "text and label must be strings")])
        texts.append(text)
        labels.append(label)
    return texts, labels


def _verified_rows(folder: _Folder, expected: str) -> tuple[list[str], list[str]]:
    texts, labels = _parse_rows(folder.uri, folder.read(ROWS_FILE))
    found = dataset_hash(texts, labels)
    if found != expected:
        raise DataValidationError(
            [
                Issue(
                    "error",
                    folder.uri,
                    None,
                    None,
                    f"snapshot rows hash to {found}, not {expected} as the key says: the snapshot was altered",
                )
            ]
        )
    return texts, labels


def ensure(data: ValidatedData, settings: Settings | None = None) -> Snapshot:
    """The snapshot of `data`: reused when one with its hash exists, else written once.

    Data that was itself read from a snapshot (its source is a snapshot URI of the same hash) is
    already kept: that URI is returned and nothing is read or written, so a step given a snapshot
    needs only read access."""
    settings = settings or Settings.from_env()
    if is_snapshot_uri(data.source) and hash_of_uri(data.source) == data.dataset_hash:
        return Snapshot(data.source if data.source.endswith("/") else data.source + "/", data.dataset_hash, False)
    uri = snapshot_uri_for(data.dataset_hash, settings)
    folder = _Folder(uri, settings)
    if folder.exists(MANIFEST_FILE):
        return Snapshot(uri, data.dataset_hash, False)
    wrote_rows = folder.add(ROWS_FILE, _rows_bytes(data), "application/x-ndjson")
    if not wrote_rows:  # an earlier writer stopped before its manifest, or one is writing now: same rows?
        _verified_rows(folder, data.dataset_hash)
    manifest = {
        "format": FORMAT,
        "dataset_hash": data.dataset_hash,
        "rows": len(data.texts),
        "intents": len(set(data.labels)),
        "rows_per_intent": dict(sorted(Counter(data.labels).items())),
        "label_column": data.label_column,
        "source": data.source,
        **({"files": data.files} if data.files else {}),
        "dropped_duplicates": data.dropped_duplicates,
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "rows_file": ROWS_FILE,
    }
    wrote_manifest = folder.add(MANIFEST_FILE, json.dumps(manifest, indent=1).encode(), "application/json")
    return Snapshot(uri, data.dataset_hash, wrote_rows or wrote_manifest)


def find(data: ValidatedData, settings: Settings | None = None) -> str | None:
    """The URI of `data`'s snapshot if one exists (read-only: for steps that may not write), else None."""
    settings = settings or Settings.from_env()
    if is_snapshot_uri(data.source) and hash_of_uri(data.source) == data.dataset_hash:
        return data.source if data.source.endswith("/") else data.source + "/"
    uri = snapshot_uri_for(data.dataset_hash, settings)
    return uri if _Folder(uri, settings).exists(MANIFEST_FILE) else None


def manifest(uri: str, settings: Settings | None = None) -> dict[str, Any]:
    """A snapshot's manifest (what was kept, from where, when); DataSourceError if it has none."""
    settings = settings or Settings.from_env()
    folder = _Folder(uri if uri.endswith("/") else uri + "/", settings)
    document: dict[str, Any] = json.loads(folder.read(MANIFEST_FILE))
    return document


def read(uri: str, settings: Settings | None = None) -> ValidatedData:
    """The rows of a snapshot, re-hashed: DataValidationError when they do not hash to the hash in the
    URI (an altered snapshot), DataSourceError when it is missing or incomplete."""
    settings = settings or Settings.from_env()
    expected = hash_of_uri(uri)
    uri = uri if uri.endswith("/") else uri + "/"
    folder = _Folder(uri, settings)
    info = manifest(uri, settings)
    texts, labels = _verified_rows(folder, expected)
    return ValidatedData(
        source=uri,
        texts=texts,
        labels=labels,
        dataset_hash=expected,
        label_column=str(info.get("label_column") or "category"),
        rows=list(range(1, len(texts) + 1)),
    )
