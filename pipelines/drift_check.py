"""Step: judge the champion's traffic since the previous check against its reference profile.

Reads the capture objects the service wrote for the champion's version since the previous check ended
(pipelines/drift_state.py; the first check of a version looks back `first_window_hours`), so every
captured request is judged exactly once, whatever the schedule. Above `max_requests` a uniform sample
(seeded by the window, so reproducible) is judged and the report says so. Runs the tests of
model/drift.py, the per-window ones and the sequential one whose evidence the state carries from check
to check; follows a drift-triggered release through its first windows (pipelines/retrain_effect.py);
publishes the metrics (names in contract.yaml) to CloudWatch and writes the full report (p-values,
effect sizes, window bounds, sampling) as JSON to S3. The same function runs from the CLI
(`esteira drift-check`), the Lambda and the demo.

Only the champion's own captures are read: its profile describes its own predictions, and another
version's predicted-intent mix would look like drift when it is only a different model.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
from collections.abc import Iterator
from typing import Any, ClassVar, Self

import boto3
from pydantic import Field

from model.config import Settings
from model.contract import contract
from model.drift import DriftConfig, DriftReport, Evidence, check_window
from model.profile import Profile
from model.settings import EsteiraSettings, setting
from pipelines import drift_state, registry, retrain_effect

log = logging.getLogger(__name__)

PROFILE_ARTIFACT = "profile/reference_profile.json"
# Captures are kept at least 7 days (the storage module validates it): a check never reaches further.
MAX_LOOKBACK = dt.timedelta(days=7)


class DriftSettings(EsteiraSettings):
    """The drift check (shared settings such as the MLflow URI come from model/config.py)."""

    doc_title: ClassVar[str] = "Drift check (pipelines/drift_check.py `DriftSettings`)"

    capture_s3_uri: str = setting(
        "",
        env="ESTEIRA_CAPTURE_S3_URI",
        old=("CAPTURE_S3_URI",),
        description="Capture root, as the service writes it (the same name as the service's).",
    )
    window_hours: float = setting(
        1.0,
        env="ESTEIRA_DRIFT_WINDOW_HOURS",
        gt=0.0,
        le=MAX_LOOKBACK.total_seconds() / 3600,
        description="How far back the first check of a version looks; later checks start where the previous one ended.",
    )
    max_requests: int = setting(
        5000, env="ESTEIRA_DRIFT_MAX_REQUESTS", ge=1, description="Requests a check reads; a uniform sample above it."
    )
    # The statistics' defaults live once, in model/drift.py.
    alpha: float = setting(
        DriftConfig().alpha, env="ESTEIRA_DRIFT_ALPHA", gt=0.0, lt=1.0, description="Significance level per window."
    )
    sequential_alpha: float = setting(
        DriftConfig().sequential_alpha or 0.0,
        env="ESTEIRA_DRIFT_SEQUENTIAL_ALPHA",
        ge=0.0,
        lt=1.0,
        description="Significance level per epoch of the sequential test; 0: off.",
    )
    min_window: int = setting(
        DriftConfig().min_window,
        env="ESTEIRA_DRIFT_MIN_WINDOW",
        ge=1,
        description="Fewest requests a window is judged on.",
    )
    report_s3_uri: str = setting(
        "",
        env="ESTEIRA_DRIFT_REPORT_S3_URI",
        default_doc="s3://<ESTEIRA_ARTIFACTS_BUCKET>/drift-reports, else <capture bucket>/drift-reports",
        description="Where the drift reports go.",
    )
    artifacts_bucket: str = setting(
        "", env="ESTEIRA_ARTIFACTS_BUCKET", description="The artifacts bucket; the reports' default home."
    )
    namespace: str = setting(
        contract().metrics_namespace,
        env="ESTEIRA_METRICS_NAMESPACE",
        description="CloudWatch namespace of the metrics.",
    )
    service_name: str = setting(
        contract().serving_service_name,
        env="ESTEIRA_SERVICE_NAME",
        old=("SERVICE_NAME",),
        description="Must equal the service's: the Service dimension of the metrics the alarms read.",
    )
    retrain_effect_windows: int = setting(
        retrain_effect.DEFAULT_WINDOWS,
        env="ESTEIRA_RETRAIN_EFFECT_WINDOWS",
        ge=1,
        description="Windows after a retrain in which the drift must be gone, else retraining is paused.",
    )
    sns_topic_arn: str = setting(
        "", env="ESTEIRA_SNS_TOPIC_ARN", description='Where "the retrain did not absorb the drift" is said.'
    )
    lock_table: str = setting("", env="ESTEIRA_LOCK_TABLE", description="Where retraining is paused.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Free-form, set by code only.")

    @classmethod
    def from_env(cls) -> Self:
        ds = cls.read_env()
        if ds.report_s3_uri:
            return ds
        if ds.artifacts_bucket:
            return ds.replace(report_s3_uri=f"s3://{ds.artifacts_bucket}/drift-reports")
        if ds.capture_s3_uri.startswith("s3://"):
            return ds.replace(report_s3_uri=f"s3://{ds.capture_s3_uri[5:].split('/', 1)[0]}/drift-reports")
        return ds


def split_uri(uri: str) -> tuple[str, str]:
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
    return load_version(settings, version)[0]


def load_version(settings: Settings, version: str) -> tuple[Profile, dict[str, str]]:
    """The version's reference profile and its registry tags (what the retrain-effect watch reads)."""
    client = registry.client(settings)
    mv = client.get_model_version(settings.registered_model_name, version)
    if not mv.run_id:
        raise LookupError(f"model version {version} has no training run, so no reference profile")
    path = client.download_artifacts(mv.run_id, PROFILE_ARTIFACT)
    with open(path, "rb") as fh:
        return Profile.from_json(fh.read()), dict(mv.tags or {})


def hour_prefixes(root: str, version: str, end: dt.datetime, hours: float) -> list[str]:
    """The `dt=/hour=` prefixes covering (end - hours, end], newest first."""
    return prefixes_between(root, version, end - dt.timedelta(hours=hours), end)


def prefixes_between(root: str, version: str, start: dt.datetime, end: dt.datetime) -> list[str]:
    """The `dt=/hour=` prefixes of every hour that (start, end] touches, newest first."""
    out = []
    t = end.replace(minute=0, second=0, microsecond=0)
    while t > start - dt.timedelta(hours=1):
        partition = contract().capture.partition_key(version, f"{t:%Y-%m-%d}", f"{t:%H}")
        out.append(f"{root}/{partition}".lstrip("/"))
        t -= dt.timedelta(hours=1)
    return out


def read_window(
    s3: Any,
    capture_uri: str,
    version: str,
    start: dt.datetime,
    end: dt.datetime,
    max_requests: int,
) -> tuple[list[dict[str, Any]], int, int]:
    """Captured records of `version` with start < ts <= end: (a uniform sample of at most `max_requests`
    of them, how many there were, how many lines were malformed).

    Reservoir sampling keeps memory at `max_requests` records however busy the window was, and every
    request has the same chance to be judged (keeping the newest would judge only the window's end).
    The generator is seeded by version and window, so a report can be reproduced. A malformed line (bad
    JSON, missing field, wrong type) is counted and skipped: one broken writer must not stop monitoring.
    """
    bucket, root = split_uri(capture_uri)
    rng = random.Random(f"{version}/{start.isoformat()}/{end.isoformat()}")
    sample: list[dict[str, Any]] = []
    seen = bad = 0
    for prefix in prefixes_between(root, version, start, end):
        for key in _keys(s3, bucket, prefix):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8", errors="replace")
            for line in body.splitlines():
                if not line.strip():
                    continue
                rec = _parse(line)
                if rec is None:
                    bad += 1
                    continue
                if not start < rec["_ts"] <= end:
                    continue
                seen += 1
                if len(sample) < max_requests:
                    sample.append(rec)
                else:
                    j = rng.randrange(seen)
                    if j < max_requests:
                        sample[j] = rec
    sample.sort(key=lambda r: r["_ts"])
    return sample, seen, bad


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
        # text None: captured with ESTEIRA_CAPTURE_REDACTION=drop (model/redact.py); a missing key is malformed
        if not isinstance(rec["text"], str | None) or not isinstance(rec["intent"], str):
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
        raise ValueError("ESTEIRA_CAPTURE_S3_URI is not set: there is no capture to check")
    cfg = DriftConfig(alpha=ds.alpha, min_window=ds.min_window, sequential_alpha=ds.sequential_alpha or None)
    end = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    if model_version is None:
        champion = registry.version_by_alias(settings, registry.CHAMPION)
        if champion is None:
            return {"step": "drift-check", "status": "no_champion", "model_version": None}
        model_version = str(champion.version)
    profile, tags = load_version(settings, model_version)
    s3 = _client("s3", settings)
    report_bucket, report_prefix = split_uri(ds.report_s3_uri) if ds.report_s3_uri else ("", "")
    state = (
        drift_state.load(s3, report_bucket, report_prefix, model_version)
        if report_bucket
        else drift_state.DriftState(model_version)
    )
    start = state.window_start(end, ds.window_hours, MAX_LOOKBACK)
    records, total, bad = read_window(s3, ds.capture_s3_uri, model_version, start, end, ds.max_requests)
    report = check_window(
        profile,
        [r["text"] for r in records],
        [r["intent"] for r in records],
        [r["confidence"] for r in records],
        cfg,
        evidence=Evidence.from_dict(state.evidence) if state.evidence else None,
    )
    report.model_version = model_version
    judged = report.status != "insufficient_data"
    report_key = f"{report_prefix}/model_version={model_version}/{end:%Y-%m-%dT%H%M%SZ}.json".lstrip("/")
    report_uri = f"s3://{report_bucket}/{report_key}" if report_bucket else None
    result: dict[str, Any] = {
        "step": "drift-check",
        "status": report.status,
        "model_version": model_version,
        "window": {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "requests": total,
            "checked": len(records),
            "sampled": total > len(records),
            "malformed_lines": bad,
        },
        "report": report.as_dict(),
        "metrics": report.metrics() if judged else {},
    }
    # Only a check that publishes moves the state on: a dry run (`--no-publish`) must not take its
    # window from the scheduled check whose metric the alarm reads, nor pause anything.
    commit = judged and publish_metrics
    if commit:
        _advance(state, report, start, end, report_uri, tags, ds)
        effect = state.retrain_effect
        if effect is not None:
            # Pause before publishing: the metric may raise the alarm that would start the next retrain.
            retrain_effect.act(
                effect,
                model_version,
                ddb=_client("dynamodb", settings),
                sns=_client("sns", settings),
                table=ds.lock_table,
                topic_arn=ds.sns_topic_arn,
                now=end,
            )
            result["retrain_effect"] = effect
        result["metrics_published"] = publish(
            _client("cloudwatch", settings), report, ds.namespace, ds.service_name, model_version
        )
    elif not judged:
        # Too few requests: no verdict and no metrics (the alarms treat missing data as not breaching);
        # the window's start stays, so these requests are judged with the next check's.
        result["window"]["carried_to_next_check"] = True
    if report_bucket:
        s3.put_object(
            Bucket=report_bucket,
            Key=report_key,
            Body=json.dumps(result, default=str).encode(),
            ContentType="application/json",
        )
        result["report_uri"] = report_uri
        if commit:
            result["state_uri"] = drift_state.save(s3, report_bucket, report_prefix, state)
    log.info("drift-check %s: %s over %d of %d requests", model_version, report.status, len(records), total)
    return result


def _advance(
    state: drift_state.DriftState,
    report: DriftReport,
    start: dt.datetime,
    end: dt.datetime,
    report_uri: str | None,
    tags: dict[str, str],
    ds: DriftSettings,
) -> None:
    """Move the state past a judged window: its end, the evidence, the current drift run, the watch."""
    first = state.checks == 0
    state.last_check_end = end.isoformat()
    state.checks += 1
    state.evidence = report.evidence.to_dict() if report.evidence is not None else None
    fired = [t.name for t in report.tests if t.fired]
    if report.drift_detected:
        state.drift_since = state.drift_since or start.isoformat()
        state.last_drift = {"end": end.isoformat(), "tests": fired, "report_uri": report_uri}
    else:
        state.drift_since = None
    state.remember({"end": end.isoformat(), "status": report.status, "fired": fired, "score": report.drift_score})
    if first and state.retrain_effect is None:
        state.retrain_effect = retrain_effect.begin(tags, ds.retrain_effect_windows)
    if state.retrain_effect is not None:
        state.retrain_effect = retrain_effect.observe(state.retrain_effect, fired, report_uri)
