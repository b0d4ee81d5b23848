"""Acquire or release the one-execution-at-a-time lock. Event: {"action": "acquire"|"release", "owner": id}."""

from __future__ import annotations

from typing import Any

from lambdas._runtime import step
from pipelines import lock


@step("lock")
def _run(event: dict[str, Any]) -> dict[str, Any]:
    action, owner = event.get("action"), event.get("owner")
    if not owner:
        raise ValueError("event needs 'owner' (the execution id)")
    if action == "acquire":
        return lock.acquire(str(owner))
    if action == "release":
        return lock.release(str(owner))
    raise ValueError(f"unknown action {action!r}: use 'acquire' or 'release'")


handler = _run
