"""Step: validate a data file before anything trains on it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from model.config import Settings
from model.data import is_folder, known_labels, list_data_files, read_raw, resolve_uri
from model.validate import DataValidationError, Issue, ValidatedData, merge_validated, validate_table
from pipelines import snapshot


def load_validated(
    data_uri: str,
    *,
    new_labels: Sequence[str] = (),
    label_column: str | None = None,
    settings: Settings | None = None,
) -> ValidatedData:
    """Read and validate a file or a folder of files (see model/data.py); raises DataValidationError
    (naming file, row, column) or DataSourceError. A folder's files are validated one by one and then
    together, so a text labelled differently in two files is an error that names both.

    A snapshot URI (pipelines/snapshot.py, .../sha256=<hex>/) holds rows that already passed: they are
    read and re-hashed against the hash in the URI instead (DataValidationError if they differ)."""
    settings = settings or Settings.from_env()
    if snapshot.is_snapshot_uri(data_uri):
        return snapshot.read(data_uri, settings)
    known = known_labels(settings)
    uri = resolve_uri(data_uri, settings)
    if not is_folder(uri):
        raw = read_raw(uri, settings)
        return validate_table(raw, known, new_labels=new_labels, label_column=label_column, settings=settings)
    # Row-count limits apply to the data set, not to each file: a labelling batch may be small.
    one = settings.replace(min_rows=1)
    parts = [
        validate_table(read_raw(f, settings), known, new_labels=new_labels, label_column=label_column, settings=one)
        for f in list_data_files(uri, settings)
    ]
    merged = merge_validated(uri, parts)
    total = len(merged.texts)
    if not settings.min_rows <= total <= settings.max_rows:
        limit = f"at least {settings.min_rows}" if total < settings.min_rows else f"at most {settings.max_rows}"
        raise DataValidationError([Issue("error", uri, None, None, f"{total} rows in all files; {limit} allowed")])
    return merged


def validate_data(
    data_uri: str,
    *,
    eval_uri: str | None = None,
    new_labels: Sequence[str] = (),
    label_column: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Validate the training data (and the evaluation data, when given) and keep each as a snapshot.

    The result holds one summary per data set under "train" and "eval", each with its `snapshot_uri`,
    which is what training and evaluation should then read. The training summary is also repeated at
    the top level, the shape this step had before it validated evaluation data too."""
    settings = settings or Settings.from_env()
    result: dict[str, Any] = {"step": "validate-data", "status": "valid"}
    for role, uri in (("train", data_uri), ("eval", eval_uri)):
        if uri is None:
            continue
        data = load_validated(uri, new_labels=new_labels, label_column=label_column, settings=settings)
        result[role] = {**data.summary(), **snapshot.ensure(data, settings).summary()}
    return {**result["train"], **result}
