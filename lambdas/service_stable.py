"""Raise ServiceNotStable (retried) until the service runs only the new revision. Event: {"task_definition"}."""

from __future__ import annotations

from typing import Any

from lambdas._runtime import step
from pipelines.service_stable import check


@step("service-stable")
def _run(event: dict[str, Any]) -> dict[str, Any]:
    task_definition = event.get("task_definition")
    if not task_definition:
        raise ValueError("event needs 'task_definition'")
    return check(str(task_definition))


handler = _run
