"""Did the retrain absorb the drift that started it? Decided on the new model's first windows.

A drift-triggered retrain is tagged, at training time (pipelines/reference.py), with the drift tests
that fired on the model it replaces. The drift check then follows the new champion's first windows:

- a window in which one of those same tests fires again: **not absorbed**. The traffic that drifted is
  still unlike what the new model was trained and referenced on, so another automatic retrain would
  only repeat this one. The check pauses automatic retraining (the `retrain-paused` item that
  pipelines/retrain_trigger.py honours, no expiry: a person removes it, docs/runbook.md) BEFORE it
  publishes the metric that would raise the alarm, and notifies, naming the tests and the reports.
- `windows` windows without them: **absorbed**, recorded in the state and the reports; nobody is paged.

Deciding at the first repeat (not on a majority) is what keeps retraining from looping: the same
check that sees the repeat would otherwise raise the alarm that starts the next retrain. The price is a
false "not absorbed" with probability at most `windows` x alpha (0.3 % at the defaults), which costs a
message and a pause, never a bad model. Tests that did not fire before are not watched: a new kind of
drift after the release is new information and takes the normal path (alarm, retrain).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.retrain_trigger import PAUSE_KEY

log = logging.getLogger(__name__)

# Model version tags written by the training step for a drift-triggered retrain.
TAG_REASON = "retrain.reason"
TAG_TESTS = "retrain.drift_tests"
TAG_PREVIOUS = "retrain.previous_version"
REASON_DRIFT = "drift"
DEFAULT_WINDOWS = 3


def begin(tags: Mapping[str, str], windows: int = DEFAULT_WINDOWS) -> dict[str, Any] | None:
    """The record to follow for a model version, or None when it was not a drift-triggered retrain."""
    if tags.get(TAG_REASON) != REASON_DRIFT:
        return None
    watch = sorted(t for t in tags.get(TAG_TESTS, "").split(",") if t)
    return {
        "watch": watch,
        "previous_version": tags.get(TAG_PREVIOUS) or None,
        "windows_to_watch": max(1, windows),
        "windows": [],
        "outcome": None,
    }


def observe(record: dict[str, Any], fired: Sequence[str], report_uri: str | None) -> dict[str, Any]:
    """Add one judged window; decide once. Pure, so every outcome is unit-testable."""
    if record.get("outcome"):
        return record
    watch = set(record["watch"]) or set(fired)  # tags without the list: any test counts
    still = sorted(watch & set(fired))
    windows = [*record["windows"], {"fired": sorted(fired), "still_firing": still, "report_uri": report_uri}]
    outcome = None
    if still:
        outcome = "not_absorbed"
    elif len(windows) >= int(record["windows_to_watch"]):
        outcome = "absorbed"
    return {**record, "windows": windows, "outcome": outcome}


def message(record: dict[str, Any], model_version: str) -> tuple[str, str]:
    """Subject and body of the notification that a person is needed."""
    last = record["windows"][-1]
    subject = f"esteira: retraining did not absorb the drift (model version {model_version}); retraining paused"
    body = {
        "what": (
            f"Model version {model_version} was retrained because drift tests {record['watch'] or 'unknown'} fired "
            f"on version {record.get('previous_version') or '?'}; in its window {len(record['windows'])} after "
            f"release, {last['still_firing']} fired again. Automatic retraining is paused (DynamoDB item "
            f"lock_id={PAUSE_KEY}) so it does not loop."
        ),
        "action": "Read the reports, find what changed in the traffic, fix the data or the model, then delete "
        "the pause item (docs/runbook.md, 'Retraining paused').",
        "windows": record["windows"],
    }
    return subject[:100], json.dumps(body, indent=1, default=str)


def act(
    record: dict[str, Any],
    model_version: str,
    *,
    ddb: Any,
    sns: Any,
    table: str,
    topic_arn: str,
    now: dt.datetime,
) -> list[str]:
    """On "not absorbed": pause automatic retraining, then notify. Returns what was done."""
    if record.get("outcome") != "not_absorbed" or record.get("acted"):
        return []
    done = []
    if table:
        ddb.put_item(
            TableName=table,
            Item={
                "lock_id": {"S": PAUSE_KEY},
                "reason": {"S": f"retrain of model version {model_version} did not absorb the drift"},
                "paused_by": {"S": "drift-check"},
                "model_version": {"S": model_version},
                "paused_at": {"S": now.isoformat()},
            },
        )
        done.append("paused")
    if topic_arn:
        subject, body = message(record, model_version)
        sns.publish(TopicArn=topic_arn, Subject=subject, Message=body)
        done.append("notified")
    record["acted"] = done
    log.warning("retrain of version %s did not absorb the drift: %s", model_version, done)
    return done
