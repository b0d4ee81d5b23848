"""ECS cluster, ALB and the inference service (modules/serving), with the deployment circuit breaker."""

from __future__ import annotations

import jsii
from aws_cdk import Aspects, Duration, IAspect
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_servicediscovery as servicediscovery
from constructs import Construct, IConstruct

from .common import ecs_tasks_role, inline_policy, log_group
from .contract import contract, require_same

SERVICE_NAME = contract().serving_service_name
CONTAINER_PORT = 8080
METRICS_NAMESPACE = contract().metrics_namespace


class Serving(Construct):
    """The inference service behind a public ALB; tasks run in private subnets with no public IP."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        vpc: ec2.IVpc,
        public_subnets: ec2.SubnetSelection,
        private_subnets: ec2.SubnetSelection,
        key: kms.IKey,
        image: ecs.ContainerImage,
        image_uri: str,
        model_uri: str,
        mlflow_tracking_uri: str,
        mlflow_credential: secretsmanager.ISecret,
        capture_s3_uri: str,
        capture_bucket: s3.IBucket,
        logs_bucket: s3.IBucket,
        cpu: int,
        memory: int,
        min_capacity: int,
        max_capacity: int,
        use_fargate_spot: bool,
        certificate_arn: str | None,
        allowed_ingress_cidrs: list[str],
        deletion_protection: bool,
        log_retention_days: int,
        extra_environment: dict[str, str] | None = None,
        health_check_path: str = "/ready",
        cpu_target_percent: int = 60,
        requests_per_target: int = 30000,
    ) -> None:
        super().__init__(scope, construct_id)
        https = certificate_arn is not None
        self._extra_capacity_providers: list[str] = []

        # ---- cluster (also hosts MLflow and the training task)
        exec_logs = log_group(self, "ExecLogs", name=f"/esteira/{name}/ecs-exec", key=key, days=log_retention_days)
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            cluster_name=name,
            vpc=vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            enable_fargate_capacity_providers=True,
            execute_command_configuration=ecs.ExecuteCommandConfiguration(
                kms_key=key,
                logging=ecs.ExecuteCommandLogging.OVERRIDE,
                log_configuration=ecs.ExecuteCommandLogConfiguration(
                    cloud_watch_log_group=exec_logs, cloud_watch_encryption_enabled=True
                ),
            ),
        )
        self.cluster.add_default_capacity_provider_strategy(
            [
                ecs.CapacityProviderStrategy(
                    capacity_provider="FARGATE_SPOT" if use_fargate_spot else "FARGATE", weight=1
                )
            ]
        )

        # ---- IAM: the execution role pulls images and writes logs; the task role is what the code may do
        self.execution_role = ecs_tasks_role(self, "ExecutionRole", f"{name}-serving-exec", execution=True)
        # ECS reads MLflow's read-only credential for the container (its `secrets`) with the execution role;
        # the secret is under the stack's key. The service may read the registry, never move an alias.
        execution_policy = inline_policy(
            self,
            "ExecutionPolicy",
            "serving-secrets",
            self.execution_role,
            [
                iam.PolicyStatement(
                    sid="ReadMlflowReaderCredential",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[mlflow_credential.secret_arn],
                ),
                iam.PolicyStatement(
                    sid="DecryptMlflowReaderCredential", actions=["kms:Decrypt"], resources=[key.key_arn]
                ),
            ],
        )
        self.task_role = ecs_tasks_role(self, "TaskRole", f"{name}-serving-task", execution=False)
        task_policy = inline_policy(
            self,
            "TaskPolicy",
            "serving",
            self.task_role,
            [
                iam.PolicyStatement(
                    sid="CaptureInference", actions=["s3:PutObject"], resources=[capture_bucket.arn_for_objects("*")]
                ),
                # The model comes from MLflow over HTTP (the server proxies its artifact store): no S3 read.
                iam.PolicyStatement(sid="UseDataKey", actions=["kms:GenerateDataKey"], resources=[key.key_arn]),
            ],
        )

        # ---- task definition
        serving_logs = log_group(self, "Logs", name=f"/esteira/{name}/serving", key=key, days=log_retention_days)
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            family=f"{name}-serving",
            cpu=cpu,
            memory_limit_mib=memory,
            execution_role=self.execution_role,
            task_role=self.task_role,
            runtime_platform=ecs.RuntimePlatform(
                operating_system_family=ecs.OperatingSystemFamily.LINUX, cpu_architecture=ecs.CpuArchitecture.X86_64
            ),
            # The root filesystem is read-only; the service may write scratch files to /tmp only.
            volumes=[ecs.Volume(name="tmp")],
        )
        # Exactly contract.yaml's serving_environment (checked below); extra_environment only adds names.
        contract_environment = {
            "ESTEIRA_MODEL_URI": model_uri,
            "MLFLOW_TRACKING_URI": mlflow_tracking_uri,
            "ESTEIRA_CAPTURE_S3_URI": capture_s3_uri,
            "METRICS_NAMESPACE": METRICS_NAMESPACE,
            "ESTEIRA_SERVICE_NAME": SERVICE_NAME,
            "ESTEIRA_SERVING_PORT": str(CONTAINER_PORT),
            # Shadow releases: every task copies its traffic here while a candidate with ESTEIRA_SERVING_ROLE=shadow
            # answers.
            "ESTEIRA_SHADOW_URL": f"http://canary.{name}.internal:{CONTAINER_PORT}",
        }
        require_same("serving environment names", contract_environment, contract().serving_environment)
        # Plus the image the container runs, as contract.yaml image_variable: every container of the
        # stack gets it with its own image, so it is not in serving_environment.
        environment = {**(extra_environment or {}), **contract_environment, contract().image_variable: image_uri}
        container = self.task_definition.add_container(
            "serving",
            container_name="serving",
            image=image,
            essential=True,
            readonly_root_filesystem=True,
            port_mappings=[ecs.PortMapping(container_port=CONTAINER_PORT, protocol=ecs.Protocol.TCP)],
            environment=dict(sorted(environment.items())),
            # MLflow's clients read these natively: the read-only user (Mlflow construct, docs/deploy.md).
            secrets={
                "MLFLOW_TRACKING_USERNAME": ecs.Secret.from_secrets_manager(mlflow_credential, "username"),
                "MLFLOW_TRACKING_PASSWORD": ecs.Secret.from_secrets_manager(mlflow_credential, "password"),
            },
            logging=ecs.LogDrivers.aws_logs(stream_prefix="serving", log_group=serving_logs),
        )
        container.add_mount_points(ecs.MountPoint(source_volume="tmp", container_path="/tmp", read_only=False))

        # ---- security groups: ALB from allowed clients; tasks from the ALB only
        self.alb_sg = ec2.SecurityGroup(
            self,
            "AlbSg",
            vpc=vpc,
            security_group_name=f"{name}-alb",
            description="Public entry to the inference service",
            allow_all_outbound=False,
        )
        for cidr in allowed_ingress_cidrs:
            for port in [80, 443] if https else [80]:
                self.alb_sg.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(port), "HTTP(S) from allowed clients")
        self.tasks_sg = ec2.SecurityGroup(
            self,
            "TasksSg",
            vpc=vpc,
            security_group_name=f"{name}-serving-tasks",
            description="Serving tasks: from the ALB only",
            allow_all_outbound=False,
        )
        self.tasks_sg.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs (VPC endpoints, S3 gateway)"
        )
        self.tasks_sg.add_egress_rule(
            ec2.Peer.ipv4(vpc.vpc_cidr_block), ec2.Port.tcp(5000), "MLflow tracking server inside the VPC"
        )

        # ---- load balancer
        self.alb = elbv2.ApplicationLoadBalancer(
            self,
            "Alb",
            load_balancer_name=f"{name}-serving",
            vpc=vpc,
            internet_facing=True,
            vpc_subnets=public_subnets,
            security_group=self.alb_sg,
            drop_invalid_header_fields=True,
            deletion_protection=deletion_protection,
        )
        self.alb.log_access_logs(logs_bucket, prefix="alb")
        self.target_group = elbv2.ApplicationTargetGroup(
            self,
            "TargetGroup",
            target_group_name=f"{name}-serving",
            vpc=vpc,
            port=CONTAINER_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            deregistration_delay=Duration.seconds(30),
            health_check=elbv2.HealthCheck(
                path=health_check_path,
                healthy_http_codes="200",
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )
        # The candidate's group for canary and shadow releases; the listener forwards to both with weights
        # (stable 100, canary 0) and the release workflow moves them with ModifyListener (docs/canary.md).
        self.canary_target_group = elbv2.ApplicationTargetGroup(
            self,
            "CanaryTargetGroup",
            target_group_name=f"{name}-canary",
            vpc=vpc,
            port=CONTAINER_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            deregistration_delay=Duration.seconds(30),
            health_check=elbv2.HealthCheck(
                path=health_check_path,
                healthy_http_codes="200",
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )
        weighted = elbv2.ListenerAction.weighted_forward(
            [
                elbv2.WeightedTargetGroup(target_group=self.target_group, weight=100),
                elbv2.WeightedTargetGroup(target_group=self.canary_target_group, weight=0),
            ]
        )
        if certificate_arn is not None:
            self.alb.add_redirect(
                source_port=80,
                source_protocol=elbv2.ApplicationProtocol.HTTP,
                target_port=443,
                target_protocol=elbv2.ApplicationProtocol.HTTPS,
                open=False,
            )
            self.alb.add_listener(
                "Https",
                port=443,
                protocol=elbv2.ApplicationProtocol.HTTPS,
                ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,  # ELBSecurityPolicy-TLS13-1-2-2021-06, as Terraform
                certificates=[elbv2.ListenerCertificate.from_arn(certificate_arn)],
                default_action=weighted,
                open=False,
            )
        else:
            self.alb.add_listener(
                "Http",
                port=80,
                protocol=elbv2.ApplicationProtocol.HTTP,
                default_action=weighted,
                open=False,
            )
        self.listener = self.alb.listeners[-1]
        self.url = f"{'https' if https else 'http'}://{self.alb.load_balancer_dns_name}"

        # ---- service: rolling deploys with the circuit breaker rolling a failed deployment back
        self.service = ecs.FargateService(
            self,
            "Service",
            service_name=SERVICE_NAME,
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=min_capacity,
            platform_version=ecs.FargatePlatformVersion.LATEST,
            health_check_grace_period=Duration.seconds(60),
            min_healthy_percent=100,
            max_healthy_percent=200,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
            enable_ecs_managed_tags=True,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            vpc_subnets=private_subnets,
            security_groups=[self.tasks_sg],
            assign_public_ip=False,
            capacity_provider_strategies=(
                [ecs.CapacityProviderStrategy(capacity_provider="FARGATE_SPOT", weight=1)] if use_fargate_spot else None
            ),
        )
        # Adds the ALB -> tasks ingress and egress rules on the container port (Terraform's two rules).
        self.target_group.add_target(self.service)
        self.service.node.add_dependency(task_policy, execution_policy)

        # ---- the candidate's service: empty except while a canary or shadow release runs
        self.canary_service = ecs.FargateService(
            self,
            "CanaryService",
            service_name=f"{SERVICE_NAME}-canary",
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=0,
            platform_version=ecs.FargatePlatformVersion.LATEST,
            health_check_grace_period=Duration.seconds(60),
            min_healthy_percent=100,
            max_healthy_percent=200,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
            enable_ecs_managed_tags=True,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            vpc_subnets=private_subnets,
            security_groups=[self.tasks_sg],
            assign_public_ip=False,
            capacity_provider_strategies=(
                [ecs.CapacityProviderStrategy(capacity_provider="FARGATE_SPOT", weight=1)] if use_fargate_spot else None
            ),
        )
        self.canary_target_group.add_target(self.canary_service)
        self.canary_service.node.add_dependency(task_policy, execution_policy)
        # Shadow copies go from the serving tasks to the canary service's tasks directly (Cloud Map).
        self.tasks_sg.add_ingress_rule(
            self.tasks_sg, ec2.Port.tcp(CONTAINER_PORT), "Shadow copies from the stable serving tasks"
        )
        self.tasks_sg.add_egress_rule(
            self.tasks_sg, ec2.Port.tcp(CONTAINER_PORT), "Shadow copies to the canary serving tasks"
        )

        # ---- autoscaling on CPU and on ALB requests per task
        scaling = self.service.auto_scale_task_count(
            min_capacity=min_capacity, max_capacity=max(max_capacity, min_capacity)
        )
        scaling.scale_on_cpu_utilization(
            "Cpu",
            policy_name=f"{name}-serving-cpu",
            target_utilization_percent=cpu_target_percent,
            scale_in_cooldown=Duration.seconds(300),
            scale_out_cooldown=Duration.seconds(60),
        )
        scaling.scale_on_request_count(
            "Requests",
            policy_name=f"{name}-serving-requests",
            requests_per_target=requests_per_target,
            target_group=self.target_group,
            scale_in_cooldown=Duration.seconds(300),
            scale_out_cooldown=Duration.seconds(60),
        )
        self.log_group = serving_logs

    def add_capacity_provider(self, capacity_provider: str) -> None:
        """A capacity provider besides FARGATE and FARGATE_SPOT (the EC2 training capacity); the default
        strategy stays Fargate (modules/serving extra_capacity_providers).

        ecs.Cluster writes its capacity-provider association in an aspect at synthesis and only takes
        Fargate or an L2 AsgCapacityProvider: a second aspect adds this one to the same association.
        """
        if not self._extra_capacity_providers:
            Aspects.of(self.cluster).add(_ExtraCapacityProviders(self._extra_capacity_providers))
        self._extra_capacity_providers.append(capacity_provider)

    def register_canary(self, namespace: servicediscovery.IPrivateDnsNamespace) -> None:
        """canary.<namespace>: A records of the canary service's tasks, the ESTEIRA_SHADOW_URL of every serving task.

        Called once the namespace exists (the MLflow construct creates it, after this one)."""
        discovery = namespace.create_service(
            "CanaryDiscovery",
            name="canary",
            dns_record_type=servicediscovery.DnsRecordType.A,
            dns_ttl=Duration.seconds(10),
            routing_policy=servicediscovery.RoutingPolicy.MULTIVALUE,
        )
        self.canary_service.associate_cloud_map_service(service=discovery)


@jsii.implements(IAspect)
class _ExtraCapacityProviders:
    def __init__(self, providers: list[str]) -> None:
        self.providers = providers

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, ecs.CfnClusterCapacityProviderAssociations):
            node.add_property_override("CapacityProviders", ["FARGATE", "FARGATE_SPOT", *self.providers])
