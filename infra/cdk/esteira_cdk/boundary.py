"""The permissions boundary on every role of the stack (infra/terraform/main.tf aws_iam_policy.boundary).

A ceiling, not a grant: whatever a role's own policies say, it can use only the services the stack
uses, IAM only on the stack's own roles, never create or widen a role without this boundary, never
remove a boundary, and never change this policy or the CI roles. `PermissionsBoundary.of(stack)`
puts it on every role the app synthesises, the custom-resource providers' roles included.
"""

from __future__ import annotations

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

# The services the stack's roles (and a Terraform deploy role) use; modules' policies scope them.
STACK_SERVICES = (
    "application-autoscaling",
    "autoscaling",
    "cloudwatch",
    "codebuild",
    "codepipeline",
    "dynamodb",
    "ec2",
    "ecr",
    "ecs",
    "elasticloadbalancing",
    "events",
    "kms",
    "lambda",
    "logs",
    "rds",
    "route53",
    "s3",
    "sagemaker",
    "secretsmanager",
    "servicediscovery",
    "sns",
    "states",
    "xray",
)
# Everything that changes a role, its policies, its trust or its boundary (and passing it on).
ROLE_CHANGES = (
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:UpdateRole",
    "iam:UpdateRoleDescription",
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:PassRole",
)
POLICY_CHANGES = (
    "iam:CreatePolicyVersion",
    "iam:DeletePolicy",
    "iam:DeletePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:TagPolicy",
    "iam:UntagPolicy",
)


def boundary_name(name: str) -> str:
    return f"{name}-boundary"


def apply_boundary(stack: Stack, scope: Construct, *, name: str, bootstrap_qualifier: str) -> iam.ManagedPolicy:
    """Create `<name>-boundary` and make it the permissions boundary of every role in `stack`."""
    iam_arn = f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}"
    own_arn = f"{iam_arn}:policy/{boundary_name(name)}"
    policy = iam.ManagedPolicy(
        scope,
        "PermissionsBoundary",
        managed_policy_name=boundary_name(name),
        description=f"Permissions boundary of every role of {name} (see infra/cdk/esteira_cdk/boundary.py)",
        statements=[
            iam.PolicyStatement(sid="StackServices", actions=[f"{s}:*" for s in STACK_SERVICES], resources=["*"]),
            # AWS's public parameters only (the ECS-optimised AMI ID the EC2 training hosts launch from).
            iam.PolicyStatement(
                sid="PublicParameters",
                actions=["ssm:GetParameter", "ssm:GetParameters"],
                resources=[f"arn:{Aws.PARTITION}:ssm:*::parameter/aws/service/*"],
            ),
            iam.PolicyStatement(
                sid="ReadIam", actions=["iam:Get*", "iam:List*", "sts:GetCallerIdentity"], resources=["*"]
            ),
            iam.PolicyStatement(
                sid="StackIam",
                actions=["iam:*"],
                resources=[
                    f"{iam_arn}:role/{name}-*",
                    f"{iam_arn}:policy/{name}-*",
                    f"{iam_arn}:instance-profile/{name}-*",
                    f"{iam_arn}:role/aws-service-role/*",
                    f"{iam_arn}:oidc-provider/token.actions.githubusercontent.com",
                ],
            ),
            # The CDK-shaped CI roles assume the bootstrap roles (docs/cdk.md); nothing else is assumed.
            iam.PolicyStatement(
                sid="CdkBootstrapRoles",
                actions=["sts:AssumeRole", "sts:TagSession"],
                resources=[f"{iam_arn}:role/cdk-{bootstrap_qualifier}-*"],
            ),
            iam.PolicyStatement(
                sid="NoRoleWithoutThisBoundary",
                effect=iam.Effect.DENY,
                actions=[
                    "iam:CreateRole",
                    "iam:PutRolePolicy",
                    "iam:AttachRolePolicy",
                    "iam:PutRolePermissionsBoundary",
                ],
                resources=["*"],
                conditions={"StringNotEquals": {"iam:PermissionsBoundary": own_arn}},
            ),
            iam.PolicyStatement(
                sid="KeepBoundaries",
                effect=iam.Effect.DENY,
                actions=["iam:DeleteRolePermissionsBoundary"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="BoundaryIsFixed", effect=iam.Effect.DENY, actions=list(POLICY_CHANGES), resources=[own_arn]
            ),
            iam.PolicyStatement(
                sid="CiRolesAreFixed",
                effect=iam.Effect.DENY,
                actions=list(ROLE_CHANGES),
                resources=[f"{iam_arn}:role/{name}-github-*"],
            ),
        ],
    )
    iam.PermissionsBoundary.of(stack).apply(policy)
    return policy
