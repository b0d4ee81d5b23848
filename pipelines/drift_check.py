"""Step: compare the most recent capture window with the champion's reference profile.

Reads the capture objects the service wrote for the champion's version in the last
`window_hours` hours, runs the four drift tests of model/drift.py, publishes their metrics (names in
contract.yaml) to CloudWatch, and writes the full report (p-values, effect sizes, window bounds) as JSON
to S3. The same function runs from the CLI (`esteira drift-check`), the Lambda and the demo.

Only the champion's own captures are read: its profile describes its own predictions, and another
version's predicted-intent mix would look like drift when it is only a different model.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3

from model.config import Settings, env_float, env_int
from model.contract import contract
from model.drift import DriftConfig, DriftReport, check_window
from model.profile import Profile
from pipelines import registry

log = logging.getLogger(__name__)

PROFILE_ARTIFACT = "profile/reference_profile.json"


@dataclass(frozen=True)
class DriftSettings:
    """Drift-check configuration (shared settings such as the MLflow URI come from model/config.py).

    Env vars: CAPTURE_S3_URI (capture root, as the service writes it), ESTEIRA_DRIFT_WINDOW_HOURS (1),
    ESTEIRA_DRIFT_MAX_REQUESTS (5000; newest first), ESTEIRA_DRIFT_ALPHA (0.001 per window),
    ESTEIRA_DRIFT_MIN_WINDOW (200), ESTEIRA_DRIFT_REPORT_S3_URI (default s3://<ESTEIRA_ARTIFACTS_BUCKET>/
    drift-reports, else <capture bucket>/drift-reports), ESTEIRA_METRICS_NAMESPACE (Esteira), SERVICE_NAME
    (esteira-serving; must equal the service's, it is the metric dimension the alarms read).
    """

    capture_s3_uri: str = ""
    window_hours: int = 1
    max_requests: int = 5000
    alpha: float = 0.001
    min_window: int = 200
    report_s3_uri: str = ""
    namespace: str = contract().metrics_namespace
    service_name: str = contract().serving_service_name
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> DriftSettings:
        capture = os.environ.get("CAPTURE_S3_URI", "")
        report = os.environ.get("ESTEIRA_DRIFT_REPORT_S3_URI", "")
        if not report and os.environ.get("ESTEIRA_ARTIFACTS_BUCKET"):
            report = f"s3://{os.environ['ESTEIRA_ARTIFACTS_BUCKET']}/drift-reports"
        if not report and capture.startswith("s3://"):
            report = f"s3://{capture[5:].split('/', 1)[0]}/drift-reports"
        return cls(
            capture_s3_uri=capture,
            window_hours=env_int("ESTEIRA_DRIFT_WINDOW_HOURS", cls.window_hours),
            max_requests=env_int("ESTEIRA_DRIFT_MAX_REQUESTS", cls.max_requests),
            alpha=env_float("ESTEIRA_DRIFT_ALPHA", cls.alpha),
            min_window=env_int("ESTEIRA_DRIFT_MIN_WINDOW", cls.min_window),
            report_s3_uri=report,
            namespace=os.environ.get("ESTEIRA_METRICS_NAMESPACE") or cls.namespace,
            service_name=os.environ.get("SERVICE_NAME") or cls.service_name,
        )


def _split(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket")
    return bucket, prefix.strip("/")


def _client(service: str, settings: Settings) -> Any:
    return boto3.client(service, endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)  # type: ignore[call-overload]


def load_profile(settings: Settings, version: str) -> Profile:
    """The reference profile logged with the model version's training run."""
    client = registry.client(settings)
    mv = client.get_model_version(settings.registered_model_name, version)
    if not mv.run_id:
        raise LookupError(f"model version {version} has no training run, so no reference profile")
    path = client.download_artifacts(mv.run_id, PROFILE_ARTIFACT)
    with open(path, "rb") as fh:
        return Profile.from_json(fh.read())


def hour_prefixes(root: str, version: str, end: dt.datetime, hours: int) -> list[str]:
    """The `dt=/hour=` prefixes covering (end - hours, end], newest first."""
    out = []
    for h in range(hours + 1):  # +1: the window's start hour is partly inside it
        t = end - dt.timedelta(hours=h)
        partition = contract().capture.partition_key(version, f"{t:%Y-%m-%d}", f"{t:%H}")
        out.append(f"{root}/{partition}".lstrip("/"))
    return out


def read_window(
    s3: Any, capture_uri: str, version: str, end: dt.datetime, hours: int, max_requests: int
) -> tuple[list[dict[str, Any]], int]:
    """Captured records of `version` with start < ts <= end, newest `max_requests`; also the count of bad lines.

    A malformed line (bad JSON, missing field, wrong type) is counted and skipped: one broken writer
    must not stop monitoring of the rest.
    """
    bucket, root = _split(capture_uri)
    start = end - dt.timedelta(hours=hours)
    records: list[dict[str, Any]] = []
    bad = 0
    for prefix in hour_prefixes(root, version, end, hours):
        for key in _keys(s3, bucket, prefix):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8", errors="replace")
            for line in body.splitlines():
                if not line.strip():
                    continue
                rec = _parse(line)
                if rec is None:
                    bad += 1
                    continue
                if start < rec["_ts"] <= end:
                    records.append(rec)
    records.sort(key=lambda r: r["_ts"], reverse=True)
    return records[:max_requests], bad


def _keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".jsonl"):
                yield obj["Key"]


def _parse(line: str) -> dict[str, Any] | None:
    try:
        rec = json.loads(line)
        ts = dt.datetime.fromisoformat(str(rec["ts"]).replace("Z", "+00:00"))
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=dt.UTC)
        if not isinstance(rec["text"], str) or not isinstance(rec["intent"], str):
            return None
        rec["confidence"] = float(rec["confidence"])
        if not 0.0 <= rec["confidence"] <= 1.0:
            return None
    except (ValueError, KeyError, TypeError):
        return None
    rec["_ts"] = ts
    return rec


def publish(cloudwatch: Any, report: DriftReport, namespace: str, service: str, version: str) -> int:
    """PutMetricData with both dimension sets of contract.yaml: [Service, ModelVersion] and [Service] (alarms)."""
    d = contract().dimensions
    data = []
    for name, value in report.metrics().items():
        for dims in (
            [{"Name": d.service, "Value": service}, {"Name": d.model_version, "Value": version}],
            [{"Name": d.service, "Value": service}],
        ):
            data.append({"MetricName": name, "Dimensions": dims, "Value": float(value), "Unit": "None"})
    cloudwatch.put_metric_data(Namespace=namespace, MetricData=data)
    return len(data)


def drift_check(
    model_version: str | None = None,
    *,
    now: dt.datetime | None = None,
    publish_metrics: bool = True,
    settings: Settings | None = None,
    drift_settings: DriftSettings | None = None,
) -> dict[str, Any]:
    """Run one check; returns the JSON result (the report plus where it was written)."""
    settings = settings or Settings.from_env()
    ds = drift_settings or DriftSettings.from_env()
    if not ds.capture_s3_uri:
        raise ValueError("CAPTURE_S3_URI is not set: there is no capture to check")
    cfg = DriftConfig(alpha=ds.alpha, min_window=ds.min_window)
    end = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    if model_version is None:
        champion = registry.version_by_alias(settings, registry.CHAMPION)
        if champion is None:
            return {"step": "drift-check", "status": "no_champion", "model_version": None}
        model_version = str(champion.version)
    profile = load_profile(settings, model_version)
    s3 = _client("s3", settings)
    records, bad = read_window(s3, ds.capture_s3_uri, model_version, end, ds.window_hours, ds.max_requests)
    report = check_window(
        profile,
        [r["text"] for r in records],
        [r["intent"] for r in records],
        [r["confidence"] for r in records],
        cfg,
    )
    report.model_version = model_version
    result: dict[str, Any] = {
        "step": "drift-check",
        "status": report.status,
        "model_version": model_version,
        "window": {
            "start": (end - dt.timedelta(hours=ds.window_hours)).isoformat(),
            "end": end.isoformat(),
            "requests": len(records),
            "malformed_lines": bad,
        },
        "report": report.as_dict(),
        "metrics": report.metrics() if report.status != "insufficient_data" else {},
    }
    # Too few requests: no verdict, so no metrics (the alarms treat missing data as not breaching).
    if publish_metrics and report.status != "insufficient_data":
        result["metrics_published"] = publish(
            _client("cloudwatch", settings), report, ds.namespace, ds.service_name, model_version
        )
    if ds.report_s3_uri:
        bucket, prefix = _split(ds.report_s3_uri)
        key = f"{prefix}/model_version={model_version}/{end:%Y-%m-%dT%H%M%SZ}.json".lstrip("/")
        s3.put_object(
            Bucket=bucket, Key=key, Body=json.dumps(result, default=str).encode(), ContentType="application/json"
        )
        result["report_uri"] = f"s3://{bucket}/{key}"
    log.info("drift-check %s: %s over %d requests", model_version, report.status, len(records))
    return result
