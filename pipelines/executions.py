"""An execution's history with the release it started spliced in, as one story.

The workflow starts the release as a child state machine (states:startExecution.sync:2), so its own
history shows one `Release` Task; what the release did is in the child's history. Operators, the
demo's report and the tests want the whole run in order: the child's events follow the parent's
TaskSubmitted event that started it. Works the same against AWS and the local emulator.
"""

from __future__ import annotations

import json
from typing import Any

START_CHILD = "arn:aws:states:::states:startExecution"


def _events(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events += page["events"]
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def child_execution(event: dict[str, Any]) -> str | None:
    """The ARN of the execution a TaskSubmitted event of a startExecution Task started, else None."""
    details = event.get("taskSubmittedEventDetails") or {}
    if details.get("resourceType") != "states" or not str(details.get("resource", "")).startswith("startExecution"):
        return None
    try:
        return str(json.loads(details.get("output") or "{}")["ExecutionArn"])
    except (ValueError, KeyError, TypeError):
        return None


def history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    """The execution's events, each child execution's events (recursively) after the event that started it."""
    merged: list[dict[str, Any]] = []
    for event in _events(sfn, execution_arn):
        merged.append(event)
        child = child_execution(event)
        if child:
            merged += history(sfn, child)
    return merged


def states(sfn: Any, execution_arn: str) -> list[str]:
    """Names of the states entered, in order, the release's included."""
    events = history(sfn, execution_arn)
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
