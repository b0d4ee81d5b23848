"""The release's own CloudWatch alarms, scoped to the candidate's model version; deleted when it ends."""

from __future__ import annotations

from model.config import Settings
from model.contract import contract
from pipelines import aws
from pipelines.release.settings import KINDS, CanarySettings

_M = contract().metrics
_D = contract().dimensions


def version_dimensions(cs: CanarySettings, version: str) -> list[dict[str, str]]:
    """[Service, ModelVersion] of one model version, as the serving tasks publish them."""
    return [{"Name": _D.service, "Value": cs.metrics_service}, {"Name": _D.model_version, "Value": version}]


def alarm_names(cs: CanarySettings, version: str) -> dict[str, str]:
    return {kind: f"{cs.alarm_prefix}-v{version}-{kind.replace('_', '-')}" for kind in KINDS}


def create_alarms(cs: CanarySettings, version: str, settings: Settings | None = None) -> list[str]:
    """Four alarms on [Service, ModelVersion=<candidate>]; deleted when the release ends either way."""
    cw = aws.client("cloudwatch", settings)
    dims = version_dimensions(cs, version)
    names = alarm_names(cs, version)
    specs = {
        "http_5xx": (_M.http_5xx, "Sum", float(cs.max_5xx_count), "GreaterThanOrEqualToThreshold"),
        "latency_p99": (_M.latency_p99, "Maximum", cs.max_p99_ms, "GreaterThanThreshold"),
        "low_confidence": (_M.low_confidence_rate, "Average", cs.max_low_confidence_rate, "GreaterThanThreshold"),
        # 1 when a check found significant drift (JS over the bar AND p below drift_p_value); the raw JS is
        # published too (CanaryPredictionDrift) but is too noisy on small windows to alarm on by itself.
        "prediction_drift": (_M.canary_drift_breach, "Maximum", 0.5, "GreaterThanThreshold"),
    }
    for kind, (metric, stat, threshold, op) in specs.items():
        cw.put_metric_alarm(
            AlarmName=names[kind],
            AlarmDescription=f"Canary of model version {version}: {kind} (created by the release workflow)",
            Namespace=cs.namespace,
            MetricName=metric,
            Dimensions=dims,
            Statistic=stat,
            Period=60,
            EvaluationPeriods=1,
            Threshold=threshold,
            ComparisonOperator=op,
            TreatMissingData="notBreaching",
            AlarmActions=[cs.alarm_topic_arn] if cs.alarm_topic_arn else [],
            Tags=[{"Key": "esteira:canary-version", "Value": version}],
        )
    return list(names.values())


def delete_alarms(cs: CanarySettings, version: str, settings: Settings | None = None) -> None:
    """Delete the version's alarms that exist (DeleteAlarms fails on a missing name; retries must not)."""
    cw = aws.client("cloudwatch", settings)
    found = cw.describe_alarms(AlarmNames=list(alarm_names(cs, version).values()))["MetricAlarms"]
    if found:
        cw.delete_alarms(AlarmNames=[a["AlarmName"] for a in found])


def alarms_in_alarm(cs: CanarySettings, version: str, settings: Settings | None = None) -> dict[str, str]:
    names = alarm_names(cs, version)
    found = aws.client("cloudwatch", settings).describe_alarms(AlarmNames=list(names.values()))["MetricAlarms"]
    by_name = {a["AlarmName"]: a for a in found}
    return {
        kind: by_name[name].get("StateReason", "")
        for kind, name in names.items()
        if name in by_name and by_name[name].get("StateValue") == "ALARM"
    }
