"""The train-evaluate-deploy state machine `tofu apply` created, run on the embedded AWS (localaws).

One applied stack per module (infra/terraform + dev.tfvars, with the SageMaker training backend),
a real MLflow registry; training and serving run as local processes started from what the emulator
holds. The tests run in file order on the same stack, as releases would in an account: each reads
the champion and the serving revision before it acts and asserts on what changed.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from localaws.sfn import TaskFailed
from pipelines import lineage, registry
from tests.conftest import explain as explain_execution
from tests.workflow.conftest import Workflow

pytestmark = pytest.mark.slow  # a tofu apply per module

# The release's states are its child execution's, spliced in by pipelines/executions.py.
HAPPY = [
    "AcquireLock", "LockAcquired?", "ValidateData", "TrainingBackend?", "TrainSageMaker", "Evaluate", "Gate?",
    "Release", "ReleaseDefaults", "ReleaseConfig", "DeploymentStrategy?", "Deploy", "WaitServiceStable", "SmokeTest",
    "RecordRelease", "Promote", "Released", "NotifyReleased", "ReleaseLock", "Done",
]  # fmt: skip


def _predict_version(url: str) -> str:
    req = urllib.request.Request(
        f"{url}/predict", data=json.dumps({"text": "my card has not arrived"}).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.headers["X-Model-Version"])


def _in_order(expected: list[str], actual: list[str]) -> bool:
    it = iter(actual)
    return all(name in it for name in expected)


def _subjects(wf: Workflow) -> list[str]:
    return [n.get("Subject", "") for n in wf.stack.notifications()]


def _variant(wf: Workflow, tmp_path: Path, n: int) -> Path:
    """The training slice minus a few rows: a new dataset hash, so a new model version (the trainer
    reuses the version it trained on identical data and parameters)."""
    frame = pd.read_csv(wf.slice_files["train"], dtype=str, keep_default_na=False)
    out = tmp_path / f"train-variant-{n}.csv"
    frame.drop(index=range(n * 3, n * 3 + 3)).to_csv(out, index=False)
    return out


def _champion_serving(wf: Workflow) -> str:
    """The champion's version, after a first release if this module has none yet (the test runs alone)."""
    if wf.champion() is None:
        done = wf.wait(wf.start(f"first-{int(time.time())}", **wf.inputs()))
        assert done["status"] == "SUCCEEDED", explain_execution(wf.aws, done["executionArn"])
    version = wf.champion()
    assert version is not None
    assert _predict_version(wf.stack.outputs["serving_url"]) == version
    # The gate lets any challenger through from here (its rule is unit-tested).
    wf.configure("evaluate", ESTEIRA_GATE_MIN_IMPROVEMENT="-1", ESTEIRA_GATE_MAX_INTENT_F1_DROP="1")
    return version


def test_happy_path_and_concurrent_start(workflow: Workflow) -> None:
    wf = workflow
    before = wf.service()["taskDefinition"]
    trigger = {"kind": "ci", "run": "https://ci.example/runs/1", "principal": "arn:aws:sts::123456789012:x/ci"}
    first = wf.start("happy-1", **wf.inputs(), trigger=trigger)
    deadline = time.monotonic() + 60
    while "ValidateData" not in wf.states(first):
        assert time.monotonic() < deadline, wf.states(first)
        time.sleep(0.2)

    second = wf.start("happy-2", **wf.inputs())
    skipped = wf.wait(second, timeout=60)
    assert skipped["status"] == "SUCCEEDED", explain_execution(wf.aws, second) + explain_execution(wf.aws, first)
    out = json.loads(skipped["output"])
    assert out["status"] == "skipped" and out["holder"] == first
    assert wf.states(second)[-2:] == ["AlreadyRunning", "Skipped"]
    assert "ValidateData" not in wf.states(second)

    done = wf.wait(first)
    states = wf.states(first)
    assert done["status"] == "SUCCEEDED", (states, explain_execution(wf.aws, first))
    assert _in_order(HAPPY, states), states
    assert "TrainEcs" not in states
    result = json.loads(done["output"])
    version = str(result["evaluation"]["model_version"])
    assert wf.champion() == version
    svc = wf.service()
    assert len(svc["deployments"]) == 1
    primary = svc["deployments"][0]["taskDefinition"]
    assert primary != before and primary == result["release"]["output"]["deployment"]["task_definition"]
    assert result["release"]["output"]["outcome"] == "serving"
    assert wf.serving_env(primary)["ESTEIRA_MODEL_URI"] == f"models:/{wf.settings.registered_model_name}/{version}"
    assert _predict_version(wf.stack.outputs["serving_url"]) == version
    assert any("new model released" in s for s in _subjects(wf))
    item = wf.aws.client("dynamodb").get_item(
        TableName=wf.stack.outputs["lock_table"], Key={"lock_id": {"S": "train-evaluate-deploy"}}
    )
    assert "Item" not in item, "the lock must be released"
    # The version's lineage (docs/governance.md): this execution, its trigger, the gate and the deployment.
    doc = lineage.build_document(wf.settings, version)
    assert doc["execution"]["arn"] == first and doc["execution"]["trigger"] == trigger
    assert doc["data"]["train"]["snapshot_uri"] and doc["data"]["eval"]["snapshot_uri"]
    assert doc["gate"]["passed"] is True and doc["gate"]["execution_arn"] == first
    assert doc["deployment"]["task_definition"] == primary and doc["deployment"]["execution_arn"] == first
    assert doc["releases"][-1]["outcome"] == "serving" and doc["releases"][-1]["smoke"]["passed"]
    assert doc["missing"] == [], doc["missing"]


def _set_champion(uri: str, name: str, version: str, who: dict[str, str] | None) -> int:
    """POST registered-models/alias as any MLflow client does; the HTTP status."""
    body = json.dumps({"name": name, "alias": registry.CHAMPION, "version": version}).encode()
    req = urllib.request.Request(f"{uri}/api/2.0/mlflow/registered-models/alias", data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    if who is not None:
        pair = f"{who['MLFLOW_TRACKING_USERNAME']}:{who['MLFLOW_TRACKING_PASSWORD']}"
        req.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_only_the_workflow_user_moves_champion(workflow: Workflow) -> None:
    """The registry has an owner on the applied stack: MLflow runs basic-auth with the users Terraform's
    secrets hold (set when its ECS service started), the workflow reached it with its own credential
    (the release above), the serving tasks loaded the champion with the read-only one, and a client
    without a credential, or with serving's, cannot move `champion`."""
    wf = workflow
    version = _champion_serving(wf)  # released by the workflow's Lambdas, served by tasks using the reader
    uri, name = wf.settings.mlflow_tracking_uri, wf.settings.registered_model_name
    assert _set_champion(uri, name, version, None) == 401
    reader = wf.stack.mlflow_credential("reader")
    assert _set_champion(uri, name, version, reader) == 403
    assert _set_champion(uri, name, version, wf.stack.mlflow_credential("workflow")) == 200
    assert wf.champion() == version
    # `esteira lineage --serving`: which version answers traffic, and why (its gate and last release).
    now = lineage.serving(wf.settings, url=wf.stack.outputs["serving_url"], samples=4)
    assert now["agree"] and now["serving_versions"] == {version: 4}, now
    assert now["versions"][version]["gate"]["passed"] is True and now["versions"][version]["last_release"]
    # Serving got the reader's credential from its task definition's secrets, not the workflow's.
    secrets = {s["name"]: s["valueFrom"] for s in wf.serving_container(wf.service()["taskDefinition"])["secrets"]}
    reader_arn = wf.stack.outputs["mlflow_credential_secret_arns"]["reader"]
    assert secrets == {
        "MLFLOW_TRACKING_USERNAME": f"{reader_arn}:username::",
        "MLFLOW_TRACKING_PASSWORD": f"{reader_arn}:password::",
    }


def test_gate_rejection_leaves_serving_alone(workflow: Workflow, tmp_path: Path) -> None:
    wf = workflow
    champion, before = wf.champion(), wf.service()["taskDefinition"]
    # Bars no candidate meets: the first-model bar, and +50 points over a champion.
    wf.configure("evaluate", ESTEIRA_GATE_MIN_ACCURACY="0.999", ESTEIRA_GATE_MIN_IMPROVEMENT="0.5")
    done = wf.wait(wf.start("rejected", **wf.inputs(train_data=str(_variant(wf, tmp_path, 1)))))
    states = wf.states(done["executionArn"])
    assert done["status"] == "SUCCEEDED", explain_execution(wf.aws, done["executionArn"])
    assert _in_order(["TrainSageMaker", "Evaluate", "Gate?", "NotifyRejected", "ReleaseLock", "Done"], states), states
    assert "Promote" not in states and "Deploy" not in states
    assert wf.champion() == champion
    assert wf.service()["taskDefinition"] == before
    assert any("rejected by the gate" in s for s in _subjects(wf))


def test_bad_data_stops_before_training(workflow: Workflow, tmp_path: Path) -> None:
    wf = workflow
    frame = pd.read_csv(wf.slice_files["train"], dtype=str, keep_default_na=False)
    frame.loc[7, "category"] = "not_an_intent"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    done = wf.wait(wf.start("bad-data", **wf.inputs(train_data=str(bad))))
    states = wf.states(done["executionArn"])
    assert done["status"] == "FAILED"
    assert states[-3:] == ["NotifyFailure", "ReleaseLockAfterFailure", "Failed"], states
    assert "TrainSageMaker" not in states
    failed = [e for e in wf.history(done["executionArn"]) if e["type"] == "LambdaFunctionFailed"]
    assert failed[0]["lambdaFunctionFailedEventDetails"]["error"] == "DataValidationError"
    assert "not_an_intent" in failed[0]["lambdaFunctionFailedEventDetails"]["cause"]


def test_training_failure_notifies_and_touches_nothing(workflow: Workflow, tmp_path: Path) -> None:
    wf = workflow
    champion, before = wf.champion(), wf.service()["taskDefinition"]
    # The data is valid (so validation passes and snapshots it) but the training job is given a drift
    # reference policy `esteira train` refuses: the process exits non-zero and the SageMaker .sync task
    # fails. (A missing data file is ValidateData's failure now: it validates the evaluation set too.)
    train_data = str(_variant(wf, tmp_path, 2))
    done = wf.wait(wf.start("train-fails", **wf.inputs(train_data=train_data, reference="no-such-policy")))
    states = wf.states(done["executionArn"])
    assert done["status"] == "FAILED"
    expected = ["ValidateData", "TrainSageMaker", "NotifyFailure", "ReleaseLockAfterFailure", "Failed"]
    assert _in_order(expected, states), (states, explain_execution(wf.aws, done["executionArn"]))
    assert "Evaluate" not in states
    errors = [e["lambdaFunctionFailedEventDetails"]["error"] for e in wf.history(done["executionArn"])
              if e["type"] == "LambdaFunctionFailed"]  # fmt: skip
    assert errors == [TaskFailed.error_type]
    assert wf.champion() == champion
    assert wf.service()["taskDefinition"] == before
    assert any("failed before a release changed anything" in s for s in _subjects(wf))


def test_deploy_failure_rolls_back(workflow: Workflow, tmp_path: Path) -> None:
    wf = workflow
    v1 = _champion_serving(wf)
    before = wf.service()["taskDefinition"]
    # A deploy that cannot succeed: the function is configured with a container the task definition lacks.
    wf.configure("deploy", ESTEIRA_SERVING_CONTAINER="no-such-container")
    done = wf.wait(wf.start("deploy-fails", **wf.inputs(train_data=str(_variant(wf, tmp_path, 3)))))
    states = wf.states(done["executionArn"])
    assert done["status"] == "FAILED", explain_execution(wf.aws, done["executionArn"])
    expected = ["Release", "Deploy", "Rollback", "WaitRollbackStable", "RolledBack", "ReleaseFailed", "RolledBack?",
                "NotifyRolledBack", "ReleaseLockAfterFailure", "Failed"]  # fmt: skip
    assert _in_order(expected, states), states
    assert "SmokeTest" not in states and "Promote" not in states
    assert wf.champion() == v1, "the champion alias never moved"
    assert wf.service()["taskDefinition"] == before
    assert _predict_version(wf.stack.outputs["serving_url"]) == v1
    assert any("rolled back" in s for s in _subjects(wf))


def test_smoke_failure_rolls_back_the_revision_and_leaves_the_alias(workflow: Workflow, tmp_path: Path) -> None:
    wf = workflow
    v1 = _champion_serving(wf)
    before = wf.service()["taskDefinition"]
    # Smoke rows whose labels are all wrong: the new revision answers, but not correctly.
    frame = pd.read_csv(wf.slice_files["test"], dtype=str, keep_default_na=False)
    intents = sorted(frame["category"].unique())
    frame["category"] = frame["category"].map(lambda c: intents[(intents.index(c) + 1) % len(intents)])
    wrong = tmp_path / "wrong.csv"
    frame.to_csv(wrong, index=False)
    train_data = str(_variant(wf, tmp_path, 4))
    done = wf.wait(wf.start("smoke-fails", **wf.inputs(train_data=train_data, smoke_data=str(wrong))))
    states = wf.states(done["executionArn"])
    assert done["status"] == "FAILED"
    assert _in_order(["Deploy", "WaitServiceStable", "SmokeTest", "Rollback", "WaitRollbackStable", "RolledBack",
                      "NotifyRolledBack", "ReleaseLockAfterFailure", "Failed"], states), states  # fmt: skip
    assert "Promote" not in states
    errors = [e["lambdaFunctionFailedEventDetails"]["error"] for e in wf.history(done["executionArn"])
              if e["type"] == "LambdaFunctionFailed"]  # fmt: skip
    assert "SmokeTestFailed" in errors
    assert wf.champion() == v1
    svc = wf.service()
    assert svc["taskDefinition"] == before and svc["deployments"][0]["taskDefinition"] == before
    assert _predict_version(wf.stack.outputs["serving_url"]) == v1
    assert any("rolled back" in s for s in _subjects(wf))
    # The failed release is on the new version's record; the old champion's says it serves again.
    name = wf.settings.registered_model_name
    new = str(max(int(v.version) for v in registry.client(wf.settings).search_model_versions(f"name='{name}'")))
    release = lineage.build_document(wf.settings, new)["releases"][-1]
    assert release["execution_arn"] == done["executionArn"] and release["outcome"] == "rolled_back"
    assert "SmokeTestFailed" in release["rollbacks"][-1]["reason"]
    # The alias never moved, so the old champion's record was not touched by this execution.
    replaced = lineage.build_document(wf.settings, v1).get("replaced_by") or {}
    assert replaced.get("execution_arn") != done["executionArn"]


def test_a_missing_statement_fails_the_deploy_with_access_denied(workflow: Workflow, tmp_path: Path) -> None:
    """IAM is enforced as in AWS: without the statement that lets deploy tag the revisions it registers
    (issue 17's first finding), Deploy fails with AccessDenied naming ecs:TagResource and the release
    rolls back; with the statement back, the role works again."""
    wf = workflow
    v1 = _champion_serving(wf)
    iam = wf.aws.client("iam")
    role = wf.stack.outputs["functions"]["deploy"]  # each function's role is named after it
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    assert len(names) == 1, names
    original = iam.get_role_policy(RoleName=role, PolicyName=names[0])["PolicyDocument"]
    document = original if isinstance(original, dict) else json.loads(original)
    kept = [s for s in document["Statement"] if "ecs:TagResource" not in json.dumps(s.get("Action"))]
    assert len(kept) == len(document["Statement"]) - 1, "the deploy role grants ecs:TagResource in one statement"
    iam.put_role_policy(RoleName=role, PolicyName=names[0], PolicyDocument=json.dumps({**document, "Statement": kept}))
    try:
        done = wf.wait(wf.start("deploy-denied", **wf.inputs(train_data=str(_variant(wf, tmp_path, 5)))))
    finally:
        iam.put_role_policy(RoleName=role, PolicyName=names[0], PolicyDocument=json.dumps(document))
    assert done["status"] == "FAILED"
    causes = [e["lambdaFunctionFailedEventDetails"].get("cause", "") for e in wf.history(done["executionArn"])
              if e["type"] == "LambdaFunctionFailed"]  # fmt: skip
    assert any("AccessDenied" in c and "ecs:TagResource" in c for c in causes), causes
    assert _in_order(["Deploy", "Rollback", "NotifyRolledBack", "Failed"], wf.states(done["executionArn"]))
    assert wf.champion() == v1
    assert _predict_version(wf.stack.outputs["serving_url"]) == v1
    # The refusal was the point of this test: the suite's "no AccessDenied" check covers the others.
    assert wf.aws.iam is not None
    assert set(wf.aws.iam.usage[role].denied) == {"ecs:TagResource"}
    wf.aws.iam.usage[role].denied.clear()


def _desired_hosts(wf: Workflow) -> int:
    autoscaling = wf.aws.client("autoscaling")
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["esteira-dev-ec2-training"])
    return int(groups["AutoScalingGroups"][0]["DesiredCapacity"])


def test_an_execution_trains_on_the_ec2_capacity_it_chooses(workflow: Workflow, tmp_path: Path) -> None:
    """training_backend in the input picks the EC2 capacity provider for this execution only (the stack's
    default is SageMaker). Managed scaling adds a host for the task and removes it when idle; the
    training run is the ordinary one, to the gate (set here to refuse, so nothing is released)."""
    wf = workflow
    champion, before = wf.champion(), wf.service()["taskDefinition"]
    assert _desired_hosts(wf) == 0, "an idle EC2 capacity provider has no host"
    wf.configure("evaluate", ESTEIRA_GATE_MIN_ACCURACY="0.999", ESTEIRA_GATE_MIN_IMPROVEMENT="0.5")
    train_data = str(_variant(wf, tmp_path, 6))
    run = wf.start("on-ec2", **wf.inputs(train_data=train_data), training_backend="ec2")
    done = wf.wait(run)
    states = wf.states(run)
    # A string message: pytest prints it whole (a tuple's repr is cut to one line without -vv).
    assert done["status"] == "SUCCEEDED", f"states: {states}\n{explain_execution(wf.aws, run)}"
    assert _in_order(["BackendDeployed?", "ValidateData", "TrainingBackend?", "TrainEc2", "Evaluate", "Gate?",
                      "NotifyRejected", "Done"], states), states  # fmt: skip
    assert "TrainSageMaker" not in states and "TrainEcs" not in states
    result = json.loads(done["output"])
    ecs = wf.aws.client("ecs")
    (task,) = ecs.describe_tasks(cluster="esteira-dev", tasks=[result["training"]["task_arn"]])["tasks"]
    assert task["capacityProviderName"] == "esteira-dev-ec2-training"
    assert ":task-definition/esteira-dev-train-ec2:" in task["taskDefinitionArn"]
    assert task["containers"][0]["exitCode"] == 0
    assert result["evaluation"]["model_version"], "the EC2-trained model is registered and evaluated"
    deadline = time.monotonic() + 60
    while _desired_hosts(wf) != 0:  # idle again: managed scaling removes the host
        assert time.monotonic() < deadline, "the idle training host was never removed"
        time.sleep(0.5)
    assert wf.champion() == champion and wf.service()["taskDefinition"] == before


def test_an_input_naming_a_backend_the_stack_lacks_fails_before_the_lock(workflow: Workflow) -> None:
    wf = workflow
    for backend in ("gpu-farm", "ecs "):
        done = wf.wait(wf.start(f"no-backend-{len(backend)}", **wf.inputs(), training_backend=backend), timeout=60)
        assert done["status"] == "FAILED"
        assert wf.states(done["executionArn"]) == ["Init", "MergeInput", "BackendDeployed?", "BackendNotDeployed"]
        assert done.get("error") == "InvalidInput"
