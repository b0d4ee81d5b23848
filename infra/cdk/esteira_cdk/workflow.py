"""Workflow (modules/workflow): the Lambdas, the training task, the lock table and the state machines.

The workflow is the same stepfunctions/train_evaluate_deploy.asl.json Terraform fills with
templatefile(), and it starts the release, stepfunctions/release.asl.json, as a child execution
(states:startExecution.sync:2); the Lambdas are the same container image with command
lambdas.<name>.handler.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from aws_cdk import ArnFormat, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from .asl import RELEASE_ASL_PATH, render_definition
from .common import ecs_tasks_role, inline_policy, log_group
from .config import REPO_ROOT
from .contract import contract, require_same

LAMBDA_DOCKERFILE = "docker/lambda.Dockerfile"


@dataclass(frozen=True)
class FunctionSpec:
    description: str
    timeout: int = 60
    memory_size: int = 1024
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Ec2TrainingTask:
    """The EC2 training backend as modules/workflow's ec2_training takes it: the capacity provider the
    task is placed with (the Ec2Capacity construct) and the task's size (CPU units, MiB, GPUs)."""

    capacity_provider: str
    cpu: int
    memory: int
    gpus: int = 0

    def __post_init__(self) -> None:
        if self.cpu < 256 or self.memory < 512 or self.gpus < 0:
            raise ValueError("ec2_training needs cpu >= 256 units, memory >= 512 MiB and gpus >= 0.")


# Functions that run outside the VPC (Terraform: functions_outside_vpc): they only call the public service URL.
OUTSIDE_VPC = frozenset({"smoke_test"})

# Sizes and timeouts, as var.functions in modules/workflow/variables.tf; which Lambdas exist is
# contract.yaml's lambda_functions (FUNCTIONS below, in the contract's order).
FUNCTION_SETTINGS: dict[str, FunctionSpec] = {
    "validate_data": FunctionSpec("Validate the dataset and record its content hash", timeout=300, memory_size=2048),
    "evaluate": FunctionSpec(
        "Evaluate the candidate model against the test split and the champion", timeout=600, memory_size=3008
    ),
    "promote": FunctionSpec("Register the candidate and move the champion alias"),
    "deploy": FunctionSpec("Register a task-definition revision for the model version and update the service"),
    "service_stable": FunctionSpec("Report whether the ECS deployment has reached steady state", timeout=30),
    "smoke_test": FunctionSpec("Send known requests to the new deployment and check the answers", timeout=120),
    "rollback": FunctionSpec("Restore the previous task-definition revision and champion alias", timeout=120),
    "drift_check": FunctionSpec(
        "Compare captured inference traffic with the reference profile", timeout=600, memory_size=3008
    ),
    "retrain_trigger": FunctionSpec(
        "Start the training workflow when a model-health alarm fires, honouring a cooldown", timeout=30, memory_size=512
    ),
    "lock": FunctionSpec("Acquire or release the single-workflow lock", timeout=30, memory_size=512),
    "canary_check": FunctionSpec(
        "Canary and shadow releases: start, shift weights, judge live metrics, finalize or roll back", timeout=300
    ),
}
require_same("FUNCTION_SETTINGS keys", FUNCTION_SETTINGS, contract().lambda_functions)
FUNCTIONS: dict[str, FunctionSpec] = {key: FUNCTION_SETTINGS[key] for key in contract().lambda_functions}

# What each function's code calls, as named grants (modules/workflow local.function_grants, the same
# names): lambdas/<key>.py and the pipelines/ and model/ code it runs, plus the permissions AWS checks
# implicitly (KMS for the SSE-KMS buckets, the lock table and the state machine; ecs:TagResource and
# iam:PassRole for RegisterTaskDefinition; cloudwatch:TagResource for PutMetricAlarm with Tags).
# MLflow is HTTP inside the VPC (the server proxies artifacts): a function that calls it needs only its
# MLflow user's secret (mlflow_workflow or mlflow_reader, MLFLOW_USERS below) and the key it is under.
# Every role also gets its own log group, X-Ray (Tracing.ACTIVE) and its environment's key; one role
# per function.
FUNCTION_GRANTS: dict[str, tuple[str, ...]] = {
    "validate_data": ("read_data", "decrypt", "write_snapshots", "encrypt"),
    "evaluate": ("read_data", "decrypt", "mlflow_workflow"),
    "promote": ("mlflow_workflow", "decrypt"),
    "deploy": ("serving_service", "revisions", "tag_revisions", "pass_serving", "mlflow_workflow", "decrypt"),
    "service_stable": ("describe_serving",),
    "smoke_test": ("read_data", "decrypt"),
    "rollback": ("serving_service", "mlflow_workflow", "decrypt"),
    # The capture window; the per-version state drift-reports/model_version=<v>/state.json (read, then
    # written with the report; ListBucket so a first check's missing state is NoSuchKey, not AccessDenied);
    # when a drift retrain did not absorb the shift, the SNS notice and the "retrain-paused" lock item.
    "drift_check": (
        "read_capture",
        "read_drift_state",
        "list_drift_reports",
        "write_drift_reports",
        "decrypt",
        "encrypt",
        "publish_metrics",
        "notify",
        "pause_retraining",
        "mlflow_reader",
    ),
    "retrain_trigger": ("lock_items", "decrypt", "start_workflow", "encrypt"),
    "lock": ("lock_items", "decrypt"),
    "canary_check": (
        "serving_service",
        "canary_service",
        "revisions",
        "tag_revisions",
        "pass_serving",
        "shift_traffic",
        "mark_shadow",
        "canary_alarms",
        "read_metrics",
        "publish_metrics",
        "mlflow_workflow",
        "decrypt",
    ),
}
require_same("FUNCTION_GRANTS keys", FUNCTION_GRANTS, contract().lambda_functions)

# Which MLflow user each function calls the registry as (modules/workflow local.mlflow_users; the
# Mlflow construct, docs/deploy.md "Who may move an alias"): lambdas/_runtime.py reads that user's
# secret, named by ESTEIRA_MLFLOW_CREDENTIALS_SECRET, at a cold start. `workflow` may write (register,
# tag, move aliases); `reader` may only read. A function not listed never calls MLflow and can read
# neither secret.
MLFLOW_CREDENTIALS_VARIABLE = "ESTEIRA_MLFLOW_CREDENTIALS_SECRET"
MLFLOW_USERS: dict[str, str] = {
    "evaluate": "workflow",  # the challenger's evaluation run and tags
    "promote": "workflow",  # moves `champion`
    "deploy": "workflow",  # the release in the version's lineage
    "rollback": "workflow",  # moves `champion` back
    "canary_check": "workflow",  # release steps in the lineage
    "drift_check": "reader",  # the champion's reference profile and tags
}
_UNGRANTED = sorted(k for k, user in MLFLOW_USERS.items() if f"mlflow_{user}" not in FUNCTION_GRANTS[k])
if _UNGRANTED:
    raise ValueError(f"MLFLOW_USERS without their mlflow_<user> grant in FUNCTION_GRANTS: {_UNGRANTED}")

_ECR_URI = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(?P<repo>[^:@]+)(?::(?P<tag>[\w.-]+)|@(?P<digest>sha256:[0-9a-f]{64}))$"
)


@dataclass(frozen=True)
class LambdaImage:
    """The one Lambda image: where every function's code comes from, and the reference it runs."""

    repository: ecr.IRepository
    tag_or_digest: str
    uri: str  # what each function gets as contract.yaml image_variable

    def code(self, handler: str) -> lambda_.DockerImageCode:
        """The image, started with `handler` (lambdas.<name>.handler)."""
        return lambda_.DockerImageCode.from_ecr(self.repository, tag_or_digest=self.tag_or_digest, cmd=[handler])


def lambda_image(
    scope: Construct, repository: ecr.IRepository, tag: str, override_uri: str | None, use_asset: bool
) -> LambdaImage:
    """The one Lambda image.

    Default: <lambdas repository>:<ImageTag> that CI pushed (no Docker at synth or deploy).
    override_uri: an ECR image URI (Terraform's lambda_image_uri), by tag or digest.
    use_asset: CDK builds docker/lambda.Dockerfile from the repository root at deploy time.
    """
    if use_asset:
        asset = ecr_assets.DockerImageAsset(
            scope,
            "LambdaImage",
            directory=str(REPO_ROOT),
            file=LAMBDA_DOCKERFILE,
            exclude=[
                ".git",
                ".venv",
                "**/__pycache__",
                "cdk.out",
                "**/cdk.out",
                "build",
                "reports",
                ".esteira",
                "mlruns",
                "node_modules",
            ],
        )
        return LambdaImage(asset.repository, asset.image_tag, asset.image_uri)
    if override_uri:
        match = _ECR_URI.match(override_uri)
        if not match:
            raise ValueError(
                f"lambda_image_uri must be an ECR image URI (Lambda pulls from ECR only): {override_uri!r}"
            )
        imported = ecr.Repository.from_repository_attributes(
            scope,
            "LambdaImageRepository",
            repository_name=match["repo"],
            repository_arn=f"arn:aws:ecr:{match['region']}:{match['account']}:repository/{match['repo']}",
        )
        return LambdaImage(imported, match["tag"] or match["digest"], override_uri)
    return LambdaImage(repository, tag, repository.repository_uri_for_tag(tag))


class Workflow(Construct):
    """lock -> validate -> train -> evaluate -> gate -> release (the child machine: deploy, stable, smoke,
    promote, or roll back), with notification."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        vpc: ec2.IVpc,
        private_subnets: ec2.SubnetSelection,
        key: kms.IKey,
        lambda_repository: ecr.IRepository,
        image_tag: str,
        lambda_image_uri: str | None,
        lambda_image_asset: bool,
        training_image: ecs.ContainerImage,
        training_image_uri: str,
        training_backend: str,
        outside_vpc: frozenset[str] = OUTSIDE_VPC,
        cluster: ecs.ICluster,
        serving_service_name: str,
        serving_task_family: str,
        serving_roles: list[iam.IRole],
        serving_url: str,
        buckets: dict[str, s3.IBucket],
        capture_s3_uri: str,
        mlflow_tracking_uri: str,
        mlflow_credentials: dict[str, secretsmanager.ISecret],
        model_name: str,
        sns_topic_arn: str,
        retrain_cooldown_seconds: int,
        extra_environment: dict[str, str],
        deletion_protection: bool,
        log_retention_days: int,
        canary_service_name: str,
        listener_arn: str,
        stable_target_group_arn: str,
        canary_target_group_arn: str,
        deployment_strategy: str = "all_at_once",
        canary_steps: list[int] | None = None,
        canary_bake_seconds: int = 600,
        shadow_seconds: int = 1800,
        canary_thresholds: dict[str, float] | None = None,
        train_command: list[str] | None = None,
        train_cpu: int = 2048,
        train_memory: int = 8192,
        ec2_training: Ec2TrainingTask | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        if set(mlflow_credentials) != set(MLFLOW_USERS.values()):
            raise ValueError(f"mlflow_credentials must name exactly {sorted(set(MLFLOW_USERS.values()))}")
        if training_backend == "ec2" and ec2_training is None:
            raise ValueError('training_backend = "ec2" needs the EC2 capacity (ec2_training.enabled = true).')
        self.state_machine_name = f"{name}-train-evaluate-deploy"
        # Built from names, not read from the resources: the Lambdas need the state machine ARN in
        # their environment and the state machine needs the Lambda ARNs (a cycle otherwise).
        state_machine_arn = stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=self.state_machine_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.release_state_machine_name = f"{name}-release"
        # The release machine's, likewise: the role's policy must name it before the machine exists.
        release_state_machine_arn = stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=self.release_state_machine_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        release_executions_arn = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{self.release_state_machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        serving_service_arn = stack.format_arn(
            service="ecs", resource="service", resource_name=f"{cluster.cluster_name}/{serving_service_name}"
        )
        canary_service_arn = stack.format_arn(
            service="ecs", resource="service", resource_name=f"{cluster.cluster_name}/{canary_service_name}"
        )
        names = contract()
        canary_alarm_prefix = names.canary_alarm_prefix(name)
        canary_alarms_arn = stack.format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name=f"{canary_alarm_prefix}-*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        lock_table_name = f"{name}-workflow-lock"
        # Exactly contract.yaml's workflow_environment (checked below); extra_environment only adds names.
        contract_environment = {
            "ESTEIRA_ENV": name,
            "MLFLOW_TRACKING_URI": mlflow_tracking_uri,
            "ESTEIRA_MODEL_NAME": model_name,
            "ESTEIRA_DATA_BUCKET": buckets["data"].bucket_name,
            "ESTEIRA_ARTIFACTS_BUCKET": buckets["artifacts"].bucket_name,
            "ESTEIRA_LABELS_URI": f"s3://{buckets['data'].bucket_name}/{names.labels_key}",
            # Validated data, kept once per dataset hash (pipelines/snapshot.py).
            "ESTEIRA_SNAPSHOT_URI": f"s3://{buckets['data'].bucket_name}/{names.snapshots_prefix}/",
            "ESTEIRA_CAPTURE_S3_URI": capture_s3_uri,
            "ESTEIRA_ECS_CLUSTER": cluster.cluster_name,
            "ESTEIRA_ECS_SERVICE": serving_service_name,
            "ESTEIRA_TASK_FAMILY": serving_task_family,
            "ESTEIRA_SERVING_URL": serving_url,
            "ESTEIRA_STATE_MACHINE_ARN": state_machine_arn,
            "ESTEIRA_SNS_TOPIC_ARN": sns_topic_arn,
            "ESTEIRA_LOCK_TABLE": lock_table_name,
            "ESTEIRA_METRICS_NAMESPACE": names.metrics_namespace,
            "ESTEIRA_RETRAIN_COOLDOWN_SECONDS": str(retrain_cooldown_seconds),
            # Monitoring names model-health alarms "<name>-model-*"; only those start retraining.
            "ESTEIRA_RETRAIN_ALARM_PREFIX": names.retrain_alarm_prefix(name),
            "ESTEIRA_SERVICE_NAME": serving_service_name,
            "ESTEIRA_CANARY_SERVICE": canary_service_name,
            "ESTEIRA_LISTENER_ARN": listener_arn,
            "ESTEIRA_STABLE_TARGET_GROUP_ARN": stable_target_group_arn,
            "ESTEIRA_CANARY_TARGET_GROUP_ARN": canary_target_group_arn,
            "ESTEIRA_CANARY_ALARM_PREFIX": canary_alarm_prefix,
            "ESTEIRA_METRICS_SERVICE": serving_service_name,
            **{
                f"ESTEIRA_CANARY_{key.upper()}": _tf_number(value)
                for key, value in {**CANARY_THRESHOLDS, **(canary_thresholds or {})}.items()
            },
        }
        require_same("workflow environment names", contract_environment, names.workflow_environment)
        self.environment = {**extra_environment, **contract_environment}
        # Each resource also gets the image it runs, as contract.yaml image_variable (the Lambdas one
        # image, the training task and SageMaker job another): not in the shared environment above,
        # and it wins over extra_environment and a function's own environment.
        image_variable = names.image_variable
        image = lambda_image(self, lambda_repository, image_tag, lambda_image_uri, lambda_image_asset)

        # ---- network identity shared by the Lambdas and the training task
        self.security_group = ec2.SecurityGroup(
            self,
            "Sg",
            vpc=vpc,
            security_group_name=f"{name}-workflow",
            description="Workflow Lambdas and training tasks: outbound only",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs (VPC endpoints, S3 and DynamoDB gateways)"
        )
        self.security_group.add_egress_rule(
            ec2.Peer.ipv4(vpc.vpc_cidr_block),
            ec2.Port.tcp_range(5000, 8080),
            "MLflow (5000) and the serving tasks (8080) inside the VPC",
        )

        # ---- lock table: one workflow execution at a time
        self.lock_table = dynamodb.Table(
            self,
            "LockTable",
            table_name=lock_table_name,
            partition_key=dynamodb.Attribute(name="lock_id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            deletion_protection=deletion_protection,
            time_to_live_attribute="expires_at",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN if deletion_protection else RemovalPolicy.DESTROY,
        )

        # ---- Lambdas: one image, one handler module per function, one role per function
        log_groups = {
            key_: log_group(
                self,
                f"{_pascal(key_)}Logs",
                name=f"/aws/lambda/{name}-{key_.replace('_', '-')}",
                key=key,
                days=log_retention_days,
            )
            for key_ in FUNCTIONS
        }
        namespace = {"StringEquals": {"cloudwatch:namespace": names.metrics_namespace}}
        grants: dict[str, iam.PolicyStatement] = {
            "read_data": iam.PolicyStatement(
                sid="ReadData",
                actions=["s3:GetObject", "s3:ListBucket"],
                resources=[buckets["data"].bucket_arn, buckets["data"].arn_for_objects("*")],
            ),
            # pipelines/snapshot.py adds the validated rows under <snapshots_prefix>/sha256=<hash>/ with
            # If-None-Match: * (never replaced); reading them is read_data; no role may delete them.
            # Training and evaluation only read the snapshots ValidateData wrote.
            "write_snapshots": iam.PolicyStatement(
                sid="WriteSnapshots",
                actions=["s3:PutObject"],
                resources=[buckets["data"].arn_for_objects(f"{names.snapshots_prefix}/*")],
            ),
            "read_capture": iam.PolicyStatement(
                sid="ReadCapture",
                actions=["s3:GetObject", "s3:ListBucket"],
                resources=[buckets["capture"].bucket_arn, buckets["capture"].arn_for_objects("*")],
            ),
            "read_drift_state": iam.PolicyStatement(
                sid="ReadDriftState",
                actions=["s3:GetObject"],
                resources=[buckets["artifacts"].arn_for_objects("drift-reports/*")],
            ),
            # Listing only under drift-reports/ ("drift-reports/*" also matches the folder itself):
            # pipelines/drift_state.py lists a version's state.json before reading it.
            "list_drift_reports": iam.PolicyStatement(
                sid="ListDriftReports",
                actions=["s3:ListBucket"],
                resources=[buckets["artifacts"].bucket_arn],
                conditions={"StringLike": {"s3:prefix": ["drift-reports/*"]}},
            ),
            "write_drift_reports": iam.PolicyStatement(
                sid="WriteDriftReports",
                actions=["s3:PutObject"],
                resources=[buckets["artifacts"].arn_for_objects("drift-reports/*")],
            ),
            # The MLflow credential a function calls the registry with (MLFLOW_USERS); the secrets are
            # under the stack's key, which is the decrypt grant.
            "mlflow_workflow": iam.PolicyStatement(
                sid="ReadMlflowWorkflowCredential",
                actions=["secretsmanager:GetSecretValue"],
                resources=[mlflow_credentials["workflow"].secret_arn],
            ),
            "mlflow_reader": iam.PolicyStatement(
                sid="ReadMlflowReaderCredential",
                actions=["secretsmanager:GetSecretValue"],
                resources=[mlflow_credentials["reader"].secret_arn],
            ),
            "decrypt": iam.PolicyStatement(sid="DecryptWithDataKey", actions=["kms:Decrypt"], resources=[key.key_arn]),
            "encrypt": iam.PolicyStatement(
                sid="EncryptWithDataKey", actions=["kms:GenerateDataKey"], resources=[key.key_arn]
            ),
            "describe_serving": iam.PolicyStatement(
                sid="DescribeServing", actions=["ecs:DescribeServices"], resources=[serving_service_arn]
            ),
            "serving_service": iam.PolicyStatement(
                sid="DeployServing",
                actions=["ecs:DescribeServices", "ecs:UpdateService"],
                resources=[serving_service_arn],
            ),
            "canary_service": iam.PolicyStatement(
                sid="RunCanary", actions=["ecs:DescribeServices", "ecs:UpdateService"], resources=[canary_service_arn]
            ),
            # Neither action has resource-level permissions.
            "revisions": iam.PolicyStatement(
                sid="ServingRevisions",
                actions=["ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition"],
                resources=["*"],
            ),
            "tag_revisions": iam.PolicyStatement(
                sid="TagNewRevisions",
                actions=["ecs:TagResource"],
                resources=[
                    stack.format_arn(
                        service="ecs", resource="task-definition", resource_name=f"{serving_task_family}:*"
                    )
                ],
                conditions={"StringEquals": {"ecs:CreateAction": "RegisterTaskDefinition"}},
            ),
            "pass_serving": iam.PolicyStatement(
                sid="PassServingRoles",
                actions=["iam:PassRole"],
                resources=[role.role_arn for role in serving_roles],
                conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
            ),
            "shift_traffic": iam.PolicyStatement(
                sid="ShiftTraffic", actions=["elasticloadbalancing:ModifyListener"], resources=[listener_arn]
            ),
            "mark_shadow": iam.PolicyStatement(
                sid="MarkShadowTargetGroup",
                actions=["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
                resources=[canary_target_group_arn],
            ),
            "canary_alarms": iam.PolicyStatement(
                sid="CanaryAlarms",
                actions=["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:TagResource"],
                resources=[canary_alarms_arn],
            ),
            "read_metrics": iam.PolicyStatement(
                sid="ReadMetricsAndAlarms",
                actions=["cloudwatch:GetMetricData", "cloudwatch:ListMetrics", "cloudwatch:DescribeAlarms"],
                resources=["*"],
            ),
            "publish_metrics": iam.PolicyStatement(
                sid="PublishMetrics", actions=["cloudwatch:PutMetricData"], resources=["*"], conditions=namespace
            ),
            "lock_items": iam.PolicyStatement(
                sid="LockItems",
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"],
                resources=[self.lock_table.table_arn],
            ),
            "start_workflow": iam.PolicyStatement(
                sid="StartWorkflow", actions=["states:StartExecution"], resources=[state_machine_arn]
            ),
            # The topic is encrypted with the stack's key: Publish also needs the encrypt and decrypt grants.
            "notify": iam.PolicyStatement(sid="Notify", actions=["sns:Publish"], resources=[sns_topic_arn]),
            # Only the item whose partition key is "retrain-paused" (pipelines/retrain_trigger.py honours it).
            "pause_retraining": iam.PolicyStatement(
                sid="PauseRetraining",
                actions=["dynamodb:PutItem"],
                resources=[self.lock_table.table_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["retrain-paused"]}},
            ),
        }
        # The training task and the SageMaker job: --reference recent-traffic reads the previous champion's
        # drift state and the captured requests (Terraform: local.train_grants).
        train_grants = ("read_capture", "read_drift_state", "list_drift_reports")
        self.functions: dict[str, lambda_.DockerImageFunction] = {}
        self.lambda_roles: dict[str, iam.Role] = {}
        for key_, spec in FUNCTIONS.items():
            function_name = f"{name}-{key_.replace('_', '-')}"
            # The smoke test only calls the internet-facing ALB, unreachable from private subnets without NAT.
            in_vpc = key_ not in outside_vpc
            role = iam.Role(
                self,
                f"{_pascal(key_)}Role",
                role_name=function_name,
                description=f"Lambda {function_name}: what lambdas/{key_}.py calls",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                managed_policies=[
                    iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSLambdaVPCAccessExecutionRole")
                ]
                if in_vpc
                else None,
            )
            policy = inline_policy(
                self,
                f"{_pascal(key_)}Policy",
                "function",
                role,
                [
                    iam.PolicyStatement(
                        sid="WriteOwnLogs",
                        actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                        resources=[log_groups[key_].log_group_arn],
                    ),
                    # Lambda decrypts the function's environment (the stack's key) as the execution role.
                    iam.PolicyStatement(
                        sid="DecryptOwnEnvironment",
                        actions=["kms:Decrypt"],
                        resources=[key.key_arn],
                        conditions={"StringEquals": {"kms:EncryptionContext:LambdaFunctionName": function_name}},
                    ),
                    *(grants[g] for g in FUNCTION_GRANTS[key_]),
                ],
            )
            function = lambda_.DockerImageFunction(
                self,
                _pascal(key_),
                function_name=function_name,
                description=spec.description,
                role=role,
                code=image.code(f"lambdas.{key_}.handler"),
                timeout=Duration.seconds(spec.timeout),
                memory_size=spec.memory_size,
                architecture=lambda_.Architecture.X86_64,
                environment_encryption=key,
                environment={
                    **self.environment,
                    **spec.environment,
                    image_variable: image.uri,
                    **(
                        {MLFLOW_CREDENTIALS_VARIABLE: mlflow_credentials[MLFLOW_USERS[key_]].secret_arn}
                        if key_ in MLFLOW_USERS
                        else {}
                    ),
                },
                vpc=vpc if in_vpc else None,
                vpc_subnets=private_subnets if in_vpc else None,
                security_groups=[self.security_group] if in_vpc else None,
                # Adds xray:PutTraceSegments/PutTelemetryRecords to the role (Terraform: the Tracing statement).
                tracing=lambda_.Tracing.ACTIVE,
                logging_format=lambda_.LoggingFormat.JSON,
                log_group=log_groups[key_],
            )
            function.node.add_dependency(policy)
            self.functions[key_] = function
            self.lambda_roles[key_] = role

        # ---- training task (ECS Fargate in private subnets)
        self.train_execution_role = ecs_tasks_role(self, "TrainExecutionRole", f"{name}-train-exec", execution=True)
        # ECS reads the workflow's MLflow credential for the training container (its `secrets`): training
        # registers the new version, so it is the writing user.
        inline_policy(
            self,
            "TrainExecutionPolicy",
            "train-secrets",
            self.train_execution_role,
            [
                grants["mlflow_workflow"],
                iam.PolicyStatement(sid="DecryptMlflowCredential", actions=["kms:Decrypt"], resources=[key.key_arn]),
            ],
        )
        self.train_task_role = ecs_tasks_role(self, "TrainTaskRole", f"{name}-train-task", execution=False)
        inline_policy(
            self,
            "TrainTaskPolicy",
            "train",
            self.train_task_role,
            [
                iam.PolicyStatement(
                    sid="ReadData",
                    actions=["s3:GetObject", "s3:ListBucket"],
                    resources=[buckets["data"].bucket_arn, buckets["data"].arn_for_objects("*")],
                ),
                # --reference recent-traffic: the capture and the previous champion's drift state.
                *(grants[g] for g in train_grants),
                # Runs, metrics and the model go to MLflow over HTTP (the server proxies its artifact store).
                # The data, capture and artifacts buckets are SSE-KMS under the stack's key.
                iam.PolicyStatement(sid="UseDataKey", actions=["kms:Decrypt"], resources=[key.key_arn]),
            ],
        )
        train_logs = log_group(self, "TrainLogs", name=f"/esteira/{name}/train", key=key, days=log_retention_days)
        self.train_task_definition = ecs.FargateTaskDefinition(
            self,
            "TrainTaskDefinition",
            family=f"{name}-train",
            cpu=train_cpu,
            memory_limit_mib=train_memory,
            execution_role=self.train_execution_role,
            task_role=self.train_task_role,
            volumes=[ecs.Volume(name="tmp")],
        )
        train_environment = dict(sorted({**self.environment, image_variable: training_image_uri}.items()))

        def add_train_container(task_definition: ecs.TaskDefinition, gpus: int = 0) -> None:
            """The training container, shared by the Fargate and the EC2 task definitions (local.train_container)."""
            container = task_definition.add_container(
                "train",
                container_name="train",
                image=training_image,
                essential=True,
                readonly_root_filesystem=True,
                command=train_command or ["esteira", "train"],
                environment=train_environment,
                # MLflow's clients read these natively: the workflow's (writing) user.
                secrets={
                    "MLFLOW_TRACKING_USERNAME": ecs.Secret.from_secrets_manager(
                        mlflow_credentials["workflow"], "username"
                    ),
                    "MLFLOW_TRACKING_PASSWORD": ecs.Secret.from_secrets_manager(
                        mlflow_credentials["workflow"], "password"
                    ),
                },
                logging=ecs.LogDrivers.aws_logs(stream_prefix="train", log_group=train_logs),
                gpu_count=gpus or None,
            )
            container.add_mount_points(ecs.MountPoint(source_volume="tmp", container_path="/tmp", read_only=False))

        add_train_container(self.train_task_definition)

        # ---- optional EC2 training backend (docs/training-capacity.md): the same container on the EC2
        # capacity provider, sized beyond Fargate's 16 vCPU / 120 GB and with GPUs.
        self.train_ec2_task_definition: ecs.TaskDefinition | None = None
        if ec2_training is not None:
            self.train_ec2_task_definition = ecs.TaskDefinition(
                self,
                "TrainEc2TaskDefinition",
                family=f"{name}-train-ec2",
                compatibility=ecs.Compatibility.EC2,
                network_mode=ecs.NetworkMode.AWS_VPC,
                cpu=str(ec2_training.cpu),
                memory_mib=str(ec2_training.memory),
                execution_role=self.train_execution_role,
                task_role=self.train_task_role,
                volumes=[ecs.Volume(name="tmp")],
            )
            add_train_container(self.train_ec2_task_definition, ec2_training.gpus)

        # ---- optional SageMaker training backend
        private_subnet_ids = vpc.select_subnets(subnet_group_name=private_subnets.subnet_group_name).subnet_ids
        network_interfaces = stack.format_arn(service="ec2", resource="network-interface", resource_name="*")
        self.sagemaker_role: iam.Role | None = None
        if training_backend == "sagemaker":
            self.sagemaker_role = iam.Role(
                self,
                "SageMakerRole",
                role_name=f"{name}-sagemaker-train",
                assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            )
            inline_policy(
                self,
                "SageMakerPolicy",
                "train",
                self.sagemaker_role,
                [
                    iam.PolicyStatement(
                        sid="Data",
                        actions=["s3:GetObject", "s3:ListBucket"],
                        resources=[
                            buckets["data"].bucket_arn,
                            buckets["data"].arn_for_objects("*"),
                            buckets["artifacts"].bucket_arn,
                            buckets["artifacts"].arn_for_objects("*"),
                        ],
                    ),
                    # The job's output goes to the artifacts bucket only: training writes nothing in the
                    # data bucket (the data snapshots above all).
                    iam.PolicyStatement(
                        sid="JobOutput", actions=["s3:PutObject"], resources=[buckets["artifacts"].arn_for_objects("*")]
                    ),
                    # --reference recent-traffic, as the training task; the drift state is in Data above.
                    grants["read_capture"],
                    iam.PolicyStatement(
                        sid="UseDataKey", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]
                    ),
                    # `esteira train` reads the workflow's MLflow credential itself (ESTEIRA_MLFLOW_CREDENTIALS_SECRET
                    # in the job's environment, from the state machine): a training job has no secrets injection.
                    grants["mlflow_workflow"],
                    iam.PolicyStatement(sid="PullImage", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
                    iam.PolicyStatement(
                        sid="PullTrainingImage",
                        actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                        resources=[stack.format_arn(service="ecr", resource="repository", resource_name="*")],
                    ),
                    iam.PolicyStatement(
                        sid="Logs",
                        actions=[
                            "logs:CreateLogGroup",
                            "logs:CreateLogStream",
                            "logs:PutLogEvents",
                            "logs:DescribeLogStreams",
                        ],
                        resources=[
                            stack.format_arn(
                                service="logs",
                                resource="log-group",
                                resource_name="/aws/sagemaker/TrainingJobs*",
                                arn_format=ArnFormat.COLON_RESOURCE_NAME,
                            )
                        ],
                    ),
                    iam.PolicyStatement(
                        sid="Metrics",
                        actions=["cloudwatch:PutMetricData"],
                        resources=["*"],
                        conditions={"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}},
                    ),
                    # VPC mode (VpcConfig: private subnets, workflow security group, to reach MLflow):
                    # SageMaker creates and deletes the job's network interfaces with this role.
                    iam.PolicyStatement(
                        sid="DescribeNetwork",
                        actions=[
                            "ec2:DescribeNetworkInterfaces",
                            "ec2:DescribeVpcs",
                            "ec2:DescribeDhcpOptions",
                            "ec2:DescribeSubnets",
                            "ec2:DescribeSecurityGroups",
                        ],
                        resources=["*"],
                    ),
                    iam.PolicyStatement(
                        sid="CreateTrainingEnis",
                        actions=["ec2:CreateNetworkInterface"],
                        resources=[
                            *(
                                stack.format_arn(service="ec2", resource="subnet", resource_name=subnet_id)
                                for subnet_id in private_subnet_ids
                            ),
                            stack.format_arn(
                                service="ec2",
                                resource="security-group",
                                resource_name=self.security_group.security_group_id,
                            ),
                            network_interfaces,
                        ],
                    ),
                    iam.PolicyStatement(
                        sid="ManageTrainingEnis",
                        actions=[
                            "ec2:CreateNetworkInterfacePermission",
                            "ec2:DeleteNetworkInterface",
                            "ec2:DeleteNetworkInterfacePermission",
                        ],
                        resources=[network_interfaces],
                        conditions={
                            "ArnEquals": {
                                "ec2:Vpc": stack.format_arn(service="ec2", resource="vpc", resource_name=vpc.vpc_id)
                            }
                        },
                    ),
                ],
            )

        # ---- the state machines: the workflow, and the release it starts as a child (states:startExecution.sync:2)
        sfn_logs = log_group(
            self,
            "StateMachineLogs",
            name=f"/aws/vendedlogs/states/{self.state_machine_name}",
            key=key,
            days=log_retention_days,
        )
        release_logs = log_group(
            self,
            "ReleaseStateMachineLogs",
            name=f"/aws/vendedlogs/states/{self.release_state_machine_name}",
            key=key,
            days=log_retention_days,
        )
        self.sfn_role = iam.Role(
            self,
            "StateMachineRole",
            role_name=f"{name}-workflow-sfn",
            assumed_by=iam.ServicePrincipal(
                "states.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
            ),
        )
        events_rule = lambda rule: stack.format_arn(service="events", resource="rule", resource_name=rule)  # noqa: E731
        pass_roles = [self.train_execution_role.role_arn, self.train_task_role.role_arn]
        if self.sagemaker_role is not None:
            pass_roles.append(self.sagemaker_role.role_arn)
        train_families = [f"{name}-train"] + ([f"{name}-train-ec2"] if ec2_training is not None else [])
        sfn_policy = inline_policy(
            self,
            "StateMachinePolicy",
            "workflow",
            self.sfn_role,
            [
                iam.PolicyStatement(
                    sid="InvokeSteps",
                    actions=["lambda:InvokeFunction"],
                    resources=[arn for f in self.functions.values() for arn in (f.function_arn, f"{f.function_arn}:*")],
                ),
                iam.PolicyStatement(
                    sid="RunTraining",
                    actions=["ecs:RunTask"],
                    resources=[
                        stack.format_arn(service="ecs", resource="task-definition", resource_name=f"{family}:*")
                        for family in train_families
                    ],
                    conditions={"ArnEquals": {"ecs:cluster": cluster.cluster_arn}},
                ),
                iam.PolicyStatement(
                    sid="WatchTraining",
                    actions=["ecs:StopTask", "ecs:DescribeTasks"],
                    resources=[
                        stack.format_arn(service="ecs", resource="task", resource_name=f"{cluster.cluster_name}/*")
                    ],
                ),
                iam.PolicyStatement(sid="PassTrainingRoles", actions=["iam:PassRole"], resources=pass_roles),
                iam.PolicyStatement(
                    sid="StartRelease", actions=["states:StartExecution"], resources=[release_state_machine_arn]
                ),
                iam.PolicyStatement(
                    sid="WatchRelease",
                    actions=["states:DescribeExecution", "states:StopExecution"],
                    resources=[release_executions_arn],
                ),
                iam.PolicyStatement(
                    sid="SyncIntegrationRules",
                    actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                    resources=[
                        events_rule("StepFunctionsGetEventsForECSTaskRule"),
                        events_rule("StepFunctionsGetEventsForSageMakerTrainingJobsRule"),
                        events_rule("StepFunctionsGetEventsForStepFunctionsExecutionRule"),
                    ],
                ),
                iam.PolicyStatement(
                    sid="SageMakerTraining",
                    actions=[
                        "sagemaker:CreateTrainingJob",
                        "sagemaker:DescribeTrainingJob",
                        "sagemaker:StopTrainingJob",
                    ],
                    resources=[
                        stack.format_arn(service="sagemaker", resource="training-job", resource_name="esteira-*")
                    ],
                ),
                iam.PolicyStatement(sid="Notify", actions=["sns:Publish"], resources=[sns_topic_arn]),
                iam.PolicyStatement(
                    sid="EncryptedTopic", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]
                ),
            ],
        )
        variables = {
            **{f"{k}_function_arn": f.function_arn for k, f in self.functions.items()},
            "sns_topic_arn": sns_topic_arn,
            "ecs_cluster_arn": cluster.cluster_arn,
            "train_task_definition_arn": self.train_task_definition.task_definition_arn,
            "train_container_name": "train",
            # Comma-joined, split back by States.StringSplit in the ASL (Terraform: join(",", ...)). The
            # subnet IDs are tokens until deploy, so CloudFormation joins them (Fn::Join).
            "train_subnets": Fn.join(",", private_subnet_ids),
            "train_security_groups": self.security_group.security_group_id,
            "training_backend": training_backend,
            "sagemaker_enabled": _tf_bool(training_backend == "sagemaker"),
            "ec2_training_enabled": _tf_bool(ec2_training is not None),
            "ec2_capacity_provider": ec2_training.capacity_provider if ec2_training is not None else "",
            "train_ec2_task_definition_arn": (
                self.train_ec2_task_definition.task_definition_arn if self.train_ec2_task_definition else ""
            ),
            "sagemaker_role_arn": self.sagemaker_role.role_arn if self.sagemaker_role is not None else "",
            "training_image_uri": training_image_uri,
            "image_variable": image_variable,
            "mlflow_credentials_secret": mlflow_credentials["workflow"].secret_arn,
            "lock_table_name": self.lock_table.table_name,
            "data_bucket": buckets["data"].bucket_name,
            "artifacts_bucket": buckets["artifacts"].bucket_name,
            "deployment_strategy": deployment_strategy,
            # jsonencode(): no spaces (the value sits in a string, States.StringToJson('...')).
            "canary_steps": json.dumps(canary_steps or [10, 50, 100], separators=(",", ":")),
            "canary_bake_seconds": str(canary_bake_seconds),
            "shadow_seconds": str(shadow_seconds),
            "release_state_machine_arn": release_state_machine_arn,
        }
        missing = sorted(set(names.asl_variables) - set(variables))
        if missing:
            raise ValueError(f"no value for contract.yaml asl_variables {missing}")

        def state_machine(
            construct_id: str, machine_name: str, definition: str, destination: logs.ILogGroup
        ) -> sfn.StateMachine:
            """One of the two machines: the same role, logging, tracing and encryption for both."""
            machine = sfn.StateMachine(
                self,
                construct_id,
                state_machine_name=machine_name,
                state_machine_type=sfn.StateMachineType.STANDARD,
                definition_body=sfn.DefinitionBody.from_string(definition),
                role=self.sfn_role,
                logs=sfn.LogOptions(destination=destination, level=sfn.LogLevel.ALL, include_execution_data=True),
                tracing_enabled=True,
                encryption_configuration=sfn.CustomerManagedEncryptionConfiguration(key, Duration.seconds(300)),
            )
            machine.node.add_dependency(sfn_policy)
            return machine

        # One role for both machines: the release's Lambdas and SNS are the workflow's, and Step Functions
        # signs a child's service calls with the child's role (docs/security.md lists this as a known gap).
        self.release_state_machine = state_machine(
            "ReleaseStateMachine",
            self.release_state_machine_name,
            render_definition(variables, RELEASE_ASL_PATH),
            release_logs,
        )
        self.state_machine = state_machine(
            "StateMachine", self.state_machine_name, render_definition(variables), sfn_logs
        )
        # The release machine exists before the workflow can start it.
        self.state_machine.node.add_dependency(self.release_state_machine)


# modules/workflow variable canary_thresholds: the same defaults, rendered as Terraform's tostring() does.
CANARY_THRESHOLDS: dict[str, float] = {
    "max_5xx_rate": 0.01,
    "max_5xx_count": 5,
    "max_p99_ms": 500,
    "max_low_confidence_rate": 0.5,
    "max_prediction_drift": 0.2,
    "min_requests": 30,
}


def _tf_bool(value: bool) -> str:
    """tostring() of a Terraform bool."""
    return "true" if value else "false"


def _tf_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _pascal(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))
