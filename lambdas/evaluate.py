"""Score the challenger against the champion and apply the gate. Event: {"model_version"?, "eval_data"}."""

from __future__ import annotations

from typing import Any

from lambdas._runtime import step
from pipelines.evaluate import evaluate


@step("evaluate")
def _run(event: dict[str, Any]) -> dict[str, Any]:
    version = event.get("model_version")
    return evaluate(
        None if version in (None, "") else str(version),
        str(event.get("eval_data") or "banking77:test"),
        execution_arn=event.get("execution_arn"),
    )


handler = _run
