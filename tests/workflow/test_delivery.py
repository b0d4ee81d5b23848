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
import time
import zipfile
from typing import Any

from localaws import LocalAWS

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


def test_failed_workflow_fails_the_action(local_aws: LocalAWS) -> None:
    make_pipeline(local_aws, approval=False)
    publish(local_aws, fail_workflow=True)
    execution_id = local_aws.client("codepipeline").start_pipeline_execution(name="p")["pipelineExecutionId"]
    result = wait_execution(local_aws, execution_id)
    assert result["status"] == "Failed"
    ran = actions(local_aws, execution_id)
    assert ran["Apply"]["status"] == "Succeeded" and ran["Train"]["status"] == "Failed"


def test_published_release_starts_the_pipeline_through_eventbridge(local_aws: LocalAWS) -> None:
    make_pipeline(local_aws, approval=False)
    s3, events = local_aws.client("s3"), local_aws.client("events")
    s3.put_bucket_notification_configuration(
        Bucket="releases", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
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
