"""Validate the training and evaluation data and snapshot both.

Event: {"train_data": uri, "eval_data"?: uri, "new_labels": [..]}; raises DataValidationError. The result's
"train" and "eval" hold each data set's summary and `snapshot_uri` (pipelines/validate_data.py)."""

from __future__ import annotations

import os
from typing import Any

from lambdas._runtime import step
from pipelines.validate_data import validate_data

_TRAINING_ENV = (
    "MLFLOW_TRACKING_URI",
    "ESTEIRA_MODEL_NAME",
    "ESTEIRA_EXPERIMENT",
    "ESTEIRA_DATA_BUCKET",
    "ESTEIRA_LABELS_URI",
    # Where the snapshots are: a job given a raw URI finds (or keeps) its snapshot in the same place.
    "ESTEIRA_SNAPSHOT_URI",
    # The recent-traffic reference (pipelines/reference.py) reads the captures and the drift state.
    "ESTEIRA_CAPTURE_S3_URI",
    "ESTEIRA_ARTIFACTS_BUCKET",
)


@step("validate-data")
def _run(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("train_data") or event.get("data") or "banking77:train"
    eval_data = event.get("eval_data")
    result = validate_data(
        str(data), eval_uri=str(eval_data) if eval_data else None, new_labels=list(event.get("new_labels") or [])
    )
    # The SageMaker training job gets the same tracking configuration this function was given.
    result["training_environment"] = {k: os.environ[k] for k in _TRAINING_ENV if os.environ.get(k)}
    return result


handler = _run
