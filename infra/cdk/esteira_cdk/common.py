"""Small helpers every construct uses, so log groups and policies look the same everywhere."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

_RETENTION = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS",
    1827: "FIVE_YEARS", 2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}  # fmt: skip


def retention(days: int) -> logs.RetentionDays:
    """RetentionDays member for a day count (config validation already restricted the values)."""
    if days not in _RETENTION:
        raise ValueError(f"no CloudWatch Logs retention of {days} days")
    return getattr(logs.RetentionDays, _RETENTION[days])


def log_group(scope: Construct, construct_id: str, *, name: str, key: kms.IKey, days: int) -> logs.LogGroup:
    """A KMS-encrypted log group with an explicit name and retention (as Terraform declares them)."""
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=name,
        retention=retention(days),
        encryption_key=key,
        removal_policy=RemovalPolicy.DESTROY,
    )


def ecs_tasks_role(scope: Construct, construct_id: str, role_name: str, *, execution: bool) -> iam.Role:
    """A role ECS tasks assume; execution roles get the AWS-managed pull-and-log policy."""
    role = iam.Role(
        scope, construct_id, role_name=role_name, assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com")
    )
    if execution:
        role.add_managed_policy(
            iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonECSTaskExecutionRolePolicy")
        )
    return role


def inline_policy(
    scope: Construct, construct_id: str, policy_name: str, role: iam.IRole, statements: list[iam.PolicyStatement]
) -> iam.Policy:
    """The counterpart of aws_iam_role_policy: a named policy document attached to one role."""
    return iam.Policy(scope, construct_id, policy_name=policy_name, roles=[role], statements=statements)


def container_image(repository: ecr.IRepository, tag: str, override_uri: str | None) -> ecs.ContainerImage:
    """<stack repository>:<tag> unless an explicit image URI overrides it (Terraform's *_image_uri)."""

    if override_uri:
        return ecs.ContainerImage.from_registry(override_uri)
    return ecs.ContainerImage.from_ecr_repository(repository, tag)


def image_uri(repository: ecr.IRepository, tag: str, override_uri: str | None) -> str:
    """The reference container_image() runs, as Terraform's local.images: the override or <repository URI>:<tag>."""
    return override_uri or repository.repository_uri_for_tag(tag)
