"""drift-check end to end: a model trained and registered in a real MLflow server, its profile logged at
training time, captures in (moto) S3 in the serving layout, metrics in (moto) CloudWatch, report in S3."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from lambdas import drift_check as lambda_module
from model.classifier import ModelParams
from model.config import Settings
from model.profile import Profile
from model.pyfunc import load_classifier
from pipelines import registry
from pipelines.cli import main as cli_main
from pipelines.drift_check import PROFILE_ARTIFACT, DriftSettings, drift_check, hour_prefixes
from pipelines.train import train

REGION = "us-east-1"
BUCKET = "esteira-capture"
NOW = dt.datetime(2026, 11, 24, 6, 20, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def champion(
    mlflow_server: Any, slice_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, str]]:
    """One trained 12-intent model, registered and made champion (module-scoped: trained once)."""
    name = f"drift-{uuid.uuid4().hex[:8]}"
    settings = Settings.from_env().replace(
        mlflow_tracking_uri=mlflow_server.uri,
        registered_model_name=name,
        experiment_name=name,
        min_rows=20,
    )
    params = ModelParams(estimator="svm", n_jobs=1)  # the SVM alone: the profile does not care which
    result = train(str(slice_files["train"]), str(slice_files["test"]), params=params, settings=settings)
    version = result["model_version"]
    registry.client(settings).set_registered_model_alias(name, registry.CHAMPION, version)
    yield settings, version


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield s3


def put_capture(
    s3: Any, version: str, texts: list[str], settings: Settings, minutes_ago: list[float], base: dt.datetime = NOW
) -> None:
    """Write captures as the service does: one JSONL object per hour partition."""
    clf = load_classifier(registry.model_uri(settings, version))
    intents, conf = clf.predict_top1(texts)
    by_key: dict[str, list[str]] = {}
    for text, intent, c, ago in zip(texts, intents, conf, minutes_ago, strict=True):
        ts = base - dt.timedelta(minutes=ago)
        key = f"capture/model_version={version}/dt={ts:%Y-%m-%d}/hour={ts:%H}/{uuid.uuid4()}.jsonl"
        prefix = key.rsplit("/", 1)[0]
        rec = {
            "ts": ts.isoformat(),
            "request_id": uuid.uuid4().hex,
            "text": text,
            "intent": intent,
            "confidence": c,
            "model_version": version,
        }
        by_key.setdefault(prefix, []).append(json.dumps(rec))
    for prefix, lines in by_key.items():
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{uuid.uuid4()}.jsonl", Body="\n".join(lines).encode())


def ds() -> DriftSettings:
    return DriftSettings(
        capture_s3_uri=f"s3://{BUCKET}/capture/", report_s3_uri=f"s3://{BUCKET}/drift-reports", min_window=100
    )


@pytest.mark.slow  # trains a model and logs its profile to MLflow: ~25 s
def test_profile_is_logged_with_the_model_version(champion: tuple[Settings, str]) -> None:
    settings, version = champion
    client = registry.client(settings)
    run_id = client.get_model_version(settings.registered_model_name, version).run_id
    profile = Profile.from_json(Path(client.download_artifacts(run_id, PROFILE_ARTIFACT)).read_bytes())
    assert len(profile.classes) == 12 and profile.n == 360  # the 12-intent eval slice, 30 each
    assert sum(profile.intent_counts.values()) == 360 and sum(profile.confidence_hist) == 360
    assert 0 < profile.confidence_mean <= 1 and 0 <= profile.oov_mean < 0.2
    assert len(profile.train_bucket_counts) == 4096 and profile.vocabulary


def test_clean_window_no_drift_and_metrics_published(
    champion: tuple[Settings, str], aws: Any, slice_files: dict[str, Path]
) -> None:
    settings, version = champion
    texts = pd.read_csv(slice_files["test"], dtype=str, keep_default_na=False)["text"].tolist()[:300]
    put_capture(aws, version, texts, settings, [i * 0.15 for i in range(300)])  # the last 45 min, 2 partitions
    put_capture(aws, version, texts[:50], settings, [90.0] * 50)  # older than the window: not read
    aws.put_object(
        Bucket=BUCKET,
        Key=f"capture/model_version={version}/dt=2026-11-24/hour=06/bad.jsonl",
        Body=b'{"ts": "2026-11-24T06:10:00Z", "text": 5}\nnot json\n',
    )
    result = drift_check(None, now=NOW, settings=settings, drift_settings=ds())
    assert result["status"] == "no_drift", result["report"]
    assert result["model_version"] == version
    assert result["window"]["requests"] == 300 and result["window"]["malformed_lines"] == 2
    assert result["metrics"]["DriftDetected"] == 0.0 and result["metrics"]["DriftScore"] < 1.0
    cw = boto3.client("cloudwatch", region_name=REGION)
    metrics = cw.list_metrics(Namespace="Esteira")["Metrics"]
    names = {m["MetricName"] for m in metrics}
    assert names == {
        "DriftScore",
        "PredictionDrift",
        "ConfidenceDrop",
        "OOVRateIncrease",
        "InputDrift",
        "DriftDetected",
    }
    dims = {tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])) for m in metrics}
    assert (("ModelVersion", version), ("Service", "esteira-serving")) in dims
    assert (("Service", "esteira-serving"),) in dims
    body = aws.get_object(Bucket=BUCKET, Key=result["report_uri"].split(f"s3://{BUCKET}/", 1)[1])["Body"].read()
    assert json.loads(body)["report"]["tests"][0]["name"] == "prediction"


def test_foreign_intents_are_drift(
    champion: tuple[Settings, str], aws: Any, test_frame: pd.DataFrame, slice_files: dict[str, Path]
) -> None:
    settings, version = champion
    known = set(pd.read_csv(slice_files["test"], dtype=str)["category"])
    other = test_frame[~test_frame["category"].isin(known)]["text"].sample(300, random_state=0).tolist()
    put_capture(aws, version, other, settings, [i * 0.1 for i in range(300)])
    result = drift_check(version, now=NOW, settings=settings, drift_settings=ds())
    assert result["status"] == "drift"
    assert result["metrics"]["DriftScore"] == 1.0 and result["metrics"]["DriftDetected"] == 1.0
    fired = {t["name"] for t in result["report"]["tests"] if t["fired"]}
    # Foreign banking intents mapped onto 12 known ones: the text and the model's certainty move first.
    assert "input" in fired and len(fired) >= 2, fired
    cw = boto3.client("cloudwatch", region_name=REGION)
    stats = cw.get_metric_statistics(
        Namespace="Esteira",
        MetricName="DriftScore",
        Dimensions=[{"Name": "Service", "Value": "esteira-serving"}],
        StartTime=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
        EndTime=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5),
        Period=3600,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert stats and stats[0]["Maximum"] == 1.0


def test_too_few_requests_give_no_verdict_and_no_metrics(champion: tuple[Settings, str], aws: Any) -> None:
    settings, version = champion
    put_capture(aws, version, ["where is my card"] * 20, settings, [1.0] * 20)
    result = drift_check(version, now=NOW, settings=settings, drift_settings=ds())
    assert result["status"] == "insufficient_data" and result["window"]["requests"] == 20
    assert boto3.client("cloudwatch", region_name=REGION).list_metrics(Namespace="Esteira")["Metrics"] == []


def test_cli_and_lambda_run_the_same_check(
    champion: tuple[Settings, str], aws: Any, slice_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, version = champion
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    monkeypatch.setenv("ESTEIRA_MODEL_NAME", settings.registered_model_name)
    monkeypatch.setenv("ESTEIRA_CAPTURE_S3_URI", f"s3://{BUCKET}/capture")
    monkeypatch.setenv("ESTEIRA_DRIFT_MIN_WINDOW", "100")
    texts = pd.read_csv(slice_files["test"], dtype=str, keep_default_na=False)["text"].tolist()[:150]
    put_capture(aws, version, texts, settings, [1.0] * 150, base=dt.datetime.now(dt.UTC))
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli_main(["drift-check", "--no-publish"])
    printed = json.loads(out.getvalue())
    assert code == 0 and printed["model_version"] == version
    assert printed["window"]["requests"] == 150 and printed["status"] == "no_drift"
    via_lambda = lambda_module.handler({"model_version": version}, None)
    assert via_lambda["status"] == printed["status"]
    assert via_lambda["report_uri"].startswith(f"s3://{BUCKET}/drift-reports/model_version={version}/")


def test_hour_prefixes_cover_the_window() -> None:
    got = hour_prefixes("capture", "3", dt.datetime(2026, 1, 1, 0, 30, tzinfo=dt.UTC), 1)
    assert got == ["capture/model_version=3/dt=2026-01-01/hour=00/", "capture/model_version=3/dt=2025-12-31/hour=23/"]


def test_cli_without_a_capture_location_says_so_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.cli import main

    monkeypatch.delenv("ESTEIRA_CAPTURE_S3_URI", raising=False)
    assert main(["drift-check", "--model-version", "1", "--no-publish"]) == 1
    out = capsys.readouterr()
    assert json.loads(out.out)["status"] == "error" and "ESTEIRA_CAPTURE_S3_URI is not set" in out.err


def test_each_request_is_judged_once_and_a_small_window_is_carried_to_the_next_check(
    champion: tuple[Settings, str], aws: Any, slice_files: dict[str, Path]
) -> None:
    settings, version = champion
    texts = pd.read_csv(slice_files["test"], dtype=str, keep_default_na=False)["text"].tolist()
    put_capture(aws, version, texts[:150], settings, [i * 0.2 for i in range(150)])
    first = drift_check(version, now=NOW, settings=settings, drift_settings=ds())
    assert first["status"] == "no_drift" and first["window"]["requests"] == 150
    # Six hours later (dev's schedule): the window is the six hours since, not the last one.
    later = NOW + dt.timedelta(hours=6)
    put_capture(aws, version, texts[150:200], settings, [300.0] * 50, base=later)  # 5 h before `later`
    small = drift_check(version, now=later, settings=settings, drift_settings=ds())
    assert small["status"] == "insufficient_data" and small["window"]["requests"] == 50
    assert small["window"]["start"] == NOW.isoformat() and small["window"]["carried_to_next_check"]
    even_later = later + dt.timedelta(minutes=30)
    put_capture(aws, version, texts[200:280], settings, [10.0] * 80, base=even_later)
    third = drift_check(version, now=even_later, settings=settings, drift_settings=ds())
    assert third["window"]["start"] == NOW.isoformat() and third["window"]["requests"] == 130
    state = json.loads(aws.get_object(Bucket=BUCKET, Key=third["state_uri"].split(f"{BUCKET}/", 1)[1])["Body"].read())
    assert state["last_check_end"] == even_later.isoformat() and state["checks"] == 2
    assert [h["status"] for h in state["history"]] == ["no_drift", third["status"]]


def test_a_busy_window_is_sampled_uniformly_and_the_report_says_so(
    champion: tuple[Settings, str], aws: Any, slice_files: dict[str, Path]
) -> None:
    settings, version = champion
    texts = pd.read_csv(slice_files["test"], dtype=str, keep_default_na=False)["text"].tolist()[:300]
    put_capture(aws, version, texts, settings, [i * 0.15 for i in range(300)])
    result = drift_check(version, now=NOW, settings=settings, drift_settings=ds().replace(max_requests=120))
    window = result["window"]
    assert window["requests"] == 300 and window["checked"] == 120 and window["sampled"] is True
    assert result["report"]["window_size"] == 120


def test_a_retrain_after_drift_takes_its_reference_from_the_drifted_traffic_and_is_followed(
    champion: tuple[Settings, str],
    aws: Any,
    test_frame: pd.DataFrame,
    slice_files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Drift on the champion -> `train --reference recent-traffic` builds the new version's profile from
    the champion's traffic since the drift began (minus what it trained on) and tags what fired; the new
    version's first checks on that same traffic are quiet and the watch says "absorbed"."""
    settings, version = champion
    monkeypatch.setenv("ESTEIRA_CAPTURE_S3_URI", f"s3://{BUCKET}/capture/")
    monkeypatch.setenv("ESTEIRA_DRIFT_REPORT_S3_URI", f"s3://{BUCKET}/drift-reports")
    known = set(pd.read_csv(slice_files["test"], dtype=str)["category"])
    shifted = test_frame[test_frame["category"].isin(known)]["text"].tolist()[:200]
    shifted += test_frame[~test_frame["category"].isin(known)]["text"].sample(300, random_state=1).tolist()
    now = dt.datetime.now(dt.UTC)
    put_capture(aws, version, shifted, settings, [i * 0.1 for i in range(500)], base=now)
    fired = drift_check(version, now=now, settings=settings, drift_settings=ds())
    assert fired["status"] == "drift"
    try:
        result = train(
            str(slice_files["train"]),
            str(slice_files["test"]),
            params=ModelParams(estimator="svm", n_jobs=1, seed=1),  # not the champion's key: trains anew
            settings=settings,
            reference_policy="recent-traffic",
        )
        assert result["reference"]["policy"] == "recent-traffic" and result["reference"]["rows"] == 500
        new = result["model_version"]
        tags = registry.client(settings).get_model_version(settings.registered_model_name, new).tags
        assert tags["retrain.reason"] == "drift" and tags["retrain.previous_version"] == version
        fired_tests = {t["name"] for t in fired["report"]["tests"] if t["fired"]}
        assert set(tags["retrain.drift_tests"].split(",")) == fired_tests
        # The new version serves the same shifted traffic: quiet, and after 3 windows "absorbed".
        later = now + dt.timedelta(minutes=1)
        for i in range(3):
            at = later + dt.timedelta(minutes=10 * i)
            put_capture(aws, new, shifted, settings, [j * 0.01 for j in range(500)], base=at)
            check = drift_check(new, now=at, settings=settings, drift_settings=ds())
            assert check["status"] == "no_drift", check["report"]
        assert check["retrain_effect"]["outcome"] == "absorbed"
    finally:
        registry.client(settings).set_registered_model_alias(settings.registered_model_name, registry.CHAMPION, version)


def test_without_a_champion_the_reference_is_the_evaluation_split(champion: tuple[Settings, str]) -> None:
    from pipelines import reference

    settings, _ = champion
    lonely = settings.replace(registered_model_name=f"none-{uuid.uuid4().hex[:6]}")
    plan = reference.plan("auto", ["a", "b"], ["c"], lonely)
    assert plan.policy == "evaluation" and plan.texts == ["a", "b"] and "no champion" in plan.tags["reference.note"]
    with pytest.raises(ValueError, match="reference policy"):
        reference.plan("latest", [], [], settings)
