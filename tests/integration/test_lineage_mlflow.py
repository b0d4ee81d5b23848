"""Lineage and model cards against a real MLflow server: train -> evaluate -> promote -> deploy -> smoke,
each step recording its part, then `esteira lineage <version>` shows every required field."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from model.classifier import ModelParams
from model.config import Settings
from pipelines import lineage, model_card, registry
from pipelines.cli import main as cli_main
from pipelines.evaluate import evaluate
from pipelines.promote import promote
from pipelines.train import train

FAST = ModelParams(estimator="svm", calibration_folds=3, n_jobs=1)
ARN = "arn:aws:states:us-east-1:123456789012:execution:esteira-dev-train-evaluate-deploy:ci-20261124-1"
TD = "arn:aws:ecs:us-east-1:123456789012:task-definition/esteira-serving:7"
TRIGGER = {"kind": "ci", "run": "https://github.com/o/esteira/actions/runs/1", "principal": "arn:aws:sts::1:x"}


def _text(client: object, run_id: str, path: str, tmp: Path) -> str:
    return Path(client.download_artifacts(run_id, path, str(tmp))).read_text()  # type: ignore[attr-defined]


def test_every_step_records_lineage_and_the_card_follows(
    settings: Settings,
    slice_files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ESTEIRA_SNAPSHOT_URI", str(tmp_path / "snapshots"))
    settings = Settings(**{**settings.__dict__, "snapshot_uri": str(tmp_path / "snapshots")})
    trained = train(
        str(slice_files["train"]),
        str(slice_files["test"]),
        params=FAST,
        settings=settings,
        execution_arn=ARN,
        trigger=json.dumps(TRIGGER),
    )
    version, run_id = trained["model_version"], trained["run_id"]
    client = registry.client(settings)

    # At training: lineage up to the trigger, the card with the gate pending.
    card = _text(client, run_id, model_card.CARD_PATH, tmp_path / "a")
    assert "pending: the gate has not judged" in card and "## Calibration" in card
    assert "ece" in client.get_run(run_id).data.metrics
    tags = client.get_model_version(settings.registered_model_name, version).tags
    assert tags[lineage.TAG_EXECUTION] == ARN and json.loads(tags[lineage.TAG_TRIGGER])["kind"] == "ci"

    verdict = evaluate(version, str(slice_files["test"]), settings=settings, execution_arn=ARN)
    promote(version, evaluation=verdict, settings=settings, execution_arn=ARN)
    # What deploy and the smoke test record (their AWS halves are tested in tests/workflow).
    lineage.record_release(
        version,
        strategy="all_at_once",
        event="deploy",
        execution_arn=ARN,
        task_definition=TD,
        previous_task_definition=TD[:-1] + "6",
        settings=settings,
    )
    lineage.record_release(
        version,
        strategy="all_at_once",
        event="smoke",
        execution_arn=ARN,
        passed=True,
        outcome="serving",
        settings=settings,
    )

    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    monkeypatch.setenv("ESTEIRA_MODEL_NAME", settings.registered_model_name)
    capsys.readouterr()
    assert cli_main(["lineage", version]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["missing"] == [], doc["missing"]
    assert doc["data"]["train"]["dataset_hash"] == trained["dataset_hash"]
    assert doc["data"]["train"]["snapshot_uri"] and doc["data"]["eval"]["snapshot_uri"]
    assert doc["code"]["git_commit"] and doc["code"]["code_digest"].startswith("sha256:") and doc["code"]["image"]
    assert doc["execution"]["arn"] == ARN and doc["execution"]["trigger"]["run"] == TRIGGER["run"]
    assert doc["execution"]["principal"] == TRIGGER["principal"]
    assert doc["gate"]["passed"] is True and doc["gate"]["reasons"] and doc["gate"]["execution_arn"] == ARN
    assert doc["promotion"]["status"] == "promoted"
    assert doc["deployment"]["revision"] == 7
    [release] = doc["releases"]
    assert release["outcome"] == "serving" and release["smoke"]["passed"] and release["traffic"][0]["weight"] == 100
    assert "champion" in doc["model"]["aliases"]

    # The stored document and the card were rewritten by the last step.
    stored = json.loads(_text(client, run_id, lineage.DOCUMENT_PATH, tmp_path / "b"))
    assert stored["releases"][0]["outcome"] == "serving"
    card = _text(client, run_id, model_card.CARD_PATH, tmp_path / "c")
    assert "**passed**" in card and "revision 7" in card and ARN in card
    # The link the demo report gives serves the Markdown.
    with urllib.request.urlopen(model_card.card_url(settings.mlflow_tracking_uri, run_id), timeout=10) as resp:
        assert resp.read().decode().startswith(f"# Model card: {settings.registered_model_name} version {version}")

    assert cli_main(["lineage", "champion", "--format", "text"]) == 0
    text = capsys.readouterr().out
    assert f"version {version}" in text and "missing: nothing" in text and ARN in text

    # A later version replaces it (as promote records), then is rolled back (as rollback records).
    variant = tmp_path / "variant.csv"
    rows = slice_files["train"].read_text().splitlines()
    variant.write_text("\n".join(rows[:-3]) + "\n")
    newer = train(str(variant), str(slice_files["test"]), params=FAST, settings=settings, execution_arn=ARN + "-2")
    lineage.record_promotion(
        newer["model_version"],
        status="promoted",
        previous_champion=version,
        execution_arn=ARN + "-2",
        settings=settings,
    )
    assert lineage.build_document(settings, version)["replaced_by"]["version"] == newer["model_version"]
    assert lineage.build_document(settings, newer["model_version"])["execution"]["trigger"] == {"kind": "unknown"}
    lineage.record_release(
        version,
        strategy="all_at_once",
        event="rollback",
        execution_arn=ARN + "-2",
        outcome="rolled_back",
        reason="SmokeTestFailed: x",
        champion={"unchanged": version},
        settings=settings,
    )
    doc = lineage.build_document(settings, version)
    assert [r["outcome"] for r in doc["releases"]] == ["serving", "rolled_back"]
    assert doc["releases"][1]["rollbacks"][0]["reason"].startswith("SmokeTestFailed")
