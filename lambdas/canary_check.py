"""Canary / shadow release steps. Event: {"action": start|stable|shift|check|finalize|abort|shadow_report, ...}."""

from __future__ import annotations

from typing import Any

from lambdas._runtime import step
from pipelines.release import actions


@step("canary_check")
def _run(event: dict[str, Any]) -> dict[str, Any]:
    action = event.get("action")
    if action == "abort":  # with the whole execution state, from a Choice (a failed check) or a Catch
        return actions.abort_from_state(
            event.get("state") or {}, model_version=event.get("model_version"), execution_arn=event.get("execution_arn")
        )
    version = event.get("model_version")
    if version in (None, ""):
        raise ValueError("event needs 'model_version'")
    version = str(version)
    arn = event.get("execution_arn")  # recorded in the version's lineage (pipelines/lineage.py)
    if action == "start":
        return actions.start(version, previous_champion=event.get("previous_champion"),
                            strategy=str(event.get("strategy", "canary")), steps=event.get("steps"),
                            execution_arn=arn)  # fmt: skip
    if action == "stable":
        return actions.stable(event["candidate_task_definition"], event["stable_task_definition"])
    if action == "shift":
        return actions.shift(version, event.get("steps"), int(event.get("index", 0)), execution_arn=arn)
    if action == "check":
        baseline = event.get("baseline_since")
        return actions.check(
            version,
            event.get("champion_version"),
            float(event["since"]),
            weight=event.get("weight"),
            baseline_since=None if baseline is None else float(baseline),
            execution_arn=arn,
        )
    if action == "finalize":
        return actions.finalize(
            version, event["candidate_task_definition"], event.get("stable_task_definition"), execution_arn=arn
        )
    if action == "shadow_report":
        return actions.shadow_report(version, event.get("champion_version"), float(event["since"]), execution_arn=arn)
    raise ValueError(f"unknown action {action!r}")


handler = _run
