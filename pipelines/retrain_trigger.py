"""Step: turn a model-health alarm into at most one retraining per cooldown period.

An alarm storm (flapping alarm, several model alarms at once, EventBridge retries, concurrent Lambda
invocations) must start ONE execution. The guard is a single DynamoDB conditional write on one item of
the workflow lock table: `lock_id = "retrain-cooldown"`, written only if it does not exist or its
`cooldown_until` has passed. DynamoDB serialises conditional writes on an item, so among any number of
concurrent callers exactly one wins; only the winner calls states:StartExecution. The execution name
is unique (timestamp + random suffix) so a redelivered event can never collide with the old one's name.

If StartExecution fails, the winner gives the cooldown back (a conditional delete on its own token), so
EventBridge's retry can start it instead of the storm being silenced for an hour by a failure.

Pause: an item `lock_id = "retrain-paused"` (optionally with `paused_until`, epoch seconds) stops all
automatic retraining until it is deleted or expires; see docs/runbook.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import time
import uuid
from typing import Any, ClassVar

import boto3
from botocore.exceptions import ClientError

from model.config import Settings
from model.contract import contract
from model.settings import EsteiraSettings, setting
from pipelines import lineage

COOLDOWN_KEY = "retrain-cooldown"
PAUSE_KEY = "retrain-paused"
REFERENCE_RECENT = "recent-traffic"  # the `reference` input of the workflow (pipelines/reference.py)
# Model-health alarms are <name><retrain_prefix>* (contract.yaml); <name> defaults to the project, esteira.
ALARM_PREFIX = f"esteira{contract().alarms.retrain_prefix}"


class TriggerSettings(EsteiraSettings):
    """The retrain trigger (model-health alarm -> one workflow execution, with a cooldown)."""

    doc_title: ClassVar[str] = "Retrain trigger (pipelines/retrain_trigger.py `TriggerSettings`)"

    table: str = setting(
        "esteira-workflow-lock", env="ESTEIRA_LOCK_TABLE", description="DynamoDB table of the cooldown and the pause."
    )
    state_machine_arn: str = setting(
        "", env="ESTEIRA_STATE_MACHINE_ARN", description="The workflow the trigger starts (required)."
    )
    cooldown_seconds: int = setting(
        3600,
        env="ESTEIRA_RETRAIN_COOLDOWN_SECONDS",
        ge=0,
        description="Seconds after a triggered retrain during which alarms start no other.",
    )
    alarm_prefix: str = setting(
        ALARM_PREFIX, env="ESTEIRA_RETRAIN_ALARM_PREFIX", description="Alarms named <prefix>* are model-health alarms."
    )


def parse_alarm(event: Any, prefix: str = ALARM_PREFIX) -> tuple[dict[str, str] | None, str]:
    """(alarm facts, "") for a model alarm entering ALARM; (None, why not) for anything else."""
    if not isinstance(event, dict):
        return None, "event is not a JSON object"
    if event.get("source") != "aws.cloudwatch" or event.get("detail-type") != "CloudWatch Alarm State Change":
        return None, "not a CloudWatch alarm state change"
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return None, "event has no detail"
    name = detail.get("alarmName")
    raw_state = detail.get("state")
    state: dict[str, Any] = raw_state if isinstance(raw_state, dict) else {}
    if not isinstance(name, str) or not name.startswith(prefix):
        return None, f"alarm {name!r} is not a model alarm ({prefix}*)"
    if state.get("value") != "ALARM":
        return None, f"alarm state is {state.get('value')!r}, not ALARM"
    return {
        "alarm": name,
        "reason": str(state.get("reason", ""))[:500],
        "time": str(event.get("time", "")),
        # When the alarm changed state (CloudWatch's own time), not when EventBridge delivered it.
        "state_change_time": str(state.get("timestamp") or event.get("time", "")),
        "event_id": str(event.get("id", "")),
    }, ""


def execution_name(alarm: str, now: float, prefix: str = ALARM_PREFIX) -> str:
    """Unique, <= 80 chars, only characters Step Functions accepts; `retrain-<alarm without prefix>-...`."""
    short = re.sub(r"[^A-Za-z0-9-_]", "-", alarm.removeprefix(prefix))[:30]
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"retrain-{short}-{stamp}-{uuid.uuid4().hex[:8]}"


def retrain_trigger(
    event: Any,
    *,
    now: float | None = None,
    settings: Settings | None = None,
    trigger_settings: TriggerSettings | None = None,
    ddb: Any = None,
    sfn: Any = None,
    principal: str = "",
) -> dict[str, Any]:
    """Returns {"status": "started"|"cooldown"|"paused"|"ignored", ...}.

    `principal`: who starts the execution (the Lambda function's ARN: its execution role calls
    StartExecution), recorded in the execution input's `trigger` and from there in the lineage."""
    settings = settings or Settings.from_env()
    ts = trigger_settings or TriggerSettings.from_env()
    alarm, why = parse_alarm(event, ts.alarm_prefix)
    if alarm is None:
        return {"step": "retrain-trigger", "status": "ignored", "reason": why}
    if not ts.state_machine_arn:
        raise ValueError("ESTEIRA_STATE_MACHINE_ARN is not set")
    now = time.time() if now is None else now
    region = settings.aws_region
    ddb = ddb or boto3.client("dynamodb", endpoint_url=settings.aws_endpoint_url, region_name=region)
    sfn = sfn or boto3.client("stepfunctions", endpoint_url=settings.aws_endpoint_url, region_name=region)

    pause = ddb.get_item(TableName=ts.table, Key={"lock_id": {"S": PAUSE_KEY}}, ConsistentRead=True).get("Item")
    if pause is not None:
        until = float(pause.get("paused_until", {}).get("N", "inf"))
        if until > now:
            return {"step": "retrain-trigger", "status": "paused", "alarm": alarm["alarm"], "paused_until": until}

    name = execution_name(alarm["alarm"], now, ts.alarm_prefix)
    until = int(now) + ts.cooldown_seconds
    try:
        ddb.put_item(
            TableName=ts.table,
            Item={
                "lock_id": {"S": COOLDOWN_KEY},
                "cooldown_until": {"N": str(until)},
                "execution_name": {"S": name},
                "alarm": {"S": alarm["alarm"]},
                "started_at": {"N": str(int(now))},
                "expires_at": {"N": str(until + 86400)},  # TTL: the table forgets old cooldowns
            },
            ConditionExpression="attribute_not_exists(lock_id) OR cooldown_until <= :now",
            ExpressionAttributeValues={":now": {"N": str(int(now))}},
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        return {"step": "retrain-trigger", "status": "cooldown", "alarm": alarm["alarm"]}

    # A model-health alarm means the traffic moved: the new model's drift reference is built from the
    # recent traffic it is retrained for, not the evaluation split (docs/drift.md, reference policy).
    # The trigger is compact (pipelines/lineage.py: it is passed to training as one argument); the alarm's
    # reason and the event id go alongside it.
    trigger = lineage.normalize_trigger(
        {
            "kind": "drift-alarm",
            "alarm": alarm["alarm"],
            "state_change_time": alarm["state_change_time"],
            "principal": principal or "unknown",
        }
    )
    detail = {"reason": alarm["reason"], "event_id": alarm["event_id"], "execution_name": name}
    payload = {"trigger": trigger, "trigger_detail": detail, "reference": REFERENCE_RECENT}
    try:
        started = sfn.start_execution(stateMachineArn=ts.state_machine_arn, name=name, input=json.dumps(payload))
    except Exception:
        # Give the cooldown back, but only if it is still ours, so the event's retry can start it.
        with contextlib.suppress(ClientError):
            ddb.delete_item(
                TableName=ts.table,
                Key={"lock_id": {"S": COOLDOWN_KEY}},
                ConditionExpression="execution_name = :n",
                ExpressionAttributeValues={":n": {"S": name}},
            )
        raise
    return {
        "step": "retrain-trigger",
        "status": "started",
        "alarm": alarm["alarm"],
        "execution_name": name,
        "execution_arn": started["executionArn"],
        "cooldown_until": until,
    }
