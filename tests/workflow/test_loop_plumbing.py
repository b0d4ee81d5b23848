"""The localaws pieces the whole loop needs: schedules that fire, EMF that becomes metrics (and alarms),
bucket policies evaluated as AWS does over TLS, and a replaced task drained before it is stopped."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from localaws import LocalAWS
from localaws.emf import metric_data
from localaws.s3policy import as_over_tls
from localaws.schedule import period_seconds


@pytest.mark.parametrize(
    ("expr", "seconds"),
    [
        ("rate(1 minute)", 60),
        ("rate(5 minutes)", 300),
        ("rate(6 hours)", 21600),
        ("rate(1 day)", 86400),
        ("cron(0 * * * ? *)", None),
    ],
)
def test_rate_expressions(expr: str, seconds: int | None) -> None:
    assert period_seconds(expr) == seconds


def test_a_schedule_rule_fires_on_time_scaled_periods(tmp_path: Path) -> None:
    with LocalAWS(workdir=tmp_path, time_scale=60) as aws:  # rate(1 minute) -> every second
        sqs = aws.client("sqs")
        queue = sqs.create_queue(QueueName="ticks")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = aws.client("events")
        events.put_rule(Name="tick", ScheduleExpression="rate(1 minute)")
        events.put_targets(Rule="tick", Targets=[{"Id": "q", "Arn": arn}])
        events.put_rule(Name="off", ScheduleExpression="rate(1 minute)", State="DISABLED")
        events.put_targets(Rule="off", Targets=[{"Id": "q", "Arn": arn}])
        time.sleep(3.6)
        fired = [f["rule"] for f in aws.scheduler.fired]  # type: ignore[union-attr]
        assert 2 <= fired.count("tick") <= 4 and "off" not in fired
        body = json.loads(sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"][0]["Body"])
        assert body["detail-type"] == "Scheduled Event" and body["resources"][0].endswith("rule/tick")


def test_a_schedule_rule_matches_no_event(tmp_path: Path) -> None:
    """In AWS a rule with a schedule and no event pattern never matches bus events (moto's empty pattern
    matches all: every alarm state change started the scheduled drift check as well)."""
    with LocalAWS(workdir=tmp_path) as aws:
        sqs, events = aws.client("sqs"), aws.client("events")
        arns = {}
        for name in ("scheduled", "matched"):
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arns[name] = (
                url,
                sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"],
            )
        events.put_rule(Name="daily", ScheduleExpression="rate(1 day)")
        events.put_targets(Rule="daily", Targets=[{"Id": "q", "Arn": arns["scheduled"][1]}])
        events.put_rule(Name="alarms", EventPattern=json.dumps({"source": ["aws.cloudwatch"]}))
        events.put_targets(Rule="alarms", Targets=[{"Id": "q", "Arn": arns["matched"][1]}])
        events.put_events(
            Entries=[{"Source": "aws.cloudwatch", "DetailType": "CloudWatch Alarm State Change", "Detail": "{}"}]
        )
        got = sqs.receive_message(QueueUrl=arns["matched"][0], WaitTimeSeconds=5).get("Messages", [])
        assert len(got) == 1
        assert not sqs.receive_message(QueueUrl=arns["scheduled"][0], WaitTimeSeconds=1).get("Messages")


def test_a_compressed_schedule_does_not_fire_while_its_last_delivery_runs(tmp_path: Path) -> None:
    """At x1440 a 6-hour drift check is due every 15 s; checks must not pile up on the emulator's cores."""
    import threading

    from localaws.schedule import Scheduler

    with LocalAWS(workdir=tmp_path) as aws:
        aws.client("events").put_rule(Name="slow", ScheduleExpression="rate(1 minute)")
        aws.client("events").put_targets(Rule="slow", Targets=[{"Id": "t", "Arn": "arn:aws:sqs:us-east-1:1:q"}])
        release = threading.Event()

        class Local:
            def deliver(self, rule: object, target: object, event: object) -> None:
                release.wait(10)

        scheduler = Scheduler(Local(), time_scale=60)  # every second; ticked by hand below
        scheduler.tick(now=0.0)
        for now in (1.0, 2.0, 3.0):  # the first delivery has not ended: due, but not fired again
            scheduler.tick(now=now)
        release.set()
        time.sleep(0.2)
        scheduler.tick(now=4.0)
    assert [f["rule"] for f in scheduler.fired] == ["slow", "slow"] and scheduler.deferred == {"slow": 2}


def _emf(version: str, p99: float, ts_ms: int) -> dict[str, object]:
    return {
        "_aws": {
            "Timestamp": ts_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": "Esteira",
                    "Dimensions": [["Service", "ModelVersion"], ["Service"]],
                    "Metrics": [
                        {"Name": "LatencyP99", "Unit": "Milliseconds"},
                        {"Name": "RequestCount", "Unit": "Count"},
                    ],
                }
            ],
        },
        "Service": "svc",
        "ModelVersion": version,
        "LatencyP99": p99,
        "RequestCount": 10,
    }


def test_emf_documents_become_metric_data_per_dimension_set() -> None:
    [(namespace, data)] = metric_data(_emf("3", 12.5, 1_790_000_000_000))
    assert namespace == "Esteira" and len(data) == 4
    assert {tuple(d["Name"] for d in m["Dimensions"]) for m in data} == {("Service", "ModelVersion"), ("Service",)}
    assert metric_data({"message": "a plain log line"}) == []


def test_emf_in_a_task_log_reaches_cloudwatch_and_its_alarm(tmp_path: Path) -> None:
    with LocalAWS(workdir=tmp_path) as aws:
        cw = aws.client("cloudwatch")
        cw.put_metric_alarm(
            AlarmName="p99",
            Namespace="Esteira",
            MetricName="LatencyP99",
            Dimensions=[{"Name": "Service", "Value": "svc"}],
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=100,
            ComparisonOperator="GreaterThanThreshold",
        )
        logs = tmp_path / "logs"
        logs.mkdir(exist_ok=True)
        now_ms = int(time.time() * 1000)
        with (logs / "task-serving.log").open("w") as fh:
            fh.write('{"level": "info", "message": "not a metric"}\n')
            fh.write(json.dumps(_emf("1", 250.0, now_ms)) + "\n")
            fh.write('{"_aws": {"Timestamp": 1, "CloudWatch')  # a half-written line waits for the rest
        assert aws.emf is not None and aws.emf.ship_once() == 4
        assert aws.emf.ship_once() == 0  # nothing twice
        stats = cw.get_metric_statistics(
            Namespace="Esteira", MetricName="LatencyP99", Dimensions=[{"Name": "Service", "Value": "svc"}],
            StartTime=now_ms / 1000 - 120, EndTime=now_ms / 1000 + 60, Period=60, Statistics=["Maximum"],
        )  # fmt: skip
        assert stats["Datapoints"][0]["Maximum"] == 250.0
        assert cw.describe_alarms(AlarmNames=["p99"])["MetricAlarms"][0]["StateValue"] == "ALARM"


def test_tls_only_statements_do_not_deny_the_emulator_s_plain_http(tmp_path: Path) -> None:
    deny_http = {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": ["arn:aws:s3:::policy-bucket", "arn:aws:s3:::policy-bucket/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    deny_all = {
        "Sid": "DenyDelete",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": "arn:aws:s3:::policy-bucket/locked/*",
    }
    policy = json.dumps({"Version": "2012-10-17", "Statement": [deny_http, deny_all]})
    assert [s["Sid"] for s in json.loads(as_over_tls(policy))["Statement"]] == ["DenyDelete"]
    with LocalAWS(workdir=tmp_path) as aws:
        s3 = aws.client("s3")
        s3.create_bucket(Bucket="policy-bucket")
        s3.put_bucket_policy(Bucket="policy-bucket", Policy=policy)
        s3.put_object(Bucket="policy-bucket", Key="open/x", Body=b"1")  # allowed, as over HTTPS in AWS
        with pytest.raises(Exception, match="403|Forbidden|AccessDenied"):
            s3.put_object(Bucket="policy-bucket", Key="locked/x", Body=b"1")  # an unconditional Deny still denies


def test_a_replaced_task_is_drained_before_it_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALAWS_DEREGISTRATION_DELAY", "1.5")
    server = ["sh", "-c", f"exec {sys.executable} -m http.server --bind 127.0.0.1 $PORT"]
    with LocalAWS(workdir=tmp_path, health_path="/") as aws:
        ecs = aws.client("ecs")
        ecs.create_cluster(clusterName="c")

        def revision(tag: str) -> str:
            container = {
                "name": "web",
                "image": "i",
                "essential": True,
                "memory": 256,
                "command": server,
                "environment": [{"name": "TAG", "value": tag}, {"name": "PORT", "value": "8000"}],
                "portMappings": [{"containerPort": 8000}],
            }
            td = ecs.register_task_definition(family="web", containerDefinitions=[container])
            return str(td["taskDefinition"]["taskDefinitionArn"])

        first = revision("a")
        ecs.create_service(cluster="c", serviceName="web", taskDefinition=first, desiredCount=1)
        aws.service_url("c", "web")
        plane = aws.ecs
        assert plane is not None

        def tasks(td: str) -> list[object]:
            return [t for t in plane.tasks.values() if t.task_definition == td]

        deadline = time.monotonic() + 20
        while not any(t.healthy for t in tasks(first)) and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.2)
        [old] = tasks(first)
        assert old.healthy  # type: ignore[attr-defined]
        ecs.update_service(cluster="c", service="web", taskDefinition=revision("b"))
        while not old.draining and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.1)
        assert old.draining and not old.stopped  # type: ignore[attr-defined]
        assert plane.route(("c", "web")) != old.first_port()  # type: ignore[attr-defined]
        time.sleep(2.5)
        assert old.stopped  # type: ignore[attr-defined]
