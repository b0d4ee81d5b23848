"""New task-definition revision pinned to the model version, then UpdateService. Event: {"model_version"}."""

from __future__ import annotations

from typing import Any

from lambdas._runtime import step
from pipelines.deploy import deploy


@step("deploy")
def _run(event: dict[str, Any]) -> dict[str, Any]:
    version = event.get("model_version")
    if version in (None, ""):
        raise ValueError("event needs 'model_version'")
    return deploy(str(version), execution_arn=event.get("execution_arn"))


handler = _run
