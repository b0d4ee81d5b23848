"""Target of the EventBridge rule on model-health alarms: cooldown, then start the retraining workflow.

Event: the "CloudWatch Alarm State Change" event. Returns {"status": "started"|"cooldown"|"paused"|"ignored"}.
The cooldown and the start live in pipelines/retrain_trigger.py.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pipelines.retrain_trigger import retrain_trigger

log = logging.getLogger("esteira.lambda.retrain_trigger")
log.setLevel(logging.INFO)


def handler(event: Any, context: Any) -> dict[str, Any]:
    # The principal on the execution's trigger: this function (its role calls StartExecution).
    result = retrain_trigger(event, principal=str(getattr(context, "invoked_function_arn", "") or ""))
    log.info(json.dumps(result))
    return result
