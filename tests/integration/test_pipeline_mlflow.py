"""The steps against a real MLflow server and registry: train, evaluate, gate, promote, idempotency."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from model.classifier import ModelParams
from model.config import Settings
from model.validate import DataValidationError
from pipelines import provenance, registry
from pipelines.cli import main as cli_main
from pipelines.evaluate import evaluate
from pipelines.promote import promote
from pipelines.train import train

FAST = ModelParams(estimator="svm", calibration_folds=3, n_jobs=1)


def test_train_logs_everything_and_registers_challenger(settings: Settings, slice_files: dict[str, Path]) -> None:
    res = train(str(slice_files["train"]), str(slice_files["test"]), params=FAST, settings=settings)
    assert res["status"] == "trained" and res["model_version"] == "1"
    client = registry.client(settings)
    run = client.get_run(res["run_id"])
    assert run.data.tags["dataset_hash"] == res["dataset_hash"]
    assert run.data.tags["git_commit"]
    assert {"accuracy", "macro_f1", "fit_seconds"} <= set(run.data.metrics)
    assert any(k.startswith("f1.") for k in run.data.metrics)
    assert run.data.params["estimator"] == "svm"
    artifacts = {a.path for a in client.list_artifacts(res["run_id"], "evaluation")}
    assert "evaluation/confusion_matrix.png" in artifacts
    version = client.get_model_version(settings.registered_model_name, "1")
    assert version.tags["dataset_hash"] == res["dataset_hash"]
    assert version.tags["git_commit"] == run.data.tags["git_commit"]
    assert version.tags["code_digest"].startswith("sha256:") and version.tags["training_key"].startswith("sha256:")
    assert registry.version_by_alias(settings, registry.CHALLENGER).version == "1"
    logged = mlflow.models.get_model_info(res["model_uri"])
    assert logged.signature is not None and logged.saved_input_example_info is not None
    # The same data, params, code and libraries again: the existing version is reused, not duplicated.
    again = train(str(slice_files["train"]), str(slice_files["test"]), params=FAST, settings=settings)
    assert again["status"] == "reused" and again["model_version"] == "1"
    # Changed training code (whatever the commit says) trains a new version.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(provenance, "code_digest", lambda: "sha256:" + "0" * 64)
        changed = train(str(slice_files["train"]), str(slice_files["test"]), params=FAST, settings=settings)
    assert changed["status"] == "trained" and changed["model_version"] == "2"
    # A pyfunc consumer (what `mlflow models serve` runs) gets intent + confidence.
    out = mlflow.pyfunc.load_model(res["model_uri"]).predict(pd.DataFrame({"text": ["my card was stolen"]}))
    assert list(out.columns) == ["intent", "confidence"]


def test_gate_first_model_then_reject_then_promote(
    settings: Settings, slice_files: dict[str, Path], tmp_path: Path
) -> None:
    first = train(str(slice_files["train"]), str(slice_files["test"]), params=FAST, settings=settings)
    result = promote(first["model_version"], eval_uri=str(slice_files["test"]), settings=settings)
    assert result["status"] == "promoted" and result["previous_champion"] is None
    assert registry.version_by_alias(settings, registry.CHAMPION).version == first["model_version"]
    assert (
        promote(first["model_version"], eval_uri=str(slice_files["test"]), settings=settings)["status"]
        == "already-champion"
    )

    # A worse challenger (trained on a third of the data) is rejected; the champion does not move.
    train_df = pd.read_csv(slice_files["train"])
    weak = tmp_path / "weak.csv"
    train_df.groupby("category").head(4).to_csv(weak, index=False)
    worse = train(str(weak), str(slice_files["test"]), params=FAST, settings=settings)
    verdict = evaluate(worse["model_version"], str(slice_files["test"]), settings=settings)
    assert verdict["gate"]["passed"] is False
    rejected = promote(worse["model_version"], evaluation=verdict, settings=settings)
    assert rejected["status"] == "rejected"
    assert registry.version_by_alias(settings, registry.CHAMPION).version == first["model_version"]
    assert (
        registry.client(settings)
        .get_model_version(settings.registered_model_name, worse["model_version"])
        .tags["gate_passed"]
        == "false"
    )

    # With a negative margin (a policy choice) an equal model may replace it; the old champion is recorded.
    lenient = settings.replace(gate_min_improvement=-0.5, gate_max_intent_f1_drop=1.0)
    moved = promote(worse["model_version"], eval_uri=str(slice_files["test"]), settings=lenient)
    assert moved["status"] == "promoted" and moved["previous_champion"] == first["model_version"]
    tags = registry.client(settings).get_model_version(settings.registered_model_name, worse["model_version"]).tags
    assert tags["previous_champion"] == first["model_version"]


def test_first_model_below_threshold_is_rejected(settings: Settings, slice_files: dict[str, Path]) -> None:
    strict = settings.replace(gate_min_accuracy=0.999)
    res = train(str(slice_files["train"]), str(slice_files["test"]), params=FAST, settings=strict)
    out = promote(res["model_version"], eval_uri=str(slice_files["test"]), settings=strict)
    assert out["status"] == "rejected" and registry.version_by_alias(strict, registry.CHAMPION) is None


def test_bad_data_stops_before_training(
    settings: Settings,
    slice_files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad = tmp_path / "bad.csv"
    df = pd.read_csv(slice_files["train"])
    df.loc[7, "text"] = "   "
    df.to_csv(bad, index=False)
    with pytest.raises(DataValidationError, match=r"bad.csv row 8 column 'text'"):
        train(str(bad), str(slice_files["test"]), params=FAST, settings=settings)
    assert mlflow.get_experiment_by_name(settings.experiment_name) is None, "nothing may be logged"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    monkeypatch.setenv("ESTEIRA_EXPERIMENT", settings.experiment_name)
    assert cli_main(["train", "--train-data", str(bad), "--eval-data", str(slice_files["test"])]) == 2
    assert '"status": "invalid"' in capsys.readouterr().out


def test_search_logs_nested_runs(settings: Settings, slice_files: dict[str, Path]) -> None:
    res = train(str(slice_files["train"]), str(slice_files["test"]), params=FAST, search=True, settings=settings)
    client = registry.client(settings)
    exp = client.get_experiment_by_name(settings.experiment_name)
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{res['run_id']}'")
    assert len(children) >= 3 and all("val_accuracy" in c.data.metrics for c in children)
    assert "search_best" in client.get_run(res["run_id"]).data.params
