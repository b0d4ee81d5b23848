"""A Lambda handler for the alarm -> EventBridge test: appends each event it receives to $SINK_FILE."""

from __future__ import annotations

import json
import os
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with open(os.environ["SINK_FILE"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps(event) + "\n")
    return {"received": event.get("detail-type")}
