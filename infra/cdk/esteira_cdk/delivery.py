"""Delivery through AWS CodePipeline (modules/delivery, docs/delivery.md), when delivery = "codepipeline".

Jenkins publishes a release zip to the delivery bucket; its S3 "Object Created" event (EventBridge)
starts the pipeline:
  Source (S3: the release zip) -> [Approve (manual, prod only)] -> Deploy (CodeBuild: make release-deploy;
  then Step Functions: the train-evaluate-deploy state machine with workflow-input.json from the zip).
A FAILED pipeline execution is sent to the stack's SNS topic.

L1 pipeline, project and rules, one per Terraform resource: the L2 Pipeline gives every action a role
of its own and grants through default policies, where Terraform has one pipeline role with a fixed
policy (no iam:PassRole).
"""

from __future__ import annotations

import yaml
from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack, Tags
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .common import inline_policy, log_group

CODEBUILD_IMAGE = "aws/codebuild/amazonlinux-x86_64-standard:5.0"
CODEBUILD_COMPUTE_TYPE = "BUILD_GENERAL1_SMALL"
BUILD_TIMEOUT_MINUTES = 60
# The zip's file the Step Functions action reads as the execution input (written by make publish-release).
WORKFLOW_INPUT_FILE = "workflow-input.json"
BUILDSPEC = {
    "version": "0.2",
    "env": {"shell": "bash"},
    "phases": {
        "install": {"commands": ["make venv tools"]},
        "build": {"commands": ["make release-deploy RELEASE_MANIFEST=release.json"]},
    },
}


class Delivery(Construct):
    """`<name>-delivery` pipeline, `<name>-deploy` build, `<name>-delivery-<account>` bucket, two rules, three roles."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        environment: str,
        release_object_key: str,
        key: kms.IKey,
        sns_topic_arn: str,
        state_machine_arn: str,
        state_machine_name: str,
        deploy_statements: list[iam.PolicyStatement],
        state_bucket: str,
        force_destroy: bool,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        account = stack.account
        pipeline_name = f"{name}-delivery"
        project_name = f"{name}-deploy"
        pipeline_arn = stack.format_arn(service="codepipeline", resource=pipeline_name)
        project_arn = stack.format_arn(service="codebuild", resource="project", resource_name=project_name)
        executions = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{state_machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        approval = environment == "prod"

        # ---- artifact bucket: the release zips Jenkins publishes and the pipeline's artifacts
        self.bucket = s3.Bucket(
            self,
            "Artifacts",
            bucket_name=f"{name}-delivery-{account}",
            versioned=True,  # CodePipeline's S3 source requires it: each execution reads one object version
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-old-versions",
                    noncurrent_version_expiration=Duration.days(90),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=RemovalPolicy.DESTROY if force_destroy else RemovalPolicy.RETAIN,
            auto_delete_objects=force_destroy,
        )
        Tags.of(self.bucket).add("Purpose", "delivery")
        # S3 sends its events to EventBridge (AWS recommends it over polling). Set on the bucket itself:
        # the L2's event_bridge_enabled adds a custom resource and a Lambda to do the same.
        self.bucket.node.default_child.add_property_override(  # type: ignore[union-attr]
            "NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True
        )
        bucket_name = self.bucket.bucket_name
        bucket_arn = self.bucket.bucket_arn

        # ---- CodeBuild: the deploy build
        build_logs = log_group(
            self, "BuildLogs", name=f"/aws/codebuild/{project_name}", key=key, days=log_retention_days
        )
        self.codebuild_role = iam.Role(
            self,
            "CodeBuildRole",
            role_name=f"{name}-codebuild-deploy",
            description=f"CodeBuild deploy build of {pipeline_name}: the CI deploy role's permissions",
            assumed_by=iam.ServicePrincipal(
                "codebuild.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": account}}
            ),
        )
        # What the GitHub deploy role may do (the Ci construct), unchanged: the build runs the same deploy.
        deploy_policy = inline_policy(self, "CodeBuildDeployPolicy", "deploy", self.codebuild_role, deploy_statements)
        build_policy = inline_policy(
            self,
            "CodeBuildPolicy",
            "build",
            self.codebuild_role,
            [
                iam.PolicyStatement(
                    sid="BuildLogs",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[f"{build_logs.log_group_arn}"],
                ),
                iam.PolicyStatement(
                    sid="ReleaseArtifacts",
                    actions=["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
                    resources=[f"{bucket_arn}/*"],
                ),
                iam.PolicyStatement(
                    sid="ArtifactKey", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]
                ),
            ],
        )
        self.project = codebuild.CfnProject(
            self,
            "Project",
            name=project_name,
            description=f"Apply a release of {name}: make release-deploy (tf-plan, tf-apply, smoke-test)",
            service_role=self.codebuild_role.role_arn,
            timeout_in_minutes=BUILD_TIMEOUT_MINUTES,
            encryption_key=key.key_arn,
            artifacts=codebuild.CfnProject.ArtifactsProperty(type="CODEPIPELINE"),
            source=codebuild.CfnProject.SourceProperty(
                type="CODEPIPELINE", build_spec=yaml.safe_dump(BUILDSPEC, sort_keys=False)
            ),
            environment=codebuild.CfnProject.EnvironmentProperty(
                type="LINUX_CONTAINER",
                compute_type=CODEBUILD_COMPUTE_TYPE,
                image=CODEBUILD_IMAGE,
                image_pull_credentials_type="CODEBUILD",
                privileged_mode=False,
                environment_variables=[
                    codebuild.CfnProject.EnvironmentVariableProperty(name=k, value=v, type="PLAINTEXT")
                    for k, v in (("DEPLOY_ENV", environment), ("TF_STATE_BUCKET", state_bucket), ("CI", "true"))
                ],
            ),
            logs_config=codebuild.CfnProject.LogsConfigProperty(
                cloud_watch_logs=codebuild.CfnProject.CloudWatchLogsConfigProperty(
                    status="ENABLED", group_name=build_logs.log_group_name
                )
            ),
        )
        self.project.node.add_dependency(deploy_policy, build_policy)

        # ---- the pipeline
        self.pipeline_role = iam.Role(
            self,
            "PipelineRole",
            role_name=f"{name}-codepipeline",
            description=f"CodePipeline {pipeline_name}: read the release, run the deploy build, start the workflow",
            assumed_by=iam.ServicePrincipal(
                "codepipeline.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": account}}
            ),
        )
        pipeline_statements = [
            iam.PolicyStatement(
                sid="ArtifactBucket",
                actions=["s3:GetBucketVersioning", "s3:GetBucketLocation", "s3:ListBucket"],
                resources=[bucket_arn],
            ),
            iam.PolicyStatement(
                sid="Artifacts",
                actions=["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
                resources=[f"{bucket_arn}/*"],
            ),
            iam.PolicyStatement(
                sid="ArtifactKey", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]
            ),
            iam.PolicyStatement(
                sid="DeployBuild", actions=["codebuild:StartBuild", "codebuild:BatchGetBuilds"], resources=[project_arn]
            ),
            # The Step Functions action reads the machine's type first.
            iam.PolicyStatement(
                sid="StartWorkflow",
                actions=["states:DescribeStateMachine", "states:StartExecution"],
                resources=[state_machine_arn],
            ),
            iam.PolicyStatement(sid="FollowWorkflow", actions=["states:DescribeExecution"], resources=[executions]),
        ]
        if approval:
            pipeline_statements.append(
                iam.PolicyStatement(sid="ApprovalNotice", actions=["sns:Publish"], resources=[sns_topic_arn])
            )
        pipeline_policy = inline_policy(self, "PipelinePolicy", "pipeline", self.pipeline_role, pipeline_statements)

        def action(
            action_name: str, category: str, provider: str, configuration: dict[str, object], **extra: object
        ) -> codepipeline.CfnPipeline.ActionDeclarationProperty:
            return codepipeline.CfnPipeline.ActionDeclarationProperty(
                name=action_name,
                action_type_id=codepipeline.CfnPipeline.ActionTypeIdProperty(
                    category=category, owner="AWS", provider=provider, version="1"
                ),
                configuration=configuration,
                **extra,  # type: ignore[arg-type]
            )

        release = [codepipeline.CfnPipeline.InputArtifactProperty(name="release")]
        stages = [
            codepipeline.CfnPipeline.StageDeclarationProperty(
                name="Source",
                actions=[
                    action(
                        "Release",
                        "Source",
                        "S3",
                        {"S3Bucket": bucket_name, "S3ObjectKey": release_object_key, "PollForSourceChanges": "false"},
                        output_artifacts=[codepipeline.CfnPipeline.OutputArtifactProperty(name="release")],
                    )
                ],
            )
        ]
        if approval:
            stages.append(
                codepipeline.CfnPipeline.StageDeclarationProperty(
                    name="Approve",
                    actions=[
                        action(
                            "Approve",
                            "Approval",
                            "Manual",
                            {
                                "NotificationArn": sns_topic_arn,
                                "CustomData": (
                                    f"Deploy the release in s3://{bucket_name}/{release_object_key} to {name}: "
                                    "release.json names the commit and the image digests."
                                ),
                            },
                        )
                    ],
                )
            )
        stages.append(
            codepipeline.CfnPipeline.StageDeclarationProperty(
                name="Deploy",
                actions=[
                    action(
                        "Apply",
                        "Build",
                        "CodeBuild",
                        {"ProjectName": self.project.ref},
                        run_order=1,
                        input_artifacts=release,
                    ),
                    action(
                        "TrainEvaluateDeploy",
                        "Invoke",
                        "StepFunctions",
                        {
                            "StateMachineArn": state_machine_arn,
                            "ExecutionNamePrefix": "delivery",
                            "InputType": "FilePath",
                            "Input": WORKFLOW_INPUT_FILE,
                        },
                        run_order=2,
                        input_artifacts=release,
                    ),
                ],
            )
        )
        self.pipeline = codepipeline.CfnPipeline(
            self,
            "Pipeline",
            name=pipeline_name,
            pipeline_type="V2",
            execution_mode="QUEUED",  # one release at a time, in order: a deploy is never superseded mid-apply
            role_arn=self.pipeline_role.role_arn,
            artifact_store=codepipeline.CfnPipeline.ArtifactStoreProperty(
                type="S3",
                location=bucket_name,
                encryption_key=codepipeline.CfnPipeline.EncryptionKeyProperty(id=key.key_arn, type="KMS"),
            ),
            stages=stages,
        )
        self.pipeline.node.add_dependency(pipeline_policy)
        self.pipeline_name = self.pipeline.ref

        # ---- start on a new release: S3 Object Created -> EventBridge -> StartPipelineExecution
        self.events_role = iam.Role(
            self,
            "EventsRole",
            role_name=f"{name}-release-events",
            description=f"EventBridge starts {pipeline_name} when a release is published",
            assumed_by=iam.ServicePrincipal(
                "events.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": account}}
            ),
        )
        events_policy = inline_policy(
            self,
            "EventsPolicy",
            "start-pipeline",
            self.events_role,
            [
                iam.PolicyStatement(
                    sid="StartPipeline", actions=["codepipeline:StartPipelineExecution"], resources=[pipeline_arn]
                )
            ],
        )
        release_rule = events.CfnRule(
            self,
            "ReleaseRule",
            name=f"{name}-release-published",
            description=f"A release zip published to {bucket_name}/{release_object_key} starts {pipeline_name}",
            event_pattern={
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {"bucket": {"name": [bucket_name]}, "object": {"key": [release_object_key]}},
            },
            targets=[
                events.CfnRule.TargetProperty(
                    id="pipeline",
                    arn=f"arn:{stack.partition}:codepipeline:{stack.region}:{account}:{self.pipeline.ref}",
                    role_arn=self.events_role.role_arn,
                )
            ],
        )
        release_rule.node.add_dependency(events_policy)

        # ---- a failed execution is an operator's business: the stack's topic (its policy lets EventBridge publish)
        events.CfnRule(
            self,
            "FailedRule",
            name=f"{name}-delivery-failed",
            description=f"A failed {pipeline_name} execution notifies the stack's topic",
            event_pattern={
                "source": ["aws.codepipeline"],
                "detail-type": ["CodePipeline Pipeline Execution State Change"],
                "detail": {"pipeline": [pipeline_name], "state": ["FAILED"]},
            },
            targets=[events.CfnRule.TargetProperty(id="topic", arn=sns_topic_arn)],
        )
        self.release_object = {
            "bucket": bucket_name,
            "key": release_object_key,
            "uri": f"s3://{bucket_name}/{release_object_key}",
        }
