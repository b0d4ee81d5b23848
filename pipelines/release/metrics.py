"""Live metrics of one model version, read from CloudWatch as the serving tasks publish them (EMF)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from model.config import Settings
from model.contract import contract
from pipelines import aws
from pipelines.release.alarms import version_dimensions
from pipelines.release.settings import CanarySettings

_M = contract().metrics
_D = contract().dimensions


def _window(since: float, now: float) -> tuple[datetime, datetime, int]:
    start = datetime.fromtimestamp(since - 1, UTC)
    end = datetime.fromtimestamp(now + 1, UTC)
    period = max(60, math.ceil((end - start).total_seconds() / 60.0) * 60)
    return start, end + timedelta(seconds=60), period


def version_metrics(
    cs: CanarySettings, version: str, since: float, now: float, settings: Settings | None = None
) -> dict[str, Any]:
    """Totals of one model version's serving metrics in [since, now], from CloudWatch."""
    cw = aws.client("cloudwatch", settings)
    dims = version_dimensions(cs, version)
    start, end, period = _window(since, now)
    wanted = {
        "requests": (_M.request_count, "Sum"),
        "http_5xx": (_M.http_5xx, "Sum"),
        "latency_p99": (_M.latency_p99, "Maximum"),
        "low_confidence": (_M.low_confidence_rate, "Average"),
        "shadow_requests": (_M.shadow_requests, "Sum"),
        "shadow_agreements": (_M.shadow_agreements, "Sum"),
    }
    queries = [
        {
            "Id": key,
            "MetricStat": {
                "Metric": {"Namespace": cs.namespace, "MetricName": metric, "Dimensions": dims},
                "Period": period,
                "Stat": stat,
            },
        }
        for key, (metric, stat) in wanted.items()
    ]
    listed = cw.list_metrics(Namespace=cs.namespace, MetricName=_M.predictions, Dimensions=dims)["Metrics"]
    intents = sorted({d["Value"] for m in listed for d in m["Dimensions"] if d["Name"] == _D.intent})
    for i, intent in enumerate(intents):
        queries.append(
            {
                "Id": f"intent{i}",
                "MetricStat": {
                    "Metric": {
                        "Namespace": cs.namespace,
                        "MetricName": _M.predictions,
                        "Dimensions": [*dims, {"Name": _D.intent, "Value": intent}],
                    },
                    "Period": period,
                    "Stat": "Sum",
                },
            }
        )
    values: dict[str, list[float]] = {}
    for chunk in range(0, len(queries), 500):
        resp = cw.get_metric_data(MetricDataQueries=queries[chunk : chunk + 500], StartTime=start, EndTime=end)
        for r in resp["MetricDataResults"]:
            values[r["Id"]] = [float(v) for v in r.get("Values", [])]

    def agg(key: str, how: str) -> float | None:
        vals = values.get(key) or []
        if not vals:
            return None
        return max(vals) if how == "Maximum" else (sum(vals) / len(vals) if how == "Average" else sum(vals))

    return {
        "requests": agg("requests", "Sum") or 0.0,
        "http_5xx": agg("http_5xx", "Sum") or 0.0,
        "latency_p99_ms": agg("latency_p99", "Maximum"),
        "low_confidence_rate": agg("low_confidence", "Average"),
        "shadow_requests": agg("shadow_requests", "Sum") or 0.0,
        "shadow_agreements": agg("shadow_agreements", "Sum") or 0.0,
        "predictions": {
            intent: agg(f"intent{i}", "Sum") or 0.0
            for i, intent in enumerate(intents)
            if (agg(f"intent{i}", "Sum") or 0.0) > 0
        },
    }


def publish_drift(
    cs: CanarySettings, version: str, drift: float, breached: bool, settings: Settings | None = None
) -> None:
    """The check's drift figure and verdict, so the per-version drift alarm (and the dashboard) see them."""
    dims = version_dimensions(cs, version)
    aws.client("cloudwatch", settings).put_metric_data(
        Namespace=cs.namespace,
        MetricData=[
            {"MetricName": _M.canary_prediction_drift, "Dimensions": dims, "Value": drift, "Unit": "None"},
            {"MetricName": _M.canary_drift_breach, "Dimensions": dims, "Value": float(breached), "Unit": "None"},
        ],
    )
