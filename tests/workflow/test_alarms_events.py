"""localaws evaluates metric alarms on PutMetricData and delivers the state change through EventBridge."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

from localaws import LocalAWS
from localaws.alarms import evaluate

PATTERN = {
    "source": ["aws.cloudwatch"],
    "detail-type": ["CloudWatch Alarm State Change"],
    "detail": {"alarmName": [{"prefix": "esteira-model-"}], "state": {"value": ["ALARM"]}},
}
DIMS = [{"Name": "Service", "Value": "esteira-serving"}, {"Name": "ModelVersion", "Value": "3"}]


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("README", "the handler is imported from the checkout")
    return buf.getvalue()


def _until(check, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise TimeoutError("condition not met")


def test_alarm_evaluates_and_reaches_lambda_stepfunctions_and_sqs(local_aws: LocalAWS, tmp_path: Path) -> None:
    aws = local_aws
    iam = aws.client("iam")
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps({"Statement": []}))["Role"]["Arn"]
    sink = tmp_path / "events.jsonl"
    fn = aws.client("lambda").create_function(
        FunctionName="retrain-probe", Runtime="python3.11", Role=role, Handler="tests.workflow.event_sink.handler",
        Code={"ZipFile": _zip()}, Environment={"Variables": {"SINK_FILE": str(sink)}},
    )["FunctionArn"]  # fmt: skip
    sm = aws.client("stepfunctions").create_state_machine(
        name="retrain", roleArn=role,
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
    )["stateMachineArn"]  # fmt: skip
    sqs = aws.client("sqs")
    queue = sqs.create_queue(QueueName="alarms")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = aws.client("events")
    events.put_rule(Name="esteira-retrain-on-alarm", EventPattern=json.dumps(PATTERN))
    events.put_targets(
        Rule="esteira-retrain-on-alarm",
        Targets=[{"Id": "fn", "Arn": fn}, {"Id": "sm", "Arn": sm, "RoleArn": role}, {"Id": "q", "Arn": queue_arn}],
    )
    cw = aws.client("cloudwatch")
    for name in ("esteira-model-drift", "esteira-service-5xx"):
        cw.put_metric_alarm(
            AlarmName=name, Namespace="Esteira", MetricName="DriftScore", Dimensions=DIMS, Statistic="Maximum",
            Period=60, EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanOrEqualToThreshold",
        )  # fmt: skip

    cw.put_metric_data(Namespace="Esteira", MetricData=[{"MetricName": "DriftScore", "Dimensions": DIMS, "Value": 0.4}])
    states = {a["AlarmName"]: a["StateValue"] for a in cw.describe_alarms()["MetricAlarms"]}
    assert states == {"esteira-model-drift": "OK", "esteira-service-5xx": "OK"}
    assert not sink.exists()

    cw.put_metric_data(Namespace="Esteira", MetricData=[{"MetricName": "DriftScore", "Dimensions": DIMS, "Value": 1.7}])
    assert cw.describe_alarms(AlarmNames=["esteira-model-drift"])["MetricAlarms"][0]["StateValue"] == "ALARM"
    lines = _until(lambda: sink.exists() and sink.read_text().splitlines())
    got = [json.loads(line) for line in lines]
    # Only the esteira-model-* alarm matches the rule; the service alarm changed state too but is filtered out.
    assert [e["detail"]["alarmName"] for e in got] == ["esteira-model-drift"]
    assert got[0]["detail"]["state"]["value"] == "ALARM" and got[0]["detail"]["previousState"]["value"] == "OK"
    sfn = aws.client("stepfunctions")
    execs = _until(lambda: sfn.list_executions(stateMachineArn=sm)["executions"])
    assert len(execs) == 1
    message = _until(lambda: sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages"))
    assert json.loads(message[0]["Body"])["detail-type"] == "CloudWatch Alarm State Change"
    assert all(d["ok"] for d in aws.deliveries), aws.deliveries  # type: ignore[attr-defined]


def test_evaluation_honours_datapoints_and_missing_data() -> None:
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from moto.cloudwatch.models import Dimension, MetricDatum

    now = datetime.now(UTC)
    dims = [{"Name": "Service", "Value": "s"}]
    alarm = SimpleNamespace(
        metric_data_queries=None, metric_name="M", namespace="N", comparison_operator="GreaterThanThreshold",
        dimensions=[Dimension("Service", "s")], period=60, evaluation_periods=3, datapoints_to_alarm=2,
        statistic="Average", threshold=5.0,
    )  # fmt: skip

    def datum(value: float, ago: int) -> MetricDatum:
        return MetricDatum("N", "M", value, dims, now - timedelta(seconds=ago))

    assert evaluate(alarm, [], now)[0] == "INSUFFICIENT_DATA"  # type: ignore[index]  # missing (the default)
    assert evaluate(alarm, [datum(9, 10)], now)[0] == "OK"  # type: ignore[index]  # 1 of 2 needed
    assert evaluate(alarm, [datum(9, 10), datum(7, 70)], now)[0] == "ALARM"  # type: ignore[index]
    assert evaluate(alarm, [datum(9, 10), datum(1, 70), datum(8, 75)], now)[0] == "OK"  # type: ignore[index]
    assert evaluate(alarm, [datum(9, 10), datum(9, 400)], now)[0] == "OK"  # type: ignore[index]  # too old


def test_missing_data_treatment_and_time_scale_follow_the_alarm_as_applied() -> None:
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from moto.cloudwatch.models import Dimension, MetricDatum

    now = datetime.now(UTC)

    def alarm(treat: str, period: int = 60) -> SimpleNamespace:
        return SimpleNamespace(
            metric_data_queries=None, metric_name="DriftScore", namespace="N",
            comparison_operator="GreaterThanOrEqualToThreshold", dimensions=[Dimension("Service", "s")],
            period=period, evaluation_periods=3, datapoints_to_alarm=2, statistic="Maximum", threshold=1.0,
            treat_missing_data=treat,
        )  # fmt: skip

    one_breach = [MetricDatum("N", "DriftScore", 1.0, [{"Name": "Service", "Value": "s"}], now - timedelta(seconds=5))]
    assert evaluate(alarm("notBreaching"), [], now)[0] == "OK"  # type: ignore[index]
    assert evaluate(alarm("breaching"), [], now)[0] == "ALARM"  # type: ignore[index]
    assert evaluate(alarm("ignore"), [], now) is None
    assert evaluate(alarm("notBreaching"), one_breach, now)[0] == "OK"  # type: ignore[index]  # 1 of 2
    assert evaluate(alarm("breaching"), one_breach, now)[0] == "ALARM"  # type: ignore[index]  # + 2 missing
    hourly = alarm("notBreaching", period=3600)

    def points(*ages: float) -> list[MetricDatum]:
        dims = [{"Name": "Service", "Value": "s"}]
        return [MetricDatum("N", "DriftScore", 1.0, dims, now - timedelta(seconds=a)) for a in ages]

    assert evaluate(hourly, points(5, 3700), now)[0] == "ALARM"  # type: ignore[index]  # two hours breach
    # x1440 (the demo's scale): an hour of the alarm is 2.5 s here, three of them 7.5 s.
    assert evaluate(hourly, points(5, 3700), now, time_scale=1440)[0] == "OK"  # type: ignore[index]
    scaled = evaluate(hourly, points(1, 4), now, time_scale=1440)
    assert scaled is not None and scaled[0] == "ALARM" and "x1440 time" in scaled[1]
