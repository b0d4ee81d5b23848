"""The same ASL on LocalStack: control flow through mocked Lambda/ECS tasks with real SNS, and the
alarm -> EventBridge -> Step Functions path with LocalStack's own alarm evaluation."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "infra" / "cdk"))
from esteira_cdk.asl import RELEASE_ASL_PATH, render_definition  # templatefile() semantics, as CDK renders it
from esteira_cdk.contract import contract

# Also `slow`: it starts LocalStack (~30 s), so it stays out of the default `make test`.
pytestmark = [pytest.mark.localstack, pytest.mark.slow]
SM_NAME = "esteira-train-evaluate-deploy"
RELEASE_NAME = "esteira-release"
ACCOUNT = "000000000000"


def _client(endpoint: str, service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip


@pytest.fixture(scope="module")
def machine(localstack: str) -> dict[str, str]:
    sns = _client(localstack, "sns")
    sqs = _client(localstack, "sqs")
    topic = sns.create_topic(Name="esteira-workflow")["TopicArn"]
    queue = sqs.create_queue(QueueName="esteira-notes")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn, Attributes={"RawMessageDelivery": "true"})
    fn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:esteira-%s"
    names = (
        "lock",
        "validate_data",
        "evaluate",
        "promote",
        "deploy",
        "service_stable",
        "smoke_test",
        "rollback",
        "canary_check",
    )
    variables = {f"{n}_function_arn": fn % n.replace("_", "-") for n in names} | {
        "sns_topic_arn": topic,
        "ecs_cluster_arn": f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/esteira",
        "train_task_definition_arn": f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/esteira-train:1",
        "train_container_name": "train",
        "train_subnets": "subnet-1",
        "train_security_groups": "sg-1",
        "training_backend": "ecs",
        # As Terraform renders them without the optional backends (modules/workflow definition_variables).
        "sagemaker_enabled": "false",
        "ec2_training_enabled": "false",
        "ec2_capacity_provider": "",
        "train_ec2_task_definition_arn": "",
        "sagemaker_role_arn": f"arn:aws:iam::{ACCOUNT}:role/sm",
        "training_image_uri": "esteira-training:1",
        "image_variable": contract().image_variable,
        "lock_table_name": "esteira-workflow-lock",
        "data_bucket": "d",
        "artifacts_bucket": "a",
        "deployment_strategy": "all_at_once",
        "canary_steps": "[10,50,100]",
        "canary_bake_seconds": "600",
        "shadow_seconds": "1800",
        "mlflow_credentials_secret": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:esteira/mlflow/workflow",
        "release_state_machine_arn": f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:{RELEASE_NAME}",
    }
    sfn = _client(localstack, "stepfunctions")
    role = f"arn:aws:iam::{ACCOUNT}:role/sfn"
    release = sfn.create_state_machine(
        name=RELEASE_NAME, definition=render_definition(variables, RELEASE_ASL_PATH), roleArn=role
    )["stateMachineArn"]
    arn = sfn.create_state_machine(name=SM_NAME, definition=render_definition(variables), roleArn=role)[
        "stateMachineArn"
    ]
    return {"arn": arn, "release": release, "queue": queue}


def _run(
    localstack: str, machine: dict[str, str], case: str, key: str = "arn", payload: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    sfn = _client(localstack, "stepfunctions")
    ex = sfn.start_execution(
        stateMachineArn=f"{machine[key]}#{case}", name=f"{case}-{time.time_ns()}", input=json.dumps(payload or {})
    )
    deadline = time.monotonic() + 120
    while True:
        desc = sfn.describe_execution(executionArn=ex["executionArn"])
        if desc["status"] != "RUNNING":
            break
        assert time.monotonic() < deadline
        time.sleep(0.5)
    events = sfn.get_execution_history(executionArn=ex["executionArn"], maxResults=1000)["events"]
    return desc, [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def _subjects(localstack: str, machine: dict[str, str]) -> list[str]:
    sqs = _client(localstack, "sqs")
    got = sqs.receive_message(QueueUrl=machine["queue"], MaxNumberOfMessages=10, WaitTimeSeconds=2)
    msgs = got.get("Messages", [])
    for m in msgs:
        sqs.delete_message(QueueUrl=machine["queue"], ReceiptHandle=m["ReceiptHandle"])
    return [m["Body"][:200] for m in msgs]


@pytest.mark.parametrize(
    ("case", "status", "must", "must_not"),
    [
        ("HappyPath", "SUCCEEDED", ["TrainEcs", "Evaluate", "Release", "NotifyReleased", "ReleaseLock"],
         ["ReleaseEnded?"]),
        ("GateRejected", "SUCCEEDED", ["Evaluate", "NotifyRejected", "ReleaseLock"], ["Release"]),
        ("TrainingFails", "FAILED", ["TrainEcs", "NotifyFailure", "ReleaseLockAfterFailure"], ["Evaluate"]),
        # The release really runs (LocalStack refuses a mocked error named States.*): with no functions,
        # Deploy and then Rollback fail, so the child ends RollbackFailed and the workflow reads that.
        ("ReleaseFails", "FAILED", ["Release", "ReleaseEnded?", "ReleaseFailed", "RolledBack?",
                                    "NotifyRollbackFailed", "ReleaseLockAfterFailure"], ["NotifyReleased"]),
        ("ReleaseCannotStart", "FAILED", ["Release", "ReleaseEnded?", "NotifyFailure", "ReleaseLockAfterFailure"],
         ["ReleaseFailed"]),
        ("AlreadyRunning", "SUCCEEDED", ["AlreadyRunning", "Skipped"], ["ValidateData"]),
    ],
)  # fmt: skip
def test_control_flow(
    localstack: str, machine: dict[str, str], case: str, status: str, must: list[str], must_not: list[str]
) -> None:
    desc, states = _run(localstack, machine, case)
    assert desc["status"] == status, (states, desc.get("cause"))
    assert all(s in states for s in must), " ".join(states)
    assert not any(s in states for s in must_not), states
    if case != "AlreadyRunning":
        assert _subjects(localstack, machine), "every outcome notifies through SNS"


RELEASE_INPUT = {
    "model_version": "2",
    "champion_version": "1",
    "already_champion": False,
    "evaluation": {"model_version": "2", "gate": {"passed": True, "reasons": ["beats champion"]}},
    "eval_data": "s3://data/snapshots/sha256=02/",
    "smoke_data": "",
    "overrides": {},
    "deployment": {"task_definition": None, "previous_task_definition": None},
    "workflow_execution_arn": f"arn:aws:states:us-east-1:{ACCOUNT}:execution:{SM_NAME}:x",
}


@pytest.mark.parametrize(
    ("case", "status", "states"),
    [
        ("AllAtOnce", "SUCCEEDED", ["DeploymentStrategy?", "Deploy", "WaitServiceStable", "SmokeTest",
                                    "RecordRelease", "Promote", "Released"]),
        ("SmokeFails", "FAILED", ["Deploy", "WaitServiceStable", "SmokeTest", "Rollback", "WaitRollbackStable",
                                  "RolledBack"]),
    ],
)  # fmt: skip
def test_release_control_flow(
    localstack: str, machine: dict[str, str], case: str, status: str, states: list[str]
) -> None:
    """The release machine on its own: Promote (the alias) only after the smoke test; a failed smoke test
    rolls the service back and never reaches Promote."""
    desc, entered = _run(localstack, machine, case, key="release", payload=RELEASE_INPUT)
    assert desc["status"] == status, (entered, desc.get("cause"))
    it = iter(entered)
    assert all(s in it for s in states), entered
    if status == "FAILED":
        assert "Promote" not in entered and desc.get("error") == "RolledBack", desc


def test_alarm_evaluates_and_its_event_starts_the_state_machine(localstack: str) -> None:
    """LocalStack evaluates the alarm itself (its AlarmActions reach SNS). Measured: community 2026.3.0
    does not emit "CloudWatch Alarm State Change" to EventBridge, so the event is sent with PutEvents in
    the shape AWS emits, built from the alarm's real state, to check the rule and its Step Functions target."""
    sfn = _client(localstack, "stepfunctions")
    target = sfn.create_state_machine(
        name="retrain-probe", roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
    )["stateMachineArn"]  # fmt: skip
    events = _client(localstack, "events")
    pattern = {"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
               "detail": {"alarmName": [{"prefix": "esteira-model-"}], "state": {"value": ["ALARM"]}}}  # fmt: skip
    events.put_rule(Name="esteira-retrain", EventPattern=json.dumps(pattern))
    events.put_targets(
        Rule="esteira-retrain", Targets=[{"Id": "sm", "Arn": target, "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/ev"}]
    )
    sns, sqs = _client(localstack, "sns"), _client(localstack, "sqs")
    topic = sns.create_topic(Name="esteira-alarms")["TopicArn"]
    queue = sqs.create_queue(QueueName="esteira-alarm-actions")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn)
    cw = _client(localstack, "cloudwatch")
    dims = [{"Name": "Service", "Value": "esteira-serving"}, {"Name": "ModelVersion", "Value": "1"}]
    cw.put_metric_alarm(
        AlarmName="esteira-model-drift", Namespace="Esteira", MetricName="DriftScore", Dimensions=dims,
        Statistic="Maximum", Period=10, EvaluationPeriods=1, Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold", AlarmActions=[topic],
    )  # fmt: skip
    alarm: dict[str, Any] = {}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        datum = {"MetricName": "DriftScore", "Dimensions": dims, "Value": 1.5}
        cw.put_metric_data(Namespace="Esteira", MetricData=[datum])
        alarm = cw.describe_alarms(AlarmNames=["esteira-model-drift"])["MetricAlarms"][0]
        if alarm["StateValue"] == "ALARM":
            break
        time.sleep(3)
    assert alarm["StateValue"] == "ALARM", "LocalStack never evaluated the alarm"
    action = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=10).get("Messages", [])
    assert action and "esteira-model-drift" in action[0]["Body"]

    detail = {"alarmName": alarm["AlarmName"], "state": {"value": alarm["StateValue"], "reason": alarm["StateReason"]},
              "previousState": {"value": "OK"}}  # fmt: skip
    events.put_events(
        Entries=[{"Source": "aws.cloudwatch", "DetailType": "CloudWatch Alarm State Change",
                  "Detail": json.dumps(detail), "Resources": [alarm["AlarmArn"]]}]
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not sfn.list_executions(stateMachineArn=target)["executions"]:
        assert time.monotonic() < deadline, "the rule never started the state machine"
        time.sleep(0.5)
