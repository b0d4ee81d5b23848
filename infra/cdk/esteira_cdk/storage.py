"""KMS key and S3 buckets (modules/storage): data, artifacts, capture, plus the access-log bucket."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy, Tags
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

BUCKET_KEYS = ("data", "artifacts", "capture")


class Storage(Construct):
    """One customer-managed key for everything at rest, and the buckets the model life cycle uses."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        force_destroy: bool,
        noncurrent_version_days: int = 90,
        capture_expiration_days: int = 180,
        access_log_expiration_days: int = 365,
        key_deletion_window_days: int = 30,
        encrypted_volumes_for_autoscaling: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        account, region, partition = Aws.ACCOUNT_ID, Aws.REGION, Aws.PARTITION
        removal = RemovalPolicy.DESTROY if force_destroy else RemovalPolicy.RETAIN

        # Same three statements as the Terraform key policy ("*" in a key policy means this key).
        policy = iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    sid="AccountAdministers",
                    actions=["kms:*"],
                    resources=["*"],
                    principals=[iam.AccountRootPrincipal()],
                ),
                iam.PolicyStatement(
                    sid="CloudWatchLogsEncrypt",
                    actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                    resources=["*"],
                    principals=[iam.ServicePrincipal(f"logs.{region}.amazonaws.com")],
                    conditions={
                        "ArnLike": {
                            "kms:EncryptionContext:aws:logs:arn": f"arn:{partition}:logs:{region}:{account}:log-group:*"
                        }
                    },
                ),
                iam.PolicyStatement(
                    sid="AlarmsAndEventsPublishToEncryptedTopic",
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    resources=["*"],
                    principals=[
                        iam.ServicePrincipal("cloudwatch.amazonaws.com"),
                        iam.ServicePrincipal("events.amazonaws.com"),
                        iam.ServicePrincipal("states.amazonaws.com"),
                    ],
                    conditions={"StringEquals": {"aws:SourceAccount": account}},
                ),
            ]
        )
        if encrypted_volumes_for_autoscaling:  # the EC2 training hosts' volumes (modules/storage in Terraform)
            role = (
                f"arn:{partition}:iam::{account}:role/aws-service-role/autoscaling.amazonaws.com/"
                "AWSServiceRoleForAutoScaling"
            )
            policy.add_statements(
                iam.PolicyStatement(
                    sid="AutoScalingUsesKeyForVolumes",
                    actions=["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                    resources=["*"],
                    principals=[iam.AnyPrincipal()],
                    conditions={"ArnEquals": {"aws:PrincipalArn": role}},
                ),
                iam.PolicyStatement(
                    sid="AutoScalingGrantsForVolumes",
                    actions=["kms:CreateGrant"],
                    resources=["*"],
                    principals=[iam.AnyPrincipal()],
                    conditions={"ArnEquals": {"aws:PrincipalArn": role}, "Bool": {"kms:GrantIsForAWSResource": "true"}},
                ),
            )
        self.key = kms.Key(
            self,
            "Key",
            description=f"{name}: data at rest",
            enable_key_rotation=True,
            pending_window=Duration.days(key_deletion_window_days),
            policy=policy,
            removal_policy=RemovalPolicy.RETAIN if not force_destroy else RemovalPolicy.DESTROY,
        )
        self.key.add_alias(f"alias/{name}")

        # Access logs: S3 server access logging and ALB logs only support SSE-S3 on the target bucket.
        self.logs_bucket = s3.Bucket(
            self,
            "Logs",
            bucket_name=f"{name}-logs-{account}",
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            removal_policy=removal,
            auto_delete_objects=force_destroy,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-logs",
                    expiration=Duration.days(access_log_expiration_days),
                    noncurrent_version_expiration=Duration.days(7),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
        )
        Tags.of(self.logs_bucket).add("Purpose", "access-logs")

        self.buckets: dict[str, s3.Bucket] = {}
        for key in BUCKET_KEYS:
            rules = [
                s3.LifecycleRule(
                    id="noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(noncurrent_version_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ]
            if key == "capture":
                rules.append(s3.LifecycleRule(id="expire-capture", expiration=Duration.days(capture_expiration_days)))
            if key == "artifacts":
                rules.append(
                    s3.LifecycleRule(
                        id="artifacts-to-infrequent-access",
                        transitions=[
                            s3.Transition(
                                storage_class=s3.StorageClass.INFREQUENT_ACCESS, transition_after=Duration.days(30)
                            )
                        ],
                    )
                )
            bucket = s3.Bucket(
                self,
                key.capitalize(),
                bucket_name=f"{name}-{key}-{account}",
                versioned=True,
                encryption=s3.BucketEncryption.KMS,
                encryption_key=self.key,
                bucket_key_enabled=True,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
                enforce_ssl=True,
                server_access_logs_bucket=self.logs_bucket,
                server_access_logs_prefix=f"s3/{key}/",
                lifecycle_rules=rules,
                removal_policy=removal,
                auto_delete_objects=force_destroy,
            )
            Tags.of(bucket).add("Purpose", key)
            self.buckets[key] = bucket
