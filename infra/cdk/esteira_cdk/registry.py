"""ECR repositories (modules/registry): serving, training, lambdas, mlflow."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_kms as kms
from constructs import Construct

REPOSITORIES = ("serving", "training", "lambdas", "mlflow")


class Registry(Construct):
    """Immutable-tag, scan-on-push, KMS-encrypted repositories with the same lifecycle rules."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        key: kms.IKey,
        force_delete: bool,
        keep_images: int = 30,
    ) -> None:
        super().__init__(scope, construct_id)
        self.repositories: dict[str, ecr.Repository] = {}
        for repo in REPOSITORIES:
            repository = ecr.Repository(
                self,
                repo.capitalize(),
                repository_name=f"{name}/{repo}",
                image_tag_mutability=ecr.TagMutability.IMMUTABLE,
                image_scan_on_push=True,
                encryption=ecr.RepositoryEncryption.KMS,
                encryption_key=key,
                empty_on_delete=force_delete,
                removal_policy=RemovalPolicy.DESTROY if force_delete else RemovalPolicy.RETAIN,
            )
            repository.add_lifecycle_rule(
                rule_priority=1,
                description="Expire untagged images after 7 days",
                tag_status=ecr.TagStatus.UNTAGGED,
                max_image_age=Duration.days(7),
            )
            repository.add_lifecycle_rule(
                rule_priority=2,
                description=f"Keep the newest {keep_images} images",
                tag_status=ecr.TagStatus.ANY,
                max_image_count=keep_images,
            )
            self.repositories[repo] = repository
