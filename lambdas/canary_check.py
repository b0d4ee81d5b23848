"""Canary / shadow release steps. Event: {"action": start|stable|shift|check|finalize|abort|shadow_report, ...}."""

from __future__ import annotations

import json
from typing import Any

from lambdas._runtime import step
from pipelines import canary


def _abort(event: dict[str, Any]) -> dict[str, Any]:
    # Called with the whole execution state, from a Choice (a failed check) or a Catch (an error).
    state = event.get("state") or {}
    c = state.get("canary") or {}
    version = event.get("model_version") or (state.get("promotion") or {}).get("model_version")
    if version in (None, ""):
        raise ValueError("abort needs 'model_version'")
    check = c.get("check") or {}
    error = state.get("error")
    if check and not check.get("passed", True):
        reason = f"canary check failed at {c.get('progress', {}).get('weight')} %: {check.get('reason')}"
    elif isinstance(error, dict):
        reason = f"{error.get('Error', 'Error')}: {str(error.get('Cause', ''))[:500]}"
    else:
        reason = json.dumps(error)[:500] if error else "aborted"
    strategy = c.get("strategy") or ((state.get("release") or {}).get("config") or {}).get("deployment_strategy")
    result = canary.abort(
        str(version),
        reason=reason,
        step=(c.get("progress") or {}).get("weight"),
        stable_task_definition=c.get("stable_task_definition"),
        execution_arn=event.get("execution_arn"),
        strategy=str(strategy or "canary"),
    )
    return {**result, "breaches": check.get("breaches", []), "metrics": check.get("metrics")}


@step("canary_check")
def _run(event: dict[str, Any]) -> dict[str, Any]:
    action = event.get("action")
    if action == "abort":
        return _abort(event)
    version = event.get("model_version")
    if version in (None, ""):
        raise ValueError("event needs 'model_version'")
    version = str(version)
    arn = event.get("execution_arn")  # recorded in the version's lineage (pipelines/lineage.py)
    if action == "start":
        return canary.start(version, previous_champion=event.get("previous_champion"),
                            strategy=str(event.get("strategy", "canary")), steps=event.get("steps"),
                            execution_arn=arn)  # fmt: skip
    if action == "stable":
        return canary.stable(event["candidate_task_definition"], event["stable_task_definition"])
    if action == "shift":
        return canary.shift(version, event.get("steps"), int(event.get("index", 0)), execution_arn=arn)
    if action == "check":
        baseline = event.get("baseline_since")
        return canary.check(
            version,
            event.get("champion_version"),
            float(event["since"]),
            weight=event.get("weight"),
            baseline_since=None if baseline is None else float(baseline),
            execution_arn=arn,
        )
    if action == "finalize":
        return canary.finalize(version, event["candidate_task_definition"], execution_arn=arn)
    if action == "shadow_report":
        return canary.shadow_report(version, event.get("champion_version"), float(event["since"]), execution_arn=arn)
    raise ValueError(f"unknown action {action!r}")


handler = _run
