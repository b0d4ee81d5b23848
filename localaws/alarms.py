"""CloudWatch alarms that evaluate, and EventBridge rules that deliver to Lambda, Step Functions and SNS.

moto stores metric data and alarms but never evaluates them, and its PutEvents does not deliver to
Lambda or Step Functions targets. Here:
- after every PutMetricData, and on a clock as AWS does (every minute), each plain metric alarm (no
  metric math) is evaluated over its last EvaluationPeriods x Period seconds (Average/Sum/Minimum/
  Maximum/SampleCount, DatapointsToAlarm, the four comparison operators) with its TreatMissingData:
  `missing` (the default: periods without data neither breach nor clear; no data at all is
  INSUFFICIENT_DATA), `notBreaching`, `breaching` and `ignore` (no data keeps the state);
- the emulator's time scale (LocalAWS.time_scale, as for schedules) divides every period, so an alarm
  applied with Period=3600 evaluates 1-hour windows of scaled time: a demo runs the alarms as applied;
- a state change (from evaluation or SetAlarmState) emits the "CloudWatch Alarm State Change" event
  (source aws.cloudwatch) on the default event bus;
- every rule's targets receive matching events: Lambda (Invoke, async), Step Functions
  (StartExecution with a unique name), SNS (Publish), SQS; `Input` and `InputTransformer` are honoured.
Deliveries run on a background thread, as they do in AWS; `LocalAWS.deliveries` records them.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.config import Config

LAMBDA_MAX_SECONDS = 900  # the longest a Lambda function may run

OPS = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _stat(values: list[float], statistic: str) -> float:
    if statistic == "Sum":
        return sum(values)
    if statistic == "Maximum":
        return max(values)
    if statistic == "Minimum":
        return min(values)
    if statistic == "SampleCount":
        return float(len(values))
    return sum(values) / len(values)


def evaluate(
    alarm: Any, metric_data: list[Any], now: datetime | None = None, time_scale: float = 1.0
) -> tuple[str, str] | None:
    """(new state, reason) for one alarm, or None when it cannot be evaluated here or keeps its state."""
    from moto.cloudwatch.models import MetricDatum

    if alarm.metric_data_queries or not alarm.metric_name or alarm.comparison_operator not in OPS:
        return None
    now = now or datetime.now(UTC)
    want = {(d.name, d.value) for d in alarm.dimensions}
    points = [
        (_aware(d.timestamp), float(d.value))
        for d in metric_data
        if isinstance(d, MetricDatum)
        and d.namespace == alarm.namespace
        and d.name == alarm.metric_name
        and {(x.name, x.value) for x in d.dimensions} == want
    ]
    period = int(alarm.period or 60)
    window = period / time_scale  # seconds of wall-clock time per period
    periods = int(alarm.evaluation_periods or 1)
    needed = int(alarm.datapoints_to_alarm or periods)
    statistic = alarm.statistic or "Average"
    treat = getattr(alarm, "treat_missing_data", None) or "missing"
    breaching, with_data, last = 0, 0, None
    for i in range(periods):
        end = now - timedelta(seconds=i * window)
        start = end - timedelta(seconds=window)
        values = [v for ts, v in points if start < ts <= end]
        if not values:
            breaching += treat == "breaching"
            continue
        with_data += 1
        value = _stat(values, statistic)
        last = value if last is None else last
        if OPS[alarm.comparison_operator](value, float(alarm.threshold)):
            breaching += 1
    scaled = f" (x{time_scale:g} time)" if time_scale != 1 else ""
    if with_data == 0:
        if treat == "ignore":
            return None
        if treat == "missing":
            return "INSUFFICIENT_DATA", f"no datapoints in the last {periods} periods of {period} s{scaled}"
    state = "ALARM" if breaching >= needed else "OK"
    reason = (
        f"Threshold Crossed: {breaching} of {periods} periods of {period} s{scaled} breached "
        f"{alarm.comparison_operator} {alarm.threshold} ({with_data} with data, missing data {treat}; "
        f"latest {statistic} {last})."
    )
    return state, reason


def alarm_event(alarm: Any, old: str, new: str, reason: str, account: str, region: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": account,
        "time": now,
        "region": region,
        "resources": [alarm.alarm_arn],
        "detail": {
            "alarmName": alarm.name,
            "state": {"value": new, "reason": reason, "timestamp": now},
            "previousState": {"value": old, "timestamp": now},
            "configuration": {
                "metrics": [
                    {
                        "metricStat": {
                            "metric": {
                                "namespace": alarm.namespace,
                                "name": alarm.metric_name,
                                "dimensions": {d.name: d.value for d in alarm.dimensions},
                            },
                            "period": alarm.period,
                            "stat": alarm.statistic,
                        }
                    }
                ]
            },
        },
    }


def install(local: Any) -> Any:
    from moto.cloudwatch.models import CloudWatchBackend
    from moto.events.models import EventTemplateParser, Rule, events_backends

    original_put = CloudWatchBackend.put_metric_data
    original_set = CloudWatchBackend.set_alarm_state
    original_send = Rule.send_to_targets
    local.deliveries = []
    local.deliver = lambda rule, target, event: deliver(rule, target, event)  # schedule.py uses it too

    def deliver(rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
        if "Input" in target:
            payload: Any = json.loads(target["Input"])
        elif "InputTransformer" in target:
            tr = target["InputTransformer"]
            payload = EventTemplateParser.parse(
                input_template=tr.get("InputTemplate"),
                input_paths_map=tr.get("InputPathsMap", {}),
                event=event,  # type: ignore[arg-type]
            )
        else:
            payload = event
        body = payload if isinstance(payload, str) else json.dumps(payload)
        arn = target["Arn"]
        record = {"rule": rule.name, "target": arn, "event": event, "ok": True}
        try:
            service = arn.split(":")[2]
            if service == "lambda":
                # Here an Event invocation runs to its end before the call returns (AWS queues it and answers
                # 202 at once), so the delivery waits as long as a function may run and never retries: a
                # retried call would start the function again (seen: one drift check became four under load).
                once = Config(read_timeout=LAMBDA_MAX_SECONDS + 60, retries={"total_max_attempts": 1})
                local.client("lambda", config=once).invoke(
                    FunctionName=arn, InvocationType="Event", Payload=body.encode()
                )
            elif service == "states":
                name = f"{rule.name[:40]}-{uuid.uuid4().hex[:16]}"
                record["execution"] = local.client("stepfunctions").start_execution(
                    stateMachineArn=arn, name=name, input=body
                )["executionArn"]
            elif service == "sns":
                local.client("sns").publish(TopicArn=arn, Message=body)
            elif service == "sqs":
                sqs = local.client("sqs")
                sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName=arn.split(":")[5])["QueueUrl"], MessageBody=body)
            else:
                record["ok"] = False
                record["error"] = f"unsupported target service {service}"
        except Exception as exc:  # recorded, like EventBridge's failed-invocation metric
            record["ok"], record["error"] = False, repr(exc)
        local.deliveries.append(record)

    def send_to_targets(rule: Any, event: Any, transform_input: bool = True) -> None:
        # A rule without an event pattern (a schedule) matches no event in AWS; moto's empty pattern
        # matches every event, which made each alarm state change start the scheduled drift check too.
        if rule.state != "ENABLED" or not rule.event_pattern.get_pattern():
            return
        if not rule.event_pattern.matches_event(event):
            return
        for target in list(rule.targets):
            threading.Thread(target=deliver, args=(rule, target, dict(event)), daemon=True).start()

    def emit(backend: Any, alarm: Any, old: str, new: str, reason: str) -> None:
        event = alarm_event(alarm, old, new, reason, backend.account_id, backend.region_name)
        bus = events_backends[backend.account_id][backend.region_name].event_buses.get("default")
        for rule in list(bus.rules.values()) if bus else []:
            send_to_targets(rule, event)

    scale = float(getattr(local, "time_scale", 1.0) or 1.0)
    evaluating = threading.Lock()
    # Datapoints by (backend, namespace, metric name, dimensions): moto keeps one list of everything
    # ever put, and scanning it per alarm per evaluation grows without bound in a long demo.
    series: dict[tuple[Any, ...], list[Any]] = {}
    horizon = timedelta(hours=6)  # longer than any alarm's EvaluationPeriods x Period here

    def index(backend: Any, new: list[Any]) -> None:
        from moto.cloudwatch.models import MetricDatum

        cutoff = datetime.now(UTC) - horizon
        for d in new:
            if isinstance(d, MetricDatum):
                key = (id(backend), d.namespace, d.name, frozenset((x.name, x.value) for x in d.dimensions))
                points = series.setdefault(key, [])
                points.append(d)
                if len(points) > 1000 and _aware(points[0].timestamp) < cutoff:
                    points[:] = [p for p in points if _aware(p.timestamp) >= cutoff]

    def data_for(backend: Any, alarm: Any) -> list[Any]:
        want = frozenset((d.name, d.value) for d in alarm.dimensions)
        return series.get((id(backend), alarm.namespace, alarm.metric_name, want), [])

    def evaluate_all(backend: Any, namespace: str | None = None) -> None:
        with evaluating:
            for alarm in list(backend.alarms.values()):
                if namespace is not None and alarm.namespace != namespace:
                    continue
                result = evaluate(alarm, data_for(backend, alarm), time_scale=scale)
                if result and result[0] != alarm.state_value:
                    old = alarm.state_value
                    alarm.update_state(result[1], json.dumps({"localaws": True}), result[0])
                    emit(backend, alarm, old, result[0], result[1])

    def put_metric_data(backend: Any, namespace: str, metric_data: list[dict[str, Any]]) -> None:
        with evaluating:
            before = len(backend.metric_data)
            original_put(backend, namespace, metric_data)
            index(backend, backend.metric_data[before:])
        evaluate_all(backend, namespace)

    stopped = threading.Event()

    def clock() -> None:
        """AWS evaluates every alarm each minute, data or not (a datapoint ageing out changes state)."""
        from moto.cloudwatch.models import cloudwatch_backends

        while not stopped.wait(max(1.0, 60 / scale)):  # a scaled minute, but never a busy loop
            for account in list(cloudwatch_backends.values()):
                for backend in list(account.values()):
                    try:
                        evaluate_all(backend)
                    except Exception:  # never let the clock die; the next tick retries
                        continue

    threading.Thread(target=clock, daemon=True, name="alarm-clock").start()

    def set_alarm_state(backend: Any, alarm_name: str, reason: str, reason_data: str, state_value: str) -> None:
        old = backend.alarms[alarm_name].state_value if alarm_name in backend.alarms else None
        original_set(backend, alarm_name, reason, reason_data, state_value)
        if old is not None and old != state_value:
            emit(backend, backend.alarms[alarm_name], old, state_value, reason)

    CloudWatchBackend.put_metric_data = put_metric_data  # type: ignore[method-assign,assignment]
    CloudWatchBackend.set_alarm_state = set_alarm_state  # type: ignore[method-assign,assignment]
    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign,assignment]

    def undo() -> None:
        stopped.set()
        CloudWatchBackend.put_metric_data = original_put  # type: ignore[method-assign]
        CloudWatchBackend.set_alarm_state = original_set  # type: ignore[method-assign]
        Rule.send_to_targets = original_send  # type: ignore[method-assign]

    return undo
