"""GitHub OIDC roles (modules/ci), for `cdk deploy` instead of `terraform apply`.

Terraform's deploy role holds the permissions to create every resource itself. With CDK the
CloudFormation service does the work through the bootstrap roles (`cdk bootstrap`), so the GitHub
role only needs to assume those: the deploy job assumes the deploy, file- and image-publishing
roles; the pull-request job (`cdk diff`) assumes the lookup role and reads. Fewer permissions for
the same deployment, and no state bucket (CloudFormation keeps the state).
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from .common import inline_policy

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_THUMBPRINT = "6938fd4d98bab03faadb97b34396831e3780aea1"
DEFAULT_QUALIFIER = "hnb659fds"


class Ci(Construct):
    """GitHub OIDC provider (optional), a deploy role per GitHub environment and a read-only plan role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        github_repository: str,
        github_environment: str,
        create_oidc_provider: bool,
        oidc_provider_arn: str | None,
        state_machine_name: str,
        key: kms.IKey,
        github_main_ref: str = "refs/heads/main",
        bootstrap_qualifier: str = DEFAULT_QUALIFIER,
        max_session_duration: int = 3600,
    ) -> None:
        super().__init__(scope, construct_id)
        if create_oidc_provider:
            provider = iam.OidcProviderNative(
                self, "GitHub", url=GITHUB_OIDC_URL, client_ids=["sts.amazonaws.com"], thumbprints=[GITHUB_THUMBPRINT]
            )
            provider_arn = provider.oidc_provider_arn
        else:
            assert oidc_provider_arn is not None  # config validation guarantees it
            provider_arn = oidc_provider_arn
        self.oidc_provider_arn = provider_arn

        def trust(*subjects: str) -> iam.WebIdentityPrincipal:
            subject: str | list[str] = subjects[0] if len(subjects) == 1 else list(subjects)
            return iam.WebIdentityPrincipal(
                provider_arn,
                conditions={
                    "StringEquals": {
                        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                        "token.actions.githubusercontent.com:sub": subject,
                    }
                },
            )

        main = f"repo:{github_repository}:ref:{github_main_ref}"

        def bootstrap_role(kind: str) -> str:
            role = f"cdk-{bootstrap_qualifier}-{kind}-role-{Aws.ACCOUNT_ID}-{Aws.REGION}"
            return f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/{role}"

        self.deploy_role = iam.Role(
            self,
            "DeployRole",
            role_name=f"{name}-github-deploy",
            description=f"cdk deploy from {github_repository} environment {github_environment}",
            assumed_by=trust(f"repo:{github_repository}:environment:{github_environment}"),
            max_session_duration=Duration.seconds(max_session_duration),
        )
        # The deploy policy (Terraform: modules/ci output deploy_policy_json); delivery = codepipeline gives
        # the CodeBuild deploy build the same statements (deploy_statements()).
        self._bootstrap_roles = [
            bootstrap_role(kind) for kind in ("deploy", "file-publishing", "image-publishing", "lookup")
        ]
        inline_policy(self, "DeployPolicy", "deploy", self.deploy_role, self.deploy_statements())
        self.plan_role = iam.Role(
            self,
            "PlanRole",
            role_name=f"{name}-github-plan",
            description=f"cdk diff (read-only) for pull requests of {github_repository}",
            assumed_by=trust(f"repo:{github_repository}:pull_request", main),  # pr.yml and deploy.yml's plan
            max_session_duration=Duration.seconds(max_session_duration),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("ReadOnlyAccess")],
        )
        inline_policy(
            self,
            "PlanPolicy",
            "plan-lookup",
            self.plan_role,
            [
                iam.PolicyStatement(
                    sid="AssumeLookupRole",
                    actions=["sts:AssumeRole", "sts:TagSession"],
                    resources=[bootstrap_role("lookup")],
                ),
                # ReadOnlyAccess (and the boundary) let it describe every resource; a diff never needs
                # the data inside them (modules/ci's plan role has the same denies).
                iam.PolicyStatement(
                    sid="NoDataReads",
                    effect=iam.Effect.DENY,
                    actions=[
                        "s3:GetObject",
                        "s3:GetObjectVersion",
                        "dynamodb:GetItem",
                        "dynamodb:BatchGetItem",
                        "dynamodb:Query",
                        "dynamodb:Scan",
                        "dynamodb:GetRecords",
                        "secretsmanager:GetSecretValue",
                        "logs:GetLogEvents",
                        "logs:FilterLogEvents",
                        "logs:StartQuery",
                        "logs:GetQueryResults",
                        "logs:StartLiveTail",
                        "states:GetExecutionHistory",
                        "states:DescribeExecution",
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                    ],
                    resources=["*"],
                ),
            ],
        )

        # train.yml (schedule / workflow_dispatch on main): start the state machine, follow its executions.
        stack = Stack.of(self)
        self.train_role = iam.Role(
            self,
            "TrainRole",
            role_name=f"{name}-github-train",
            description=f"Start the train-evaluate-deploy workflow from {github_repository} ({github_main_ref})",
            assumed_by=trust(main),
            max_session_duration=Duration.seconds(max_session_duration),
        )
        inline_policy(
            self,
            "TrainPolicy",
            "start-training",
            self.train_role,
            [
                iam.PolicyStatement(
                    sid="StartTraining",
                    actions=["states:StartExecution"],
                    resources=[
                        stack.format_arn(
                            service="states",
                            resource="stateMachine",
                            resource_name=state_machine_name,
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    ],
                ),
                iam.PolicyStatement(
                    sid="FollowExecutions",
                    actions=["states:DescribeExecution"],
                    resources=[
                        stack.format_arn(
                            service="states",
                            resource="execution",
                            resource_name=f"{state_machine_name}:*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    ],
                ),
                # The state machine is encrypted with the stack's key: StartExecution encrypts the input,
                # DescribeExecution decrypts input and output, both as the caller.
                iam.PolicyStatement(
                    sid="EncryptedStateMachine",
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[key.key_arn],
                ),
            ],
        )

    def deploy_statements(self) -> list[iam.PolicyStatement]:
        """The deploy role's statements, new objects for each policy that uses them."""
        return [
            iam.PolicyStatement(
                sid="AssumeBootstrapRoles",
                actions=["sts:AssumeRole", "sts:TagSession"],
                resources=list(self._bootstrap_roles),
            )
        ]
