"""Real requests against the new revision. Event: {"model_version", "smoke_data"?}; raises SmokeTestFailed."""

from __future__ import annotations

from typing import Any

from lambdas._runtime import step
from pipelines.smoke_test import smoke_test


@step("smoke-test")
def _run(event: dict[str, Any]) -> dict[str, Any]:
    version = event.get("model_version")
    if version in (None, ""):
        raise ValueError("event needs 'model_version'")
    return smoke_test(str(version), smoke_data=event.get("smoke_data") or None)


handler = _run
