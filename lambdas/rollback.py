"""The service back to its previous revision. Event: {model_version, previous_task_definition, strategy, error}."""

from __future__ import annotations

import json
from typing import Any

from lambdas._runtime import step
from pipelines.rollback import rollback


@step("rollback")
def _run(event: dict[str, Any]) -> dict[str, Any]:
    version = event.get("model_version")
    if version in (None, ""):
        raise ValueError("event needs 'model_version'")
    error = event.get("error") or {}
    reason = f"{error.get('Error', '')}: {error.get('Cause', '')}" if isinstance(error, dict) else json.dumps(error)
    return rollback(
        str(version),
        event.get("previous_task_definition") or None,
        reason=reason[:1000],
        execution_arn=event.get("execution_arn"),
        strategy=str(event.get("strategy") or "all_at_once"),
    )


handler = _run
