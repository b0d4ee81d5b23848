"""The storm guard: many alarm events, one execution per cooldown (moto in-process: DynamoDB + Step Functions)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas import retrain_trigger as lambda_module
from localaws.atomic import serialise_dynamodb_writes
from pipelines.retrain_trigger import COOLDOWN_KEY, PAUSE_KEY, TriggerSettings, parse_alarm, retrain_trigger

REGION = "us-east-1"
T0 = 1_790_000_000.0


def alarm_event(name: str = "esteira-model-drift", state: str = "ALARM", i: int = 0) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"evt-{i}",
        "source": "aws.cloudwatch",
        "detail-type": "CloudWatch Alarm State Change",
        "time": "2026-11-24T06:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:{name}"],
        "detail": {
            "alarmName": name,
            "state": {"value": state, "reason": "Threshold Crossed", "timestamp": "2026-11-24T06:00:00.000+0000"},
            "previousState": {"value": "OK"},
        },
    }


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    serialise_dynamodb_writes()  # real DynamoDB's conditional writes are atomic; moto's are not (localaws/atomic.py)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(
            TableName="esteira-workflow-lock",
            KeySchema=[{"AttributeName": "lock_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "lock_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.create_state_machine(
            name="esteira-train-evaluate-deploy",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn="arn:aws:iam::123456789012:role/esteira-sfn",
        )["stateMachineArn"]
        monkeypatch.setenv("ESTEIRA_STATE_MACHINE_ARN", arn)
        monkeypatch.setenv("ESTEIRA_LOCK_TABLE", "esteira-workflow-lock")
        monkeypatch.setenv("ESTEIRA_RETRAIN_COOLDOWN_SECONDS", "3600")
        yield {"ddb": ddb, "sfn": sfn, "arn": arn}


def executions(aws: dict[str, Any]) -> list[dict[str, Any]]:
    return aws["sfn"].list_executions(stateMachineArn=aws["arn"])["executions"]


def test_fifty_alarms_within_a_minute_start_exactly_one_execution(aws: dict[str, Any]) -> None:
    results = [retrain_trigger(alarm_event(i=i), now=T0 + i * 1.2) for i in range(50)]  # 0..58.8 s
    statuses = [r["status"] for r in results]
    assert statuses.count("started") == 1 and statuses.count("cooldown") == 49
    runs = executions(aws)
    assert len(runs) == 1 and runs[0]["name"] == results[0]["execution_name"]
    started = aws["sfn"].describe_execution(executionArn=runs[0]["executionArn"])
    trigger = json.loads(started["input"])["trigger"]
    assert trigger["alarm"] == "esteira-model-drift"
    # The lineage's trigger (pipelines/lineage.py): the alarm's own state-change time, the starter.
    assert trigger["kind"] == "drift-alarm" and trigger["state_change_time"] == "2026-11-24T06:00:00.000+0000"
    assert trigger["principal"] == "unknown"  # the Lambda handler passes its function ARN


def test_fifty_concurrent_alarms_from_two_alarms_start_exactly_one_execution(aws: dict[str, Any]) -> None:
    names = ["esteira-model-drift", "esteira-model-low-confidence"]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda i: lambda_module.handler(alarm_event(names[i % 2], i=i), None), range(50)))
    statuses = [r["status"] for r in results]
    assert statuses.count("started") == 1, statuses
    assert statuses.count("cooldown") == 49
    assert len(executions(aws)) == 1


def test_after_the_cooldown_a_new_alarm_starts_a_new_execution(aws: dict[str, Any]) -> None:
    first = retrain_trigger(alarm_event(), now=T0)
    assert retrain_trigger(alarm_event(), now=T0 + 3599)["status"] == "cooldown"
    second = retrain_trigger(alarm_event(), now=T0 + 3600)
    assert second["status"] == "started" and second["execution_name"] != first["execution_name"]
    assert len(executions(aws)) == 2


def test_cooldown_is_configurable(aws: dict[str, Any]) -> None:
    ts = TriggerSettings(state_machine_arn=aws["arn"], cooldown_seconds=60)
    assert retrain_trigger(alarm_event(), now=T0, trigger_settings=ts)["status"] == "started"
    assert retrain_trigger(alarm_event(), now=T0 + 59, trigger_settings=ts)["status"] == "cooldown"
    assert retrain_trigger(alarm_event(), now=T0 + 61, trigger_settings=ts)["status"] == "started"


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (alarm_event("esteira-service-5xx-rate"), "not a model alarm"),
        (alarm_event(state="OK"), "not ALARM"),
        ({"source": "aws.events"}, "not a CloudWatch"),
        ("nonsense", "not a JSON object"),
    ],
)
def test_other_events_are_ignored_and_start_nothing(aws: dict[str, Any], event: Any, why: str) -> None:
    result = retrain_trigger(event, now=T0)
    assert result["status"] == "ignored" and why in result["reason"]
    assert executions(aws) == []
    assert "Item" not in aws["ddb"].get_item(TableName="esteira-workflow-lock", Key={"lock_id": {"S": COOLDOWN_KEY}})


def test_pause_item_stops_retraining_until_it_expires(aws: dict[str, Any]) -> None:
    aws["ddb"].put_item(
        TableName="esteira-workflow-lock",
        Item={"lock_id": {"S": PAUSE_KEY}, "paused_until": {"N": str(int(T0 + 600))}},
    )
    assert retrain_trigger(alarm_event(), now=T0)["status"] == "paused"
    assert executions(aws) == []
    assert retrain_trigger(alarm_event(), now=T0 + 601)["status"] == "started"


def test_a_failed_start_gives_the_cooldown_back(aws: dict[str, Any]) -> None:
    ts = TriggerSettings(state_machine_arn=aws["arn"] + "-missing")
    with pytest.raises(Exception, match="StateMachineDoesNotExist|does not exist"):
        retrain_trigger(alarm_event(), now=T0, trigger_settings=ts)
    # The retry (EventBridge redelivers) starts it once the state machine is right.
    assert retrain_trigger(alarm_event(), now=T0 + 5)["status"] == "started"


def test_parse_alarm_keeps_the_facts() -> None:
    facts, why = parse_alarm(alarm_event(i=7))
    assert why == "" and facts is not None
    assert facts["alarm"] == "esteira-model-drift" and facts["event_id"] == "evt-7"
