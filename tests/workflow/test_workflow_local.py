"""The train-evaluate-deploy state machine, run for real on the embedded AWS (localaws).

Same ASL file and handlers as in AWS; real MLflow registry; training and serving run as local
processes started by the ECS data plane. Each test asserts on the execution history, the registry
aliases and the ECS service's revision.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from localaws import LocalAWS
from localaws.sfn import TaskFailed
from model.classifier import ModelParams
from model.config import Settings
from pipelines import registry
from pipelines.promote import promote
from pipelines.train import train
from tests.workflow.conftest import Workflow, explain, make_workflow

HAPPY = [
    "AcquireLock", "LockAcquired?", "ValidateData", "TrainingBackend?", "TrainEcs", "Evaluate", "Gate?",
    "Promote", "Deploy", "WaitServiceStable", "SmokeTest", "NotifyDeployed", "ReleaseLock", "Done",
]  # fmt: skip


def _inputs(slice_files: dict[str, Path], **extra: str) -> dict[str, str]:
    return {"train_data": str(slice_files["train"]), "eval_data": str(slice_files["test"]),
            "smoke_data": str(slice_files["test"]), **extra}  # fmt: skip


def _champion(settings: Settings) -> str | None:
    v = registry.version_by_alias(settings, registry.CHAMPION)
    return None if v is None else str(v.version)


def _predict_version(url: str) -> str:
    req = urllib.request.Request(
        f"{url}/predict", data=json.dumps({"text": "my card has not arrived"}).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.headers["X-Model-Version"])


def _wait_stable(wf: Workflow, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        svc = wf.service()
        deps = svc["deployments"]
        if len(deps) == 1 and deps[0]["rolloutState"] == "COMPLETED":
            return svc
        time.sleep(0.5)
    raise TimeoutError(f"service not stable: {wf.service()['deployments']}")


def _in_order(expected: list[str], actual: list[str]) -> bool:
    it = iter(actual)
    return all(name in it for name in expected)


def _subjects(wf: Workflow) -> list[str]:
    return [n.get("Subject", "") for n in wf.stack.notifications()]


def test_happy_path_and_concurrent_start(local_aws: LocalAWS, settings: Settings, slice_files: dict[str, Path]) -> None:
    wf = make_workflow(local_aws, settings)
    before = wf.service()["taskDefinition"]
    first = wf.start("happy-1", **_inputs(slice_files))
    deadline = time.monotonic() + 60
    while "ValidateData" not in wf.states(first):
        assert time.monotonic() < deadline, wf.states(first)
        time.sleep(0.2)

    second = wf.start("happy-2", **_inputs(slice_files))
    skipped = wf.wait(second, timeout=60)
    assert skipped["status"] == "SUCCEEDED", explain(wf, second) + explain(wf, first)
    out = json.loads(skipped["output"])
    assert out["status"] == "skipped" and out["holder"] == first
    assert wf.states(second)[-2:] == ["AlreadyRunning", "Skipped"]
    assert "ValidateData" not in wf.states(second)

    done = wf.wait(first)
    states = wf.states(first)
    assert done["status"] == "SUCCEEDED", (states, explain(wf, first))
    assert _in_order(HAPPY, states), states
    result = json.loads(done["output"])
    version = str(result["evaluation"]["model_version"])
    assert _champion(settings) == version
    svc = wf.service()
    assert len(svc["deployments"]) == 1
    primary = svc["deployments"][0]["taskDefinition"]
    assert primary != before and primary == result["deployment"]["task_definition"]
    assert wf.serving_env(primary)["MODEL_URI"] == f"models:/{settings.registered_model_name}/{version}"
    assert _predict_version(wf.stack.outputs["serving_url"]) == version
    assert result["smoke"]["status"] == "passed"
    assert any("new model deployed" in s for s in _subjects(wf))
    item = local_aws.client("dynamodb").get_item(
        TableName=wf.stack.outputs["lock_table"], Key={"lock_id": {"S": "train-evaluate-deploy"}}
    )
    assert "Item" not in item, "the lock must be released"


def test_gate_rejection_leaves_serving_alone(
    local_aws: LocalAWS, settings: Settings, slice_files: dict[str, Path]
) -> None:
    # Also the SageMaker training backend (the Terraform variable training_backend = "sagemaker").
    wf = make_workflow(local_aws, settings, backend="sagemaker", ESTEIRA_GATE_MIN_ACCURACY="0.999")
    before = wf.service()["taskDefinition"]
    done = wf.wait(wf.start("rejected", **_inputs(slice_files)))
    states = wf.states(done["executionArn"])
    assert done["status"] == "SUCCEEDED", explain(wf, done["executionArn"])
    assert _in_order(["TrainSageMaker", "Evaluate", "Gate?", "NotifyRejected", "ReleaseLock", "Done"], states), states
    assert "TrainEcs" not in states
    assert "Promote" not in states and "Deploy" not in states
    assert _champion(settings) is None
    assert wf.service()["taskDefinition"] == before
    assert any("rejected by the gate" in s for s in _subjects(wf))


def test_bad_data_stops_before_training(
    local_aws: LocalAWS, settings: Settings, slice_files: dict[str, Path], tmp_path: Path
) -> None:
    frame = pd.read_csv(slice_files["train"], dtype=str, keep_default_na=False)
    frame.loc[7, "category"] = "not_an_intent"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    wf = make_workflow(local_aws, settings)
    done = wf.wait(wf.start("bad-data", **_inputs(slice_files, train_data=str(bad))))
    states = wf.states(done["executionArn"])
    assert done["status"] == "FAILED"
    assert states[-3:] == ["NotifyFailure", "ReleaseLockAfterFailure", "Failed"], states
    assert "TrainEcs" not in states
    failed = [e for e in wf.history(done["executionArn"]) if e["type"] == "LambdaFunctionFailed"]
    assert failed[0]["lambdaFunctionFailedEventDetails"]["error"] == "DataValidationError"
    assert "not_an_intent" in failed[0]["lambdaFunctionFailedEventDetails"]["cause"]


def test_training_failure_notifies_and_touches_nothing(
    local_aws: LocalAWS, settings: Settings, slice_files: dict[str, Path]
) -> None:
    wf = make_workflow(local_aws, settings)
    before = wf.service()["taskDefinition"]
    # Training data is valid (so validation passes) but the training task's evaluation file is missing:
    # the `esteira train` process exits non-zero and the ECS .sync task fails.
    done = wf.wait(wf.start("train-fails", **_inputs(slice_files, eval_data="/nonexistent/eval.csv")))
    states = wf.states(done["executionArn"])
    assert done["status"] == "FAILED"
    assert _in_order(["ValidateData", "TrainEcs", "NotifyFailure", "ReleaseLockAfterFailure", "Failed"], states), (
        states,
        explain(wf, done["executionArn"]),
    )
    assert "Evaluate" not in states
    errors = [e["lambdaFunctionFailedEventDetails"]["error"] for e in wf.history(done["executionArn"])
              if e["type"] == "LambdaFunctionFailed"]  # fmt: skip
    assert errors == [TaskFailed.error_type]
    assert _champion(settings) is None
    assert wf.service()["taskDefinition"] == before
    assert any("failed before deploy" in s for s in _subjects(wf))


def _with_champion(local_aws: LocalAWS, settings: Settings, slice_files: dict[str, Path], **env: str) -> Workflow:
    """v1 trained, promoted and serving; the gate then lets any challenger through (its rule is unit-tested)."""
    trained = train(str(slice_files["train"]), str(slice_files["test"]),
                    params=ModelParams(estimator="svm", n_jobs=1, calibration_folds=0), settings=settings)  # fmt: skip
    promote(trained["model_version"], eval_uri=str(slice_files["test"]), settings=settings)
    assert _champion(settings) == trained["model_version"]
    wf = make_workflow(
        local_aws, settings, initial_model_uri=registry.model_uri(settings, trained["model_version"]),
        ESTEIRA_GATE_MIN_IMPROVEMENT="-1", ESTEIRA_GATE_MAX_INTENT_F1_DROP="1", **env,
    )  # fmt: skip
    _wait_stable(wf)
    assert _predict_version(wf.stack.outputs["serving_url"]) == trained["model_version"]
    return wf


@pytest.mark.slow
def test_deploy_failure_rolls_back(local_aws: LocalAWS, settings: Settings, slice_files: dict[str, Path]) -> None:
    wf = _with_champion(local_aws, settings, slice_files)
    v1, before = _champion(settings), wf.service()["taskDefinition"]
    # A deploy that cannot succeed: the function is configured with a container the task definition lacks.
    wf.stack.update_function_env("deploy", ESTEIRA_SERVING_CONTAINER="no-such-container")
    done = wf.wait(wf.start("deploy-fails", **_inputs(slice_files)))
    states = wf.states(done["executionArn"])
    assert done["status"] == "FAILED"
    assert _in_order(["Promote", "Deploy", "Rollback", "WaitRollbackStable", "NotifyRolledBack", "Failed"], states)
    assert "SmokeTest" not in states
    assert _champion(settings) == v1, "champion alias must be restored"
    assert wf.service()["taskDefinition"] == before
    assert _predict_version(wf.stack.outputs["serving_url"]) == v1
    assert any("rolled back" in s for s in _subjects(wf))


@pytest.mark.slow
def test_smoke_failure_rolls_back_revision_and_alias(
    local_aws: LocalAWS, settings: Settings, slice_files: dict[str, Path], tmp_path: Path
) -> None:
    wf = _with_champion(local_aws, settings, slice_files)
    v1, before = _champion(settings), wf.service()["taskDefinition"]
    # Smoke rows whose labels are all wrong: the new revision answers, but not correctly.
    frame = pd.read_csv(slice_files["test"], dtype=str, keep_default_na=False)
    intents = sorted(frame["category"].unique())
    frame["category"] = frame["category"].map(lambda c: intents[(intents.index(c) + 1) % len(intents)])
    wrong = tmp_path / "wrong.csv"
    frame.to_csv(wrong, index=False)
    done = wf.wait(wf.start("smoke-fails", **_inputs(slice_files, smoke_data=str(wrong))))
    states = wf.states(done["executionArn"])
    assert done["status"] == "FAILED"
    assert _in_order(["Deploy", "WaitServiceStable", "SmokeTest", "Rollback", "WaitRollbackStable",
                      "NotifyRolledBack", "ReleaseLockAfterFailure", "Failed"], states), states  # fmt: skip
    errors = [e["lambdaFunctionFailedEventDetails"]["error"] for e in wf.history(done["executionArn"])
              if e["type"] == "LambdaFunctionFailed"]  # fmt: skip
    assert "SmokeTestFailed" in errors
    assert _champion(settings) == v1
    svc = wf.service()
    assert svc["taskDefinition"] == before and svc["deployments"][0]["taskDefinition"] == before
    assert _predict_version(wf.stack.outputs["serving_url"]) == v1
    assert any("rolled back" in s for s in _subjects(wf))
