"""Move `champion` to the version the gate passed. Event: {"evaluation": <evaluate result>, "eval_data"}."""

from __future__ import annotations

from typing import Any

from lambdas._runtime import step
from pipelines.promote import promote


class GateRejected(RuntimeError):
    """Promote was asked to promote a version the gate did not pass (the Choice should prevent this)."""


@step("promote")
def _run(event: dict[str, Any]) -> dict[str, Any]:
    evaluation = event["evaluation"]
    result = promote(
        str(evaluation["model_version"]),
        evaluation=evaluation,
        eval_uri=str(event.get("eval_data") or "banking77:test"),
        execution_arn=event.get("execution_arn"),
    )
    if result["status"] == "rejected":
        raise GateRejected("; ".join(result["reasons"]))
    return result


handler = _run
