"""Validate the training data. Event: {"train_data": uri, "new_labels": [..]}; raises DataValidationError."""

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
    # The recent-traffic reference (pipelines/reference.py) reads the captures and the drift state.
    "CAPTURE_S3_URI",
    "ESTEIRA_ARTIFACTS_BUCKET",
)


@step("validate-data")
def _run(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("train_data") or event.get("data") or "banking77:train"
    result = validate_data(str(data), new_labels=list(event.get("new_labels") or []))
    # The SageMaker training job gets the same tracking configuration this function was given.
    result["training_environment"] = {k: os.environ[k] for k in _TRAINING_ENV if os.environ.get(k)}
    return result


handler = _run
