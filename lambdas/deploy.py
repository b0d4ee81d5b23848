"""New task-definition revision pinned to the model version, then UpdateService. Event: {"model_version"}.

With {"model_version", "smoke": <the smoke test's result>} it records the passed smoke test as the
release's outcome instead (state RecordRelease): the smoke test itself may run outside the VPC, where
MLflow is unreachable."""

from __future__ import annotations

from typing import Any

from lambdas._runtime import step
from pipelines.deploy import deploy, record_smoke_passed


@step("deploy")
def _run(event: dict[str, Any]) -> dict[str, Any]:
    version = event.get("model_version")
    if version in (None, ""):
        raise ValueError("event needs 'model_version'")
    if event.get("smoke"):
        return record_smoke_passed(str(version), dict(event["smoke"]), execution_arn=event.get("execution_arn"))
    return deploy(str(version), execution_arn=event.get("execution_arn"))


handler = _run
