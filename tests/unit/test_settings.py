"""The one settings mechanism (model/settings.py): names, old names, precedence, errors, immutability."""

from __future__ import annotations

import logging
import warnings
from typing import ClassVar

import pytest

from model.config import Settings
from model.serving.settings import ServingSettings
from model.settings import PREFIX, THIRD_PARTY, EsteiraSettings, Flag, SettingsError, env_spec, setting
from pipelines.aws import WorkflowSettings
from pipelines.drift_check import DriftSettings
from pipelines.release.settings import CanarySettings
from pipelines.retrain_trigger import TriggerSettings

CLASSES = (Settings, ServingSettings, WorkflowSettings, CanarySettings, DriftSettings, TriggerSettings)


class Demo(EsteiraSettings):
    doc_title: ClassVar[str] = "demo"

    size: int = setting(3, env="ESTEIRA_DEMO_SIZE", old=("DEMO_SIZE", "SIZE"), ge=1, le=10, description="a size")
    on: Flag = setting(False, env="ESTEIRA_DEMO_ON", description="a switch")


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ESTEIRA_DEMO_SIZE", "DEMO_SIZE", "SIZE", "ESTEIRA_DEMO_ON"):
        monkeypatch.delenv(name, raising=False)


def test_the_new_name_is_read_without_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESTEIRA_DEMO_SIZE", " 7 ")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Demo.from_env().size == 7
    assert Demo.read_env({}).size == 3  # an environment given explicitly


def test_an_old_name_is_read_with_a_deprecation_warning_and_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DEMO_SIZE", "5")
    message = "DEMO_SIZE is deprecated; set ESTEIRA_DEMO_SIZE (old names are read until the next release)"
    with caplog.at_level(logging.WARNING, logger="esteira.settings"), pytest.warns(DeprecationWarning) as caught:
        assert Demo.from_env().size == 5
        assert Demo.from_env().size == 5
    assert [str(w.message) for w in caught] == [message, message]
    assert [r.getMessage() for r in caplog.records] == [message]  # logged once per name and process


def test_the_new_name_wins_when_both_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESTEIRA_DEMO_SIZE", "9")
    monkeypatch.setenv("DEMO_SIZE", "5")
    monkeypatch.setenv("SIZE", "4")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Demo.from_env().size == 9
    monkeypatch.delenv("ESTEIRA_DEMO_SIZE")
    with pytest.warns(DeprecationWarning, match="DEMO_SIZE is deprecated"):
        assert Demo.from_env().size == 5  # old names in the order declared


def test_empty_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESTEIRA_DEMO_SIZE", "  ")
    assert Demo.from_env().size == 3


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("ESTEIRA_DEMO_SIZE", "11", "less than or equal to 10"),
        ("ESTEIRA_DEMO_SIZE", "three", "valid integer"),
        ("DEMO_SIZE", "0", "greater than or equal to 1"),
        ("ESTEIRA_DEMO_ON", "yes", "must be 0 or 1"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_variable_and_the_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, why: str
) -> None:
    monkeypatch.setenv(name, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SettingsError) as error:
            Demo.from_env()
    assert f"environment variable {name}={value!r}" in str(error.value) and why in str(error.value)
    assert isinstance(error.value, ValueError)


def test_keyword_construction_never_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESTEIRA_DEMO_SIZE", "9")
    assert Demo().size == 3 and Demo(size=4).size == 4
    with pytest.raises(SettingsError, match=r"Demo.size \(ESTEIRA_DEMO_SIZE\)=0"):
        Demo(size=0)
    with pytest.raises(SettingsError, match="Extra inputs"):
        Demo(sise=4)  # type: ignore[call-arg]


def test_instances_are_immutable_and_replace_revalidates() -> None:
    demo = Demo(size=4)
    with pytest.raises(ValueError, match="frozen"):
        demo.size = 5  # type: ignore[misc]
    assert demo.replace(size=6).size == 6 and demo.size == 4
    with pytest.raises(SettingsError, match="less than or equal to 10"):
        demo.replace(size=60)


def test_renamed_maps_old_names_and_keeps_a_current_one() -> None:
    assert ServingSettings.renamed({"MODEL_URI": "a", "X": "1"}) == {"ESTEIRA_MODEL_URI": "a", "X": "1"}
    assert ServingSettings.renamed({"MODEL_URI": "a", "ESTEIRA_MODEL_URI": "b"}) == {"ESTEIRA_MODEL_URI": "b"}


def test_every_setting_follows_the_scheme() -> None:
    for cls in CLASSES:
        for name, field in cls.model_fields.items():
            spec = env_spec(field)
            if spec is None:
                continue
            assert spec.env.startswith(PREFIX) or spec.env in THIRD_PARTY, f"{cls.__name__}.{name}: {spec.env}"
            assert field.description, f"{cls.__name__}.{name} has no description"
            for old in spec.old:
                assert not old.startswith(PREFIX) or old != spec.env


def test_the_serving_names_moved_and_the_old_ones_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    old = {
        "MODEL_URI": ("model_uri", "models:/m/3"),
        "MODEL_VERSION": ("model_version", "3"),
        "HOST": ("host", "127.0.0.1"),
        "PORT": ("port", 9001),
        "SERVICE_NAME": ("service_name", "svc"),
        "LOG_LEVEL": ("log_level", "debug"),
        "SERVING_FAST_PATH": ("fast_path", False),
        "SERVING_MAX_BATCH": ("max_batch", 5),
        "CAPTURE_S3_URI": ("capture_s3_uri", "s3://b/p/"),
        "SHADOW_URL": ("shadow_url", "http://x"),
    }
    raw = {"PORT": "9001", "SERVING_FAST_PATH": "0", "SERVING_MAX_BATCH": "5", "LOG_LEVEL": "DEBUG"}
    env = {k: raw.get(k, str(v)) for k, (_, v) in old.items()}
    with pytest.warns(DeprecationWarning):
        by_old = ServingSettings.read_env(env)
    by_new = ServingSettings.read_env(ServingSettings.renamed(env))
    for name, (field, value) in old.items():
        assert getattr(by_old, field) == getattr(by_new, field) == value, name
    assert ServingSettings.env_names()["SERVING_FAST_PATH"] == "ESTEIRA_SERVING_FAST_PATH"
    assert ServingSettings.env_names()["HOST"] == "ESTEIRA_SERVING_HOST"


def test_derived_defaults_yield_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    wf = WorkflowSettings(service="svc", sns_topic_arn="arn:topic")
    for name in ("ESTEIRA_CANARY_SERVICE", "ESTEIRA_METRICS_SERVICE", "ESTEIRA_CANARY_ALARM_TOPIC_ARN"):
        monkeypatch.delenv(name, raising=False)
    cs = CanarySettings.from_env(wf)
    assert (cs.canary_service, cs.metrics_service, cs.alarm_topic_arn) == ("svc-canary", "svc", "arn:topic")
    monkeypatch.setenv("ESTEIRA_CANARY_SERVICE", "other")
    assert CanarySettings.from_env(wf).canary_service == "other"
    assert CanarySettings().canary_service == ""


def test_snapshot_and_report_locations_are_derived_from_the_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    from model.contract import contract

    for name in ("ESTEIRA_SNAPSHOT_URI", "ESTEIRA_DRIFT_REPORT_S3_URI", "ESTEIRA_CAPTURE_S3_URI", "CAPTURE_S3_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ESTEIRA_DATA_BUCKET", "data")
    assert Settings.from_env().snapshot_uri == f"s3://data/{contract().snapshots_prefix}/"
    monkeypatch.setenv("ESTEIRA_SNAPSHOT_URI", "/snaps")
    assert Settings.from_env().snapshot_uri == "/snaps"
    monkeypatch.delenv("ESTEIRA_ARTIFACTS_BUCKET", raising=False)
    monkeypatch.setenv("ESTEIRA_CAPTURE_S3_URI", "s3://cap/capture/")
    assert DriftSettings.from_env().report_s3_uri == "s3://cap/drift-reports"
    monkeypatch.setenv("ESTEIRA_ARTIFACTS_BUCKET", "art")
    assert DriftSettings.from_env().report_s3_uri == "s3://art/drift-reports"


def test_the_retrain_cooldown_must_not_be_negative(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESTEIRA_RETRAIN_COOLDOWN_SECONDS", "-1")
    with pytest.raises(ValueError, match="ESTEIRA_RETRAIN_COOLDOWN_SECONDS='-1'"):
        TriggerSettings.from_env()
