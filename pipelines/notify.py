"""Step: tell people what the workflow did, through SNS.

The state machine publishes its own outcome messages with the SNS integration; this function is the
same message for everything else that runs a step (the CLI, the demo, the retrain trigger).
"""

from __future__ import annotations

import json
from typing import Any

from model.config import Settings
from pipelines import aws


def notify(
    subject: str, detail: dict[str, Any], *, topic_arn: str | None = None, settings: Settings | None = None
) -> dict:
    topic = topic_arn or aws.WorkflowSettings.from_env().sns_topic_arn
    if not topic:
        return {"step": "notify", "status": "skipped", "reason": "no SNS topic configured"}
    # SNS subjects: <= 100 ASCII characters, no newlines.
    clean = "".join(ch if 32 <= ord(ch) < 127 else " " for ch in subject)[:100]
    resp = aws.client("sns", settings).publish(
        TopicArn=topic, Subject=clean, Message=json.dumps(detail, indent=1, default=str)
    )
    return {"step": "notify", "status": "sent", "message_id": resp["MessageId"]}
