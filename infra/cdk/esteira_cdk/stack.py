"""The root stack: the same composition as infra/terraform/main.tf, module by module."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, CfnParameter, Environment, Stack, Tags
from constructs import Construct

from .boundary import apply_boundary
from .ci import DEFAULT_QUALIFIER, Ci
from .common import container_image, image_uri
from .config import EsteiraConfig
from .contract import contract
from .delivery import Delivery
from .ec2_capacity import Ec2Capacity
from .mlflow import Mlflow, MlflowCredentials
from .monitoring import Monitoring, Notifications
from .network import Network
from .registry import Registry
from .serving import Serving
from .storage import Storage
from .workflow import OUTSIDE_VPC, Ec2TrainingTask, Workflow

IMAGE_TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"


class EsteiraStack(Stack):
    """network -> storage -> registry -> serving -> mlflow -> notifications -> workflow -> monitoring -> ci."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EsteiraConfig, **kwargs: Any) -> None:
        # Region is fixed (like var.aws_region); the account comes from the credentials at deploy time.
        super().__init__(
            scope,
            construct_id,
            env=Environment(region=config.aws_region),
            description=f"esteira {config.environment}: model life cycle on AWS (CDK path; see docs/cdk.md)",
            analytics_reporting=False,
            termination_protection=config.deletion_protection,
            **kwargs,
        )
        cfg = config
        name = cfg.name
        for key, value in {
            **cfg.tags,
            "Project": cfg.project,
            "Environment": cfg.environment,
            "ManagedBy": "cdk",
        }.items():
            Tags.of(self).add(key, value)

        # A parameter, so a new release is `cdk deploy --parameters ImageTag=X` without re-synthesis.
        image_tag = CfnParameter(
            self,
            "ImageTag",
            type="String",
            default=cfg.image_tag,
            allowed_pattern=IMAGE_TAG_PATTERN,
            description="Tag of the serving, training, lambdas and mlflow images in this stack's ECR repositories",
        ).value_as_string

        # One permissions boundary on every role the app creates (Terraform: aws_iam_policy.boundary).
        apply_boundary(self, self, name=name, bootstrap_qualifier=DEFAULT_QUALIFIER)

        storage = Storage(
            self,
            "Storage",
            name=name,
            force_destroy=cfg.force_destroy,
            encrypted_volumes_for_autoscaling=bool(cfg.ec2["enabled"]),
        )
        registry = Registry(self, "Registry", name=name, key=storage.key, force_delete=cfg.force_destroy)
        repos = registry.repositories
        if cfg.registry_only:
            for repo_key, repo in repos.items():
                CfnOutput(
                    self,
                    f"Ecr{repo_key.capitalize()}Uri",
                    value=repo.repository_uri,
                    description=f"push the {repo_key} image here",
                )
            return

        network = Network(
            self,
            "Network",
            name=name,
            cidr_block=cfg.vpc_cidr,
            availability_zones=cfg.availability_zones,
            az_count=cfg.az_count,
            enable_nat_gateway=cfg.enable_nat_gateway,
            interface_endpoints=cfg.effective_interface_endpoints,
            endpoint_subnet_count=cfg.endpoint_subnet_count,
            key=storage.key,
            log_retention_days=cfg.log_retention_days,
        )
        model_uri = (
            f"models:/{cfg.model_name}@champion"
            if cfg.pinned_model_version is None
            else f"models:/{cfg.model_name}/{cfg.pinned_model_version}"
        )
        capture_s3_uri = f"s3://{storage.buckets['capture'].bucket_name}/{contract().capture_prefix}/"
        # MLflow's URI is a name (Cloud Map), known before the MLflow construct exists.
        mlflow_tracking_uri = f"http://mlflow.{name}.internal:5000"
        # modules/mlflow's users: created first, as the serving tasks read the reader's credential.
        mlflow_credentials = MlflowCredentials(
            self, "MlflowCredentials", name=name, key=storage.key, deletion_protection=cfg.deletion_protection
        )

        serving = Serving(
            self,
            "Serving",
            name=name,
            vpc=network.vpc,
            public_subnets=network.public_subnets,
            private_subnets=network.private_subnets,
            key=storage.key,
            image=container_image(repos["serving"], image_tag, cfg.serving_image_uri),
            image_uri=image_uri(repos["serving"], image_tag, cfg.serving_image_uri),
            model_uri=model_uri,
            mlflow_tracking_uri=mlflow_tracking_uri,
            mlflow_credential=mlflow_credentials.reader,
            capture_s3_uri=capture_s3_uri,
            capture_bucket=storage.buckets["capture"],
            logs_bucket=storage.logs_bucket,
            cpu=cfg.serving_cpu,
            memory=cfg.serving_memory,
            min_capacity=cfg.serving_min_capacity,
            max_capacity=cfg.serving_max_capacity,
            use_fargate_spot=cfg.use_fargate_spot,
            certificate_arn=cfg.certificate_arn,
            allowed_ingress_cidrs=cfg.allowed_ingress_cidrs,
            deletion_protection=cfg.deletion_protection,
            log_retention_days=cfg.log_retention_days,
        )
        # EC2 capacity for heavy training (off by default; docs/training-capacity.md).
        ec2_training: Ec2TrainingTask | None = None
        ec2 = cfg.ec2
        if ec2["enabled"]:
            capacity = Ec2Capacity(
                self,
                "Ec2Capacity",
                name=name,
                cluster_name=serving.cluster.cluster_name,
                vpc=network.vpc,
                private_subnets=network.private_subnets,
                instance_type=ec2["instance_type"],
                gpus=int(ec2["gpus"]),
                max_instances=int(ec2["max_instances"]),
                volume_size_gb=int(ec2["volume_size_gb"]),
                key=storage.key,
                tags={**cfg.tags, "Project": cfg.project, "Environment": cfg.environment, "ManagedBy": "cdk"},
            )
            serving.add_capacity_provider(capacity.capacity_provider.ref)
            ec2_training = Ec2TrainingTask(
                capacity_provider=capacity.capacity_provider.ref,
                cpu=int(ec2["task_cpu"]),
                memory=int(ec2["task_memory"]),
                gpus=int(ec2["gpus"]),
            )
        mlflow = Mlflow(
            self,
            "Mlflow",
            name=name,
            vpc=network.vpc,
            private_subnets=network.private_subnets,
            cluster=serving.cluster,
            key=storage.key,
            artifacts_bucket=storage.buckets["artifacts"],
            credentials=mlflow_credentials,
            image=container_image(repos["mlflow"], image_tag, cfg.mlflow_image_uri),
            image_uri=image_uri(repos["mlflow"], image_tag, cfg.mlflow_image_uri),
            model_name=cfg.model_name,
            db_instance_class=cfg.mlflow_db_instance_class,
            db_multi_az=cfg.mlflow_db_multi_az,
            deletion_protection=cfg.deletion_protection,
            log_retention_days=cfg.log_retention_days,
        )
        assert mlflow.tracking_uri == mlflow_tracking_uri
        serving.register_canary(mlflow.namespace)
        notifications = Notifications(self, "Notifications", name=name, key=storage.key, alarm_emails=cfg.alarm_emails)
        training_image_uri = image_uri(repos["training"], image_tag, cfg.training_image_uri)
        workflow = Workflow(
            self,
            "Workflow",
            name=name,
            vpc=network.vpc,
            private_subnets=network.private_subnets,
            key=storage.key,
            lambda_repository=repos["lambdas"],
            image_tag=image_tag,
            lambda_image_uri=cfg.lambda_image_uri,
            lambda_image_asset=cfg.lambda_image_asset,
            training_image=container_image(repos["training"], image_tag, cfg.training_image_uri),
            training_image_uri=training_image_uri,
            training_backend=cfg.training_backend,
            ec2_training=ec2_training,
            outside_vpc=OUTSIDE_VPC if cfg.smoke_test_outside_vpc else frozenset(),
            cluster=serving.cluster,
            serving_service_name=serving.service.service_name,
            serving_task_family=serving.task_definition.family,
            serving_roles=[serving.task_role, serving.execution_role],
            serving_url=serving.url,
            canary_service_name=serving.canary_service.service_name,
            listener_arn=serving.listener.listener_arn,
            stable_target_group_arn=serving.target_group.target_group_arn,
            canary_target_group_arn=serving.canary_target_group.target_group_arn,
            deployment_strategy=cfg.deployment_strategy,
            canary_steps=list(cfg.canary_steps),
            canary_bake_seconds=cfg.canary_bake_seconds,
            shadow_seconds=cfg.shadow_seconds,
            canary_thresholds=dict(cfg.canary_thresholds),
            buckets=dict(storage.buckets),
            capture_s3_uri=capture_s3_uri,
            mlflow_tracking_uri=mlflow_tracking_uri,
            mlflow_credentials={"workflow": mlflow_credentials.workflow, "reader": mlflow_credentials.reader},
            model_name=cfg.model_name,
            sns_topic_arn=notifications.topic.topic_arn,
            retrain_cooldown_seconds=cfg.retrain_cooldown_seconds,
            extra_environment=cfg.lambda_extra_environment,
            deletion_protection=cfg.deletion_protection,
            log_retention_days=cfg.log_retention_days,
        )
        monitoring = Monitoring(
            self,
            "Monitoring",
            name=name,
            topic=notifications.topic,
            cluster_name=serving.cluster.cluster_name,
            service_name=serving.service.service_name,
            alb_full_name=serving.alb.load_balancer_full_name,
            target_group_full_name=serving.target_group.target_group_full_name,
            state_machine_arn=workflow.state_machine.state_machine_arn,
            retrain_trigger=workflow.functions["retrain_trigger"],
            drift_check=workflow.functions["drift_check"],
            drift_check_schedule=cfg.drift_check_schedule,
        )
        ci = None
        if cfg.enable_ci:
            ci = Ci(
                self,
                "Ci",
                name=name,
                github_repository=cfg.github_repository,
                github_environment=cfg.github_environment,
                create_oidc_provider=cfg.create_oidc_provider,
                oidc_provider_arn=cfg.oidc_provider_arn,
                state_machine_name=workflow.state_machine_name,
                key=storage.key,
            )
        # delivery = "codepipeline": Jenkins' release zip -> CodePipeline (approval in prod) -> CodeBuild
        # -> the state machine (docs/delivery.md). "github" (default): deploy.yml, no resources.
        delivery = None
        if cfg.delivery == "codepipeline":
            assert ci is not None  # config validation: codepipeline needs enable_ci
            delivery = Delivery(
                self,
                "Delivery",
                name=name,
                environment=cfg.environment,
                release_object_key=cfg.release_object_key,
                key=storage.key,
                sns_topic_arn=notifications.topic.topic_arn,
                state_machine_arn=workflow.state_machine.state_machine_arn,
                state_machine_name=workflow.state_machine_name,
                deploy_statements=ci.deploy_statements(),
                state_bucket=cfg.state_bucket,
                force_destroy=cfg.force_destroy,
                log_retention_days=cfg.log_retention_days,
            )

        # ---- outputs (Terraform's outputs.tf)
        outputs: dict[str, tuple[str, str]] = {
            "ServingUrl": (serving.url, "Base URL of the inference service (ALB)"),
            "MlflowTrackingUri": (mlflow_tracking_uri, "MLflow tracking URI (private: reachable inside the VPC only)"),
            "MlflowCredentialSecretArns": (
                self.to_json_string(
                    {"workflow": mlflow_credentials.workflow.secret_arn, "reader": mlflow_credentials.reader.secret_arn}
                ),
                "Secrets Manager secrets {username, password} of MLflow's users: workflow (MLflow's admin, the only "
                "one that moves aliases) and reader (read-only) (JSON)",
            ),
            "EcsClusterName": (serving.cluster.cluster_name, "ECS cluster running serving, MLflow and training tasks"),
            "ServingServiceName": (serving.service.service_name, "ECS service of the inference service"),
            "StateMachineArn": (workflow.state_machine.state_machine_arn, "Train-evaluate-deploy state machine"),
            "ReleaseStateMachineArn": (
                workflow.release_state_machine.state_machine_arn,
                "Release state machine the workflow starts for each release (all-at-once, canary or shadow)",
            ),
            "SnsTopicArn": (notifications.topic.topic_arn, "Notification topic for alarms and workflow results"),
            "DashboardName": (monitoring.dashboard.ref, "CloudWatch dashboard"),
            "KmsKeyArn": (storage.key.key_arn, "KMS key encrypting data at rest"),
            "EcrRepositoryUrls": (
                self.to_json_string({k: r.repository_uri for k, r in repos.items()}),
                "ECR repositories (JSON)",
            ),
            "BucketNames": (
                self.to_json_string({k: b.bucket_name for k, b in storage.buckets.items()}),
                "S3 buckets (JSON)",
            ),
            "LambdaFunctionNames": (
                self.to_json_string({k: f.function_name for k, f in workflow.functions.items()}),
                "Workflow Lambda names by key (JSON)",
            ),
        }
        if ci is not None:
            outputs["GithubDeployRoleArn"] = (
                ci.deploy_role.role_arn,
                "Role GitHub Actions assumes (environment jobs) to run cdk deploy",
            )
            outputs["GithubPlanRoleArn"] = (
                ci.plan_role.role_arn,
                "Read-only role GitHub Actions assumes on pull requests (cdk diff)",
            )
            outputs["GithubTrainRoleArn"] = (
                ci.train_role.role_arn,
                "Role train.yml assumes: start the state machine and describe its executions",
            )
        if delivery is not None:
            outputs["DeliveryPipelineName"] = (
                delivery.pipeline_name,
                "The CodePipeline that applies releases (delivery = codepipeline)",
            )
            outputs["ReleaseObject"] = (
                self.to_json_string(delivery.release_object),
                "Where Jenkins puts the release zip (make publish-release RELEASE_BUCKET=<bucket> RELEASE_KEY=<key>): "
                "{bucket, key, uri} (JSON)",
            )
        for output_id, (value, description) in outputs.items():
            CfnOutput(self, output_id, value=value, description=description)
