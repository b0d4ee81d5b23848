"""delivery = "codepipeline" at plan time: the pipeline, its trigger and its roles exist only when chosen,
the approval stage only in prod, and the roles are scoped to the bucket, the project and the state machine.

The default (delivery = github) plans none of it. docs/delivery.md describes the option.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .planned import dev_plan, read_documents, resources

# Plans of the whole root module (about 15 s each): the slow suite, as the other plan readers.
pytestmark = [pytest.mark.infra, pytest.mark.slow]

CODEPIPELINE = "-var=delivery=codepipeline"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return dev_plan(tmp_path_factory, CODEPIPELINE)


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return dev_plan(tmp_path_factory, CODEPIPELINE, "-var=environment=prod")


def _pipeline(plan: dict[str, Any]) -> dict[str, Any]:
    (pipeline,) = resources(plan, "aws_codepipeline").values()
    return pipeline


def _statements(plan: dict[str, Any], address_part: str) -> dict[str, dict[str, Any]]:
    docs = [v for a, v in read_documents(plan).items() if address_part in a]
    assert len(docs) == 1, f"{address_part}: {sorted(read_documents(plan))}"
    return {s["Sid"]: s for s in json.loads(docs[0]["json"])["Statement"]}


def test_github_delivery_plans_no_pipeline(tmp_path_factory: pytest.TempPathFactory) -> None:
    plan = dev_plan(tmp_path_factory)
    assert not resources(plan, "aws_codepipeline")
    assert not resources(plan, "aws_codebuild_project")
    assert plan["planned_values"]["outputs"]["delivery_pipeline_name"].get("value") is None


def test_dev_pipeline_has_no_approval(dev: dict[str, Any]) -> None:
    pipeline = _pipeline(dev)
    assert pipeline["pipeline_type"] == "V2"
    stages = [s["name"] for s in pipeline["stage"]]
    assert stages == ["Source", "Deploy"]
    source = pipeline["stage"][0]["action"][0]
    assert (source["provider"], source["configuration"]["PollForSourceChanges"]) == ("S3", "false")
    assert source["configuration"]["S3ObjectKey"] == "releases/release.zip"
    deploy = {a["name"]: a for a in pipeline["stage"][1]["action"]}
    assert deploy["Apply"]["provider"] == "CodeBuild" and deploy["Apply"]["run_order"] == 1
    sfn = deploy["TrainEvaluateDeploy"]
    assert sfn["provider"] == "StepFunctions" and sfn["run_order"] == 2
    assert sfn["configuration"]["StateMachineArn"].endswith(":stateMachine:esteira-dev-train-evaluate-deploy")
    assert sfn["configuration"]["InputType"] == "FilePath"


def test_prod_pipeline_waits_for_approval(prod: dict[str, Any]) -> None:
    pipeline = _pipeline(prod)
    assert [s["name"] for s in pipeline["stage"]] == ["Source", "Approve", "Deploy"]
    approve = pipeline["stage"][1]["action"][0]
    assert (approve["category"], approve["provider"]) == ("Approval", "Manual")
    # Its NotificationArn (the stack's topic) is known after apply only.


def test_release_event_and_failure_rule(dev: dict[str, Any]) -> None:
    rules = {
        a.rsplit(".", 1)[-1]: json.loads(v["event_pattern"])
        for a, v in resources(dev, "aws_cloudwatch_event_rule").items()
        if "delivery" in a
    }
    assert rules["release"]["detail"]["object"]["key"] == ["releases/release.zip"]
    assert rules["failed"]["detail"] == {"pipeline": ["esteira-dev-delivery"], "state": ["FAILED"]}
    (notification,) = resources(dev, "aws_s3_bucket_notification").values()
    assert notification["eventbridge"] is True
    targets = {
        a.rsplit(".", 1)[-1]: v for a, v in resources(dev, "aws_cloudwatch_event_target").items() if "delivery" in a
    }
    assert set(targets) == {"release", "failed"}  # failed -> the stack's topic (an ARN known after apply)


def test_roles_carry_the_boundary_and_the_build_can_apply_the_pipeline(dev: dict[str, Any]) -> None:
    # The pipeline's and the build's own policies hold ARNs known only after apply (the key, the bucket):
    # tests/workflow/test_delivery.py runs them under IAM enforcement instead.
    roles = resources(dev, "aws_iam_role")
    for name in ("pipeline", "codebuild", "events"):
        role = roles[f"module.delivery[0].aws_iam_role.{name}"]
        assert role["permissions_boundary"], f"{name} role without the stack's boundary"
    deploy = _statements(dev, "module.ci[0].data.aws_iam_policy_document.deploy")
    assert {"codebuild:*", "codepipeline:*"} <= set(deploy["StackServices"]["Action"])
    boundary = _statements(dev, "data.aws_iam_policy_document.boundary")
    assert {"codebuild:*", "codepipeline:*"} <= set(boundary["StackServices"]["Action"])
