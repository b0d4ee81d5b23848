"""Step: validate a data file before anything trains on it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from model.config import Settings
from model.data import banking77_labels, read_raw
from model.validate import ValidatedData, validate_table


def load_validated(
    data_uri: str,
    *,
    new_labels: Sequence[str] = (),
    label_column: str | None = None,
    settings: Settings | None = None,
) -> ValidatedData:
    """Read and validate; raises DataValidationError (naming file, row, column) or DataSourceError."""
    settings = settings or Settings.from_env()
    raw = read_raw(data_uri, settings)
    return validate_table(
        raw, banking77_labels(settings), new_labels=new_labels, label_column=label_column, settings=settings
    )


def validate_data(
    data_uri: str,
    *,
    new_labels: Sequence[str] = (),
    label_column: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    data = load_validated(data_uri, new_labels=new_labels, label_column=label_column, settings=settings)
    return {"step": "validate-data", "status": "valid", **data.summary()}
