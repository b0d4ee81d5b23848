"""CodePipeline delivery (delivery = "codepipeline", docs/delivery.md) run by the embedded AWS.

The fast tests build a pipeline of the module's shape by hand on a bare LocalAWS (Source S3 -> manual
approval -> CodeBuild + Step Functions), because dev's applied stack has no approval stage (prod only):
the approval is answered with the token GetPipelineState shows, a rejection fails the execution, a
failing build fails it before the state machine starts, and the Step Functions action fails with the
execution. The CodeBuild stand-in runs the project's buildspec in the unzipped release (localaws.codepipeline).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from demo.canary import stage_data
from localaws import LocalAWS
from tests.conftest import deployed, explain
from tests.workflow.conftest import SLICE_GATE

TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": service}}
        for service in ("codepipeline.amazonaws.com", "codebuild.amazonaws.com")
    ],
}
# A state machine whose outcome is its input's: {"fail": true} fails it.
MACHINE = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.fail", "BooleanEquals": True, "Next": "Fail"}],
            "Default": "Done",
        },
        "Fail": {"Type": "Fail", "Error": "AsAsked", "Cause": "the input said fail"},
        "Done": {"Type": "Succeed"},
    },
}


def release_zip(build_exit: int = 0, fail_workflow: bool = False) -> bytes:
    """A release as make publish-release writes it: release.json, workflow-input.json and the tree (here a
    Makefile whose release-deploy checks the manifest and exits as asked)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("release.json", json.dumps({"git_sha": "a" * 40, "images": {"serving": "s@sha256:" + "0" * 64}}))
        zf.writestr("workflow-input.json", json.dumps({"trigger": {"kind": "ci"}, "fail": fail_workflow}))
        zf.writestr(
            "Makefile",
            "venv tools:\n\t@echo $@\n"
            "release-deploy:\n\ttest -f $(RELEASE_MANIFEST)\n\techo $$DEPLOY_ENV > deployed.txt\n"
            f"\texit {build_exit}\n",
        )
    return buf.getvalue()


BUILDSPEC = (
    "version: 0.2\nphases:\n  install:\n    commands: [make venv tools]\n  build:\n    commands:\n"
    "      - make release-deploy RELEASE_MANIFEST=release.json\n"
)


def make_pipeline(aws: LocalAWS, approval: bool = True) -> dict[str, str]:
    iam, s3, sfn = aws.client("iam"), aws.client("s3"), aws.client("stepfunctions")
    role = iam.create_role(RoleName="p-role", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    s3.create_bucket(Bucket="releases")
    s3.put_bucket_versioning(Bucket="releases", VersioningConfiguration={"Status": "Enabled"})
    machine = sfn.create_state_machine(name="m", definition=json.dumps(MACHINE), roleArn=role)["stateMachineArn"]
    aws.client("codebuild").create_project(
        name="deploy",
        source={"type": "CODEPIPELINE", "buildspec": BUILDSPEC},
        artifacts={"type": "CODEPIPELINE"},
        environment={
            "type": "LINUX_CONTAINER",
            "image": "aws/codebuild/standard:7.0",
            "computeType": "BUILD_GENERAL1_SMALL",
            "environmentVariables": [{"name": "DEPLOY_ENV", "value": "prod", "type": "PLAINTEXT"}],
        },
        serviceRole=role,
    )
    topic = aws.client("sns").create_topic(Name="notices")["TopicArn"]
    action = {"owner": "AWS", "version": "1"}
    stages: list[dict[str, Any]] = [
        {
            "name": "Source",
            "actions": [
                {
                    "name": "Release",
                    "actionTypeId": {**action, "category": "Source", "provider": "S3"},
                    "configuration": {
                        "S3Bucket": "releases",
                        "S3ObjectKey": "releases/release.zip",
                        "PollForSourceChanges": "false",
                    },
                    "outputArtifacts": [{"name": "release"}],
                }
            ],
        },
        {
            "name": "Deploy",
            "actions": [
                {
                    "name": "Apply",
                    "runOrder": 1,
                    "actionTypeId": {**action, "category": "Build", "provider": "CodeBuild"},
                    "configuration": {"ProjectName": "deploy"},
                    "inputArtifacts": [{"name": "release"}],
                },
                {
                    "name": "Train",
                    "runOrder": 2,
                    "actionTypeId": {**action, "category": "Invoke", "provider": "StepFunctions"},
                    "configuration": {
                        "StateMachineArn": machine,
                        "InputType": "FilePath",
                        "Input": "workflow-input.json",
                        "ExecutionNamePrefix": "delivery",
                    },
                    "inputArtifacts": [{"name": "release"}],
                },
            ],
        },
    ]
    if approval:
        stages.insert(
            1,
            {
                "name": "Approve",
                "actions": [
                    {
                        "name": "Approve",
                        "actionTypeId": {**action, "category": "Approval", "provider": "Manual"},
                        "configuration": {"NotificationArn": topic},
                    }
                ],
            },
        )
    aws.client("codepipeline").create_pipeline(
        pipeline={
            "name": "p",
            "roleArn": role,
            "pipelineType": "V2",
            "stages": stages,
            "artifactStore": {"type": "S3", "location": "releases"},
        }
    )
    return {"machine": machine, "topic": topic}


def publish(aws: LocalAWS, **kw: Any) -> None:
    aws.client("s3").put_object(Bucket="releases", Key="releases/release.zip", Body=release_zip(**kw))


def wait_execution(aws: LocalAWS, execution_id: str, timeout: float = 60) -> dict[str, Any]:
    cp = aws.client("codepipeline")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cp.get_pipeline_execution(pipelineName="p", pipelineExecutionId=execution_id)["pipelineExecution"]
        if got["status"] != "InProgress":
            return dict(got)
        time.sleep(0.2)
    raise TimeoutError(execution_id)


def approval_token(aws: LocalAWS, timeout: float = 30) -> str:
    cp = aws.client("codepipeline")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for stage in cp.get_pipeline_state(name="p")["stageStates"]:
            for action in stage["actionStates"]:
                token = action.get("latestExecution", {}).get("token")
                if stage["stageName"] == "Approve" and token:
                    return str(token)
        time.sleep(0.2)
    raise TimeoutError("no approval waiting")


def actions(aws: LocalAWS, execution_id: str) -> dict[str, dict[str, Any]]:
    details = aws.client("codepipeline").list_action_executions(
        pipelineName="p", filter={"pipelineExecutionId": execution_id}
    )["actionExecutionDetails"]
    return {d["actionName"]: d for d in details}


def test_approved_release_builds_and_starts_the_state_machine(local_aws: LocalAWS) -> None:
    made = make_pipeline(local_aws)
    publish(local_aws)
    cp = local_aws.client("codepipeline")
    execution_id = cp.start_pipeline_execution(name="p")["pipelineExecutionId"]
    token = approval_token(local_aws)
    assert (
        cp.get_pipeline_execution(pipelineName="p", pipelineExecutionId=execution_id)["pipelineExecution"]["status"]
        == "InProgress"
    )
    cp.put_approval_result(
        pipelineName="p",
        stageName="Approve",
        actionName="Approve",
        token=token,
        result={"summary": "ok", "status": "Approved"},
    )
    result = wait_execution(local_aws, execution_id)
    assert result["status"] == "Succeeded", actions(local_aws, execution_id)
    assert result["artifactRevisions"][0]["revisionId"]  # the object version the source read
    ran = actions(local_aws, execution_id)
    assert {n: a["status"] for n, a in ran.items()} == {
        n: "Succeeded" for n in ("Release", "Approve", "Apply", "Train")
    }
    execution_arn = ran["Train"]["output"]["executionResult"]["externalExecutionId"]
    desc = local_aws.client("stepfunctions").describe_execution(executionArn=execution_arn)
    assert desc["stateMachineArn"] == made["machine"] and desc["status"] == "SUCCEEDED"
    assert json.loads(desc["input"])["trigger"] == {"kind": "ci"}
    (log,) = (local_aws.workdir / "codebuild").glob("deploy-*.log")
    assert "Entering phase BUILD" in log.read_text()
    # The build's log is also in its CloudWatch Logs group, stream = the build's id after the project name.
    build_id = ran["Apply"]["output"]["executionResult"]["externalExecutionId"]
    events = local_aws.client("logs").get_log_events(
        logGroupName="/aws/codebuild/deploy", logStreamName=build_id.split(":", 1)[1]
    )["events"]
    assert [e["message"] for e in events][:2] == ["[Container] Entering phase INSTALL", "venv"]
    assert "test -f release.json" in [e["message"] for e in events]


@pytest.mark.slow  # make test stays under 10 minutes; CI runs it in test-slow
def test_rejection_fails_the_execution(local_aws: LocalAWS) -> None:
    make_pipeline(local_aws)
    publish(local_aws)
    cp = local_aws.client("codepipeline")
    execution_id = cp.start_pipeline_execution(name="p")["pipelineExecutionId"]
    cp.put_approval_result(
        pipelineName="p",
        stageName="Approve",
        actionName="Approve",
        token=approval_token(local_aws),
        result={"summary": "no", "status": "Rejected"},
    )
    assert wait_execution(local_aws, execution_id)["status"] == "Failed"
    assert "Apply" not in actions(local_aws, execution_id)


def test_failing_build_stops_before_the_workflow_and_emits_the_failed_event(local_aws: LocalAWS) -> None:
    made = make_pipeline(local_aws, approval=False)
    sqs = local_aws.client("sqs")
    queue = sqs.create_queue(QueueName="failed")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = local_aws.client("events")
    pattern = {
        "source": ["aws.codepipeline"],
        "detail-type": ["CodePipeline Pipeline Execution State Change"],
        "detail": {"pipeline": ["p"], "state": ["FAILED"]},
    }
    events.put_rule(Name="failed", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="failed", Targets=[{"Id": "q", "Arn": queue_arn}])
    publish(local_aws, build_exit=3)
    execution_id = local_aws.client("codepipeline").start_pipeline_execution(name="p")["pipelineExecutionId"]
    assert wait_execution(local_aws, execution_id)["status"] == "Failed"
    ran = actions(local_aws, execution_id)
    assert ran["Apply"]["status"] == "Failed" and "Train" not in ran
    assert not local_aws.client("stepfunctions").list_executions(stateMachineArn=made["machine"])["executions"]
    deadline, bodies = time.monotonic() + 10, []
    while time.monotonic() < deadline and not bodies:
        bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=queue).get("Messages", [])]
    assert bodies and bodies[0]["detail"]["state"] == "FAILED" and bodies[0]["detail"]["execution-id"] == execution_id


@pytest.mark.slow  # make test stays under 10 minutes; CI runs it in test-slow
def test_failed_workflow_fails_the_action(local_aws: LocalAWS) -> None:
    make_pipeline(local_aws, approval=False)
    publish(local_aws, fail_workflow=True)
    execution_id = local_aws.client("codepipeline").start_pipeline_execution(name="p")["pipelineExecutionId"]
    result = wait_execution(local_aws, execution_id)
    assert result["status"] == "Failed"
    ran = actions(local_aws, execution_id)
    assert ran["Apply"]["status"] == "Succeeded" and ran["Train"]["status"] == "Failed"


@pytest.mark.slow  # make test stays under 10 minutes; CI runs it in test-slow
def test_published_release_starts_the_pipeline_through_eventbridge(local_aws: LocalAWS) -> None:
    make_pipeline(local_aws, approval=False)
    s3, events = local_aws.client("s3"), local_aws.client("events")
    s3.put_bucket_notification_configuration(
        Bucket="releases", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    # Read back as AWS answers it (the provider's next plan compares it with eventbridge = true).
    assert s3.get_bucket_notification_configuration(Bucket="releases")["EventBridgeConfiguration"] == {}
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": ["releases"]}, "object": {"key": ["releases/release.zip"]}},
    }
    events.put_rule(Name="release", EventPattern=json.dumps(pattern))
    pipeline_arn = "arn:aws:codepipeline:us-east-1:123456789012:p"
    events.put_targets(
        Rule="release", Targets=[{"Id": "p", "Arn": pipeline_arn, "RoleArn": "arn:aws:iam::123456789012:role/p-role"}]
    )
    publish(local_aws)
    cp = local_aws.client("codepipeline")
    deadline, summaries = time.monotonic() + 20, []
    while time.monotonic() < deadline and not summaries:
        summaries = cp.list_pipeline_executions(pipelineName="p")["pipelineExecutionSummaries"]
        time.sleep(0.2)
    assert summaries and summaries[0]["trigger"]["triggerType"] == "CloudWatchEvent"
    assert wait_execution(local_aws, summaries[0]["pipelineExecutionId"])["status"] == "Succeeded"


def test_timestamps_are_json_numbers(local_aws: LocalAWS) -> None:
    """awsJson1_1 answers carry epoch seconds: the provider's Go SDK refuses moto's ISO strings on GetPipeline."""
    make_pipeline(local_aws, approval=False)
    publish(local_aws)
    cp = local_aws.client("codepipeline")
    execution_id = cp.start_pipeline_execution(name="p")["pipelineExecutionId"]
    wait_execution(local_aws, execution_id)
    raw: dict[str, Any] = {}
    cp.meta.events.register("after-call.codepipeline.*", lambda http_response, model, **_: raw.update(
        {model.name: json.loads(http_response.content)}))  # fmt: skip
    cp.get_pipeline(name="p")
    cp.list_pipelines()
    cp.list_pipeline_executions(pipelineName="p")
    cp.get_pipeline_state(name="p")
    cp.list_action_executions(pipelineName="p")
    assert isinstance(raw["GetPipeline"]["metadata"]["created"], float)
    assert isinstance(raw["ListPipelines"]["pipelines"][0]["updated"], float)
    assert isinstance(raw["ListPipelineExecutions"]["pipelineExecutionSummaries"][0]["startTime"], float)
    assert isinstance(
        raw["GetPipelineState"]["stageStates"][0]["actionStates"][0]["latestExecution"]["lastStatusChange"], float
    )
    assert isinstance(raw["ListActionExecutions"]["actionExecutionDetails"][0]["lastUpdateTime"], float)


@pytest.mark.slow  # make test stays under 10 minutes; CI runs it in test-slow
def test_codebuild_project_keeps_its_key_and_updates_in_place(local_aws: LocalAWS) -> None:
    """What the provider calls after the first apply: BatchGetProjects must give back the key it was created
    with (or every plan shows a change), and a change (here a variable, the timeout and a tag) is an UpdateProject."""
    make_pipeline(local_aws, approval=False)
    cb = local_aws.client("codebuild")
    key = "arn:aws:kms:us-east-1:123456789012:key/0f0f0f0f-0000-4000-8000-000000000000"
    role = cb.batch_get_projects(names=["deploy"])["projects"][0]["serviceRole"]
    cb.create_project(
        name="keyed", source={"type": "NO_SOURCE", "buildspec": BUILDSPEC}, artifacts={"type": "NO_ARTIFACTS"},
        environment={"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0",
                     "computeType": "BUILD_GENERAL1_SMALL"},
        serviceRole=role, encryptionKey=key,
    )  # fmt: skip
    assert cb.batch_get_projects(names=["keyed"])["projects"][0]["encryptionKey"] == key
    env = cb.batch_get_projects(names=["deploy"])["projects"][0]["environment"]
    env["environmentVariables"] = [{"name": "DEPLOY_ENV", "value": "staging", "type": "PLAINTEXT"}]
    got = cb.update_project(
        name="deploy", environment=env, timeoutInMinutes=30, tags=[{"key": "Purpose", "value": "delivery"}]
    )["project"]
    assert got["timeoutInMinutes"] == 30 and got["tags"] == [{"key": "Purpose", "value": "delivery"}]
    (stored,) = cb.batch_get_projects(names=["deploy"])["projects"]
    assert stored["environment"]["environmentVariables"][0]["value"] == "staging"
    assert stored["source"]["type"] == "CODEPIPELINE" and stored["timeoutInMinutes"] == 30
    try:
        cb.update_project(name="missing", description="x")
        raise AssertionError("UpdateProject of a missing project must fail")
    except cb.exceptions.ResourceNotFoundException:
        pass
    # The pipeline's build runs with the updated project: DEPLOY_ENV reaches the release's make target.
    publish(local_aws)
    execution_id = local_aws.client("codepipeline").start_pipeline_execution(name="p")["pipelineExecutionId"]
    assert wait_execution(local_aws, execution_id)["status"] == "Succeeded"
    (deployed_txt,) = (local_aws.workdir / "codepipeline").glob("*/builds/*/deployed.txt")
    assert deployed_txt.read_text().strip() == "staging"


@pytest.mark.slow  # make test stays under 10 minutes; CI runs it in test-slow
def test_make_publish_release_puts_the_built_release_and_its_deploy_plans_the_digests(
    local_aws: LocalAWS, tmp_path: Path
) -> None:
    """make publish-release for real (scripts/release.py build + publish) to a versioned bucket, then the
    release's own `make release-deploy` (what the buildspec runs) as a dry run: tf-plan with the manifest's
    digests and the build's DEPLOY_ENV, tf-apply of that saved plan, smoke-test."""
    s3 = local_aws.client("s3")
    s3.create_bucket(Bucket="releases")
    s3.put_bucket_versioning(Bucket="releases", VersioningConfiguration={"Status": "Enabled"})
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True)
    images = tmp_path / "images.json"
    images.write_text(json.dumps({"git_sha": sha.stdout.strip(), "images": DIGESTS}))
    env = {**os.environ, **local_aws.env(), "TRAIN_INPUT": json.dumps({"training_backend": "ecs"})}
    make = ["make", "--no-print-directory", "-o", ".venv/.installed"]  # the venv as it is
    done = subprocess.run(
        [*make, "publish-release", "ESTEIRA_DELIVERY=codepipeline", "RELEASE_BUCKET=releases",
         f"IMAGES_FILE={images}", f"RELEASE_ZIP={tmp_path / 'release.zip'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    got = s3.get_object(Bucket="releases", Key="releases/release.zip")
    assert got["VersionId"] in done.stdout
    tree = tmp_path / "tree"
    with zipfile.ZipFile(io.BytesIO(got["Body"].read())) as zf:
        names = set(zf.namelist())
        assert {"Makefile", "mk/ci.mk", "scripts/release.py", "infra/terraform/main.tf"} <= names
        assert json.loads(zf.read("release.json")) == json.loads(images.read_text())
        workflow_input = json.loads(zf.read("workflow-input.json"))
        assert workflow_input["training_backend"] == "ecs" and workflow_input["trigger"]["kind"] == "ci"
        assert workflow_input["trigger"]["principal"].startswith("arn:aws:")  # the publisher, from STS
        zf.extractall(tree)
    # The buildspec's build command, dry run (make -n still runs the recursive $(MAKE) with -n).
    dry = subprocess.run(
        ["make", "-n", "release-deploy", "RELEASE_MANIFEST=release.json"],
        cwd=tree, env={**env, "DEPLOY_ENV": "dev", "TF_STATE_BUCKET": "esteira-tfstate-123456789012"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stdout + dry.stderr
    commands = dry.stdout.replace("\\\n", "")  # recipe lines joined
    plan = next(line for line in commands.splitlines() if " plan -no-color" in line)
    assert "-var-file=envs/dev.tfvars" in plan
    for name, var in (("serving", "serving_image_uri"), ("training", "training_image_uri"),
                      ("lambda", "lambda_image_uri"), ("mlflow", "mlflow_image_uri")):  # fmt: skip
        assert f"-var={var}={DIGESTS[name]}" in plan
    assert "-backend-config=bucket=esteira-tfstate-123456789012" in commands
    assert " apply -no-color -input=false -lock-timeout=10m " in commands and "scripts/ci.py smoke" in commands
    refused = subprocess.run(
        [*make, "publish-release", "RELEASE_BUCKET=releases"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "trigger-deploy" in refused.stderr  # ESTEIRA_DELIVERY=github


# ---- the applied stack (delivery = "codepipeline"): the pipeline, bucket, rules, roles and CodeBuild project
# are the ones `tofu apply` created, under IAM enforcement (localaws.applied fails the run on any AccessDenied).
ROOT = Path(__file__).resolve().parents[2]
DIGESTS = {name: f"123456789012.dkr.ecr.us-east-1.amazonaws.com/esteira-dev/{name}@sha256:{n}" + "0" * 63
           for n, name in zip("1234", ("serving", "training", "lambda", "mlflow"), strict=True)}  # fmt: skip


def stub_makefile(build_exit: int) -> str:
    """The deploy build's make targets, made cheap: no toolchain set-up and no nested apply (the stack under
    test IS the apply); release-deploy reads the manifest as the real one does and calls AWS with the
    build's credentials (the project's role), then exits as asked."""
    return (
        "venv tools:\n\t@echo stub $@\n"
        "release-deploy:\n"
        "\ttest -f $(RELEASE_MANIFEST)\n"
        "\tpython scripts/release.py make-vars $(RELEASE_MANIFEST)\n"
        '\tpython -c \'import boto3; print("caller", boto3.client("sts").get_caller_identity()["Arn"])\'\n'
        f"\texit {build_exit}\n"
    )


def build_release(workdir: Path, env: dict[str, str], inputs: dict[str, Any], build_exit: int) -> Path:
    """scripts/release.py build for real (manifest + workflow input from TRAIN_INPUT + git archive of HEAD),
    then the Makefile in the zip swapped for stub_makefile."""
    workdir.mkdir(parents=True, exist_ok=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True)
    images = workdir / "images.json"
    images.write_text(json.dumps({"git_sha": sha.stdout.strip(), "images": DIGESTS}))
    built = workdir / "built.zip"
    subprocess.run(
        [sys.executable, "scripts/release.py", "build", "--images", str(images), "--out", str(built)],
        cwd=ROOT, env={**env, "TRAIN_INPUT": json.dumps(inputs), "BUILD_URL": "https://jenkins.example/job/1/"},
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    out = workdir / "release.zip"
    with zipfile.ZipFile(built) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = stub_makefile(build_exit).encode() if info.filename == "Makefile" else src.read(info)
            dst.writestr(info, body)
    return out


def publish_release(zip_path: Path, env: dict[str, str], release: dict[str, str]) -> str:
    """scripts/release.py publish (what make publish-release runs); the object's version id."""
    done = subprocess.run(
        [sys.executable, "scripts/release.py", "publish", "--zip", str(zip_path), "--bucket", release["bucket"],
         "--key", release["key"]],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip().split(" version ", 1)[1].split(":", 1)[0]


def wait_new_execution(cp: Any, pipeline: str, known: set[str], timeout: float) -> dict[str, Any]:
    """The execution the release's S3 event started (not one of `known`), once it has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for summary in cp.list_pipeline_executions(pipelineName=pipeline)["pipelineExecutionSummaries"]:
            if summary["pipelineExecutionId"] not in known and summary["status"] != "InProgress":
                got = cp.get_pipeline_execution(
                    pipelineName=pipeline, pipelineExecutionId=summary["pipelineExecutionId"]
                )
                return dict(got["pipelineExecution"])
        time.sleep(1.0)
    raise TimeoutError(f"no new execution of {pipeline} ended in {timeout} s")


def actions_of(cp: Any, pipeline: str, execution_id: str) -> dict[str, dict[str, Any]]:
    details = cp.list_action_executions(pipelineName=pipeline, filter={"pipelineExecutionId": execution_id})
    return {d["actionName"]: d for d in details["actionExecutionDetails"]}


@pytest.mark.slow
def test_applied_pipeline_delivers_a_release_and_reports_a_failed_one(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, slice_files: dict[str, Path]
) -> None:
    with deployed(tmp_path_factory, "delivery", delivery="codepipeline") as (stack, _settings):
        aws, out = stack.local, stack.apply.outputs
        pipeline, release = out["delivery_pipeline_name"], out["release_object"]
        cp = aws.client("codepipeline")
        env = {**os.environ, **aws.env()}  # the publisher: Jenkins' credentials (administrator keys here)
        stack.update_function_env("evaluate", **SLICE_GATE)  # the 12-intent slice's bars (tests/workflow)
        inputs = stage_data(stack, "delivery", {"train_data": str(slice_files["train"]),
                            "eval_data": str(slice_files["test"]), "smoke_data": str(slice_files["test"])})  # fmt: skip
        stack.notifications()
        timings = {"apply": round(stack.apply.seconds)}

        # 1. A release: the S3 event starts the pipeline; the build and the ordinary execution succeed.
        good = build_release(tmp_path / "good", env, inputs, build_exit=0)
        started = time.monotonic()
        version = publish_release(good, env, release)
        done = wait_new_execution(cp, pipeline, set(), timeout=900)
        timings["release (publish -> pipeline Succeeded)"] = round(time.monotonic() - started)
        ran = actions_of(cp, pipeline, done["pipelineExecutionId"])
        assert done["status"] == "Succeeded", json.dumps(ran, default=str)[:4000]
        assert done["trigger"]["triggerType"] == "CloudWatchEvent"
        assert done["trigger"]["triggerDetail"].endswith(":rule/esteira-dev-release-published")
        assert done["artifactRevisions"][0]["revisionId"] == version
        assert {n: a["status"] for n, a in ran.items()} == {
            n: "Succeeded" for n in ("Release", "Apply", "TrainEvaluateDeploy")
        }
        # The build ran the release's make target with the project's role and read the manifest's digests.
        build_id = ran["Apply"]["output"]["executionResult"]["externalExecutionId"]
        log = (aws.workdir / "codebuild" / f"{build_id.replace(':', '-')}.log").read_text()
        assert f"SERVING_IMAGE={DIGESTS['serving']}" in log, log
        assert f"caller arn:aws:sts::123456789012:assumed-role/{stack.cluster}-codebuild-deploy/" in log, log
        streamed = aws.client("logs").get_log_events(
            logGroupName=f"/aws/codebuild/{stack.cluster}-deploy", logStreamName=build_id.split(":", 1)[1]
        )["events"]
        assert f"SERVING_IMAGE={DIGESTS['serving']}" in "\n".join(e["message"] for e in streamed)
        # The execution it started is the ordinary one: the stack's state machine, the zip's input, finished.
        with zipfile.ZipFile(good) as zf:
            manifest_input = json.loads(zf.read("workflow-input.json"))
        assert manifest_input["trigger"]["run"] == "https://jenkins.example/job/1/"
        arn = ran["TrainEvaluateDeploy"]["output"]["executionResult"]["externalExecutionId"]
        desc = aws.client("stepfunctions").describe_execution(executionArn=arn)
        assert desc["stateMachineArn"] == stack.outputs["state_machine_arn"]
        assert json.loads(desc["input"]) == manifest_input
        assert desc["status"] == "SUCCEEDED", explain(aws, arn)
        assert json.loads(desc["output"])["release"]["output"]["outcome"] == "serving"
        stack.notifications()  # the workflow's own "new model deployed"

        # 2. A release whose deploy build fails: no execution, and the FAILED event reaches the stack's topic.
        bad = build_release(tmp_path / "bad", env, inputs, build_exit=3)
        started = time.monotonic()
        publish_release(bad, env, release)
        failed = wait_new_execution(cp, pipeline, {done["pipelineExecutionId"]}, timeout=120)
        timings["failed release (publish -> pipeline Failed)"] = round(time.monotonic() - started)
        assert failed["status"] == "Failed"
        sfn_runs = aws.client("stepfunctions").list_executions(stateMachineArn=stack.outputs["state_machine_arn"])
        assert [e["executionArn"] for e in sfn_runs["executions"]] == [arn]
        deadline, events = time.monotonic() + 30, []
        while time.monotonic() < deadline and not events:
            events = [json.loads(n["Message"]) for n in stack.notifications() if n.get("Message", "").startswith("{")]
            events = [e for e in events if e.get("source") == "aws.codepipeline"]
            time.sleep(0.5)
        assert events, "no failure notification on the stack's topic"
        assert events[0]["detail"] | {"pipeline": pipeline, "state": "FAILED"} == events[0]["detail"]
        assert events[0]["detail"]["execution-id"] == failed["pipelineExecutionId"]

        # 3. What a second apply would find: the provider reads the pipeline, the project, the rules, the
        # roles and the bucket's notification back as it wrote them (the CodeBuild key, CodePipeline's
        # timestamps and S3's EventBridge flag are fixed in localaws.codepipeline).
        started = time.monotonic()
        apply = stack.apply
        plan = subprocess.run(
            [str(apply.tofu), "plan", "-no-color", "-input=false", "-lock=false", "-target=module.delivery[0]",
             f"-out={tmp_path / 'again.tfplan'}", *apply.args()],
            cwd=apply.root, env=apply.env(), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
        shown = json.loads(apply.run("show", "-json", str(tmp_path / "again.tfplan")).stdout)
        timings["plan of module.delivery after the runs"] = round(time.monotonic() - started)
        print(f"delivery timings (s): {json.dumps(timings)}")
        changed = {
            c["address"]: c["change"]["actions"]
            for c in shown.get("resource_changes", [])
            if c["address"].startswith("module.delivery[0].") and c["change"]["actions"] != ["no-op"]
            and not c["address"].startswith("module.delivery[0].data.")
        }  # fmt: skip
        print(f"module.delivery changes on a second plan: {json.dumps(changed)}")
        stable = ("aws_codebuild_project.", "aws_codepipeline.", "aws_s3_bucket_notification.",
                  "aws_cloudwatch_event_rule.", "aws_cloudwatch_event_target.", "aws_iam_role.",
                  "aws_cloudwatch_log_group.")  # fmt: skip
        assert not {a: c for a, c in changed.items() if a.split(".", 2)[2].startswith(stable)}, changed
