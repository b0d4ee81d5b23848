"""Scheduled drift check. Event: {} from the EventBridge schedule, or {"model_version": "7"} by hand.

Thin on purpose: the check itself is pipelines/drift_check.py, which the CLI and the demo also run.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from lambdas._runtime import mlflow_credentials
from pipelines.drift_check import drift_check

log = logging.getLogger("esteira.lambda.drift_check")
log.setLevel(logging.INFO)


def handler(event: Any, context: Any) -> dict[str, Any]:
    mlflow_credentials()  # the read-only MLflow user, from its secret (not a workflow step: no @step)
    version = event.get("model_version") if isinstance(event, dict) else None
    result = drift_check(None if version in (None, "") else str(version))
    # One JSON line in CloudWatch Logs, without the per-test details (they are in the S3 report).
    log.info(json.dumps({k: result.get(k) for k in ("status", "model_version", "window", "metrics", "report_uri")}))
    return result
