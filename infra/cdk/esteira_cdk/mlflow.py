"""MLflow tracking server (modules/mlflow): RDS PostgreSQL backend, ECS service, Cloud Map name.

The database is written with the L1 constructs on purpose: Terraform lets RDS manage the master
password in Secrets Manager (manage_master_user_password, rotated by RDS), and the L2
DatabaseInstance would instead create and own a secret of its own.
"""

from __future__ import annotations

from aws_cdk import CfnDeletionPolicy, Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_servicediscovery as servicediscovery
from constructs import Construct

from .common import ecs_tasks_role, inline_policy, log_group
from .contract import contract

MLFLOW_PORT = 5000
DB_NAME = "mlflow"
DB_USER = "mlflow"


class Mlflow(Construct):
    """Private MLflow server reachable as mlflow.<namespace>:5000 from inside the VPC."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        vpc: ec2.IVpc,
        private_subnets: ec2.SubnetSelection,
        cluster: ecs.ICluster,
        key: kms.IKey,
        artifacts_bucket: s3.IBucket,
        image: ecs.ContainerImage,
        image_uri: str,
        db_instance_class: str,
        db_multi_az: bool,
        deletion_protection: bool,
        log_retention_days: int,
        cpu: int = 512,
        memory: int = 1024,
        desired_count: int = 1,
        db_engine_version: str = "17",
        db_allocated_storage: int = 20,
        db_backup_retention_days: int = 7,
        db_performance_insights: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)
        namespace_name = f"{name}.internal"
        host = f"mlflow.{namespace_name}"
        self.tracking_uri = f"http://{host}:{MLFLOW_PORT}"
        major = db_engine_version.split(".")[0]

        # ---- security groups
        self.mlflow_sg = ec2.SecurityGroup(
            self,
            "MlflowSg",
            vpc=vpc,
            security_group_name=f"{name}-mlflow",
            description="MLflow tracking server: port 5000 from inside the VPC",
            allow_all_outbound=False,
        )
        self.mlflow_sg.add_ingress_rule(
            ec2.Peer.ipv4(vpc.vpc_cidr_block),
            ec2.Port.tcp(MLFLOW_PORT),
            "MLflow API from the VPC (serving, training, Lambdas)",
        )
        self.mlflow_sg.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs (S3 artifacts, Secrets Manager, ECR, Logs)"
        )
        db_sg = ec2.SecurityGroup(
            self,
            "DbSg",
            vpc=vpc,
            security_group_name=f"{name}-mlflow-db",
            description="PostgreSQL for MLflow: from the MLflow tasks only",
            allow_all_outbound=False,
        )
        # One call: PostgreSQL ingress on the DB group and the matching egress on the MLflow group.
        db_sg.connections.allow_from(self.mlflow_sg, ec2.Port.tcp(5432), "PostgreSQL from MLflow tasks")

        # ---- PostgreSQL backend store; RDS manages the master password in Secrets Manager
        subnet_group = rds.CfnDBSubnetGroup(
            self,
            "DbSubnetGroup",
            db_subnet_group_name=f"{name}-mlflow",
            db_subnet_group_description=f"{name} MLflow database subnets",
            subnet_ids=vpc.select_subnets(subnet_group_name=private_subnets.subnet_group_name).subnet_ids,
        )
        parameter_group = rds.CfnDBParameterGroup(
            self,
            "DbParameters",
            db_parameter_group_name=f"{name}-mlflow-pg{major}",
            family=f"postgres{major}",
            description=f"{name} MLflow PostgreSQL {major}",
            parameters={"rds.force_ssl": "1", "log_statement": "ddl", "log_min_duration_statement": "1000"},
        )
        self.db = rds.CfnDBInstance(
            self,
            "Db",
            db_instance_identifier=f"{name}-mlflow",
            engine="postgres",
            engine_version=db_engine_version,
            db_instance_class=db_instance_class,
            allocated_storage=str(db_allocated_storage),
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=key.key_arn,
            db_name=DB_NAME,
            master_username=DB_USER,
            manage_master_user_password=True,
            master_user_secret=rds.CfnDBInstance.MasterUserSecretProperty(kms_key_id=key.key_arn),
            enable_iam_database_authentication=True,
            db_subnet_group_name=subnet_group.ref,
            db_parameter_group_name=parameter_group.ref,
            vpc_security_groups=[db_sg.security_group_id],
            publicly_accessible=False,
            multi_az=db_multi_az,
            backup_retention_period=db_backup_retention_days,
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            deletion_protection=deletion_protection,
            enable_cloudwatch_logs_exports=["postgresql", "upgrade"],
            enable_performance_insights=db_performance_insights,
            performance_insights_kms_key_id=key.key_arn if db_performance_insights else None,
        )
        # Terraform: final snapshot when protected, none otherwise.
        policy = CfnDeletionPolicy.SNAPSHOT if deletion_protection else CfnDeletionPolicy.DELETE
        self.db.cfn_options.deletion_policy = policy
        self.db.cfn_options.update_replace_policy = policy
        # cfn-lint's table of PostgreSQL versions lists only full versions and reports the major-only
        # "17" (Terraform's value too) as deprecated; RDS resolves it to the newest 17.x minor.
        self.db.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3691"]}})
        secret_arn = self.db.attr_master_user_secret_secret_arn
        self.db_secret_arn = secret_arn

        # ---- Cloud Map: mlflow.<name>.internal
        self.namespace = servicediscovery.PrivateDnsNamespace(
            self, "Namespace", name=namespace_name, vpc=vpc, description=f"Private service names for {name}"
        )
        discovery = self.namespace.create_service(
            "Discovery",
            name="mlflow",
            dns_record_type=servicediscovery.DnsRecordType.A,
            dns_ttl=Duration.seconds(10),
            routing_policy=servicediscovery.RoutingPolicy.MULTIVALUE,
        )

        # ---- IAM
        execution_role = ecs_tasks_role(self, "ExecutionRole", f"{name}-mlflow-exec", execution=True)
        inline_policy(
            self,
            "ExecutionSecretPolicy",
            "read-db-secret",
            execution_role,
            [
                iam.PolicyStatement(
                    sid="ReadDatabaseSecret", actions=["secretsmanager:GetSecretValue"], resources=[secret_arn]
                ),
                iam.PolicyStatement(sid="DecryptDatabaseSecret", actions=["kms:Decrypt"], resources=[key.key_arn]),
            ],
        )
        task_role = ecs_tasks_role(self, "TaskRole", f"{name}-mlflow-task", execution=False)
        inline_policy(
            self,
            "TaskPolicy",
            "mlflow-artifacts",
            task_role,
            [
                iam.PolicyStatement(
                    sid="ListArtifacts", actions=["s3:ListBucket"], resources=[artifacts_bucket.bucket_arn]
                ),
                iam.PolicyStatement(
                    sid="ReadWriteArtifacts",
                    actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                    resources=[artifacts_bucket.arn_for_objects("mlflow/*")],
                ),
                iam.PolicyStatement(
                    sid="UseDataKey", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]
                ),
            ],
        )

        # ---- task definition and service
        logs_group = log_group(self, "Logs", name=f"/esteira/{name}/mlflow", key=key, days=log_retention_days)
        task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            family=f"{name}-mlflow",
            cpu=cpu,
            memory_limit_mib=memory,
            execution_role=execution_role,
            task_role=task_role,
            volumes=[ecs.Volume(name="tmp")],
        )
        # The RDS-managed password may contain URL-reserved characters: quote it before building the URI.
        server_command = " ".join(
            [
                f"exec mlflow server --host 0.0.0.0 --port {MLFLOW_PORT} --workers 2",
                # $VAR, not ${VAR}: same shell expansion, and CloudFormation linters do not mistake it
                # for an Fn::Sub parameter.
                '--backend-store-uri "postgresql://$DB_USER:'
                '$(python -c \'import os,urllib.parse;print(urllib.parse.quote(os.environ["DB_PASSWORD"],safe=""))\')'
                '@$DB_HOST:$DB_PORT/$DB_NAME?sslmode=require"',
                f"--artifacts-destination s3://{artifacts_bucket.bucket_name}/mlflow --serve-artifacts",
            ]
        )
        secret = secretsmanager.Secret.from_secret_complete_arn(self, "DbSecret", secret_arn)
        container = task_definition.add_container(
            "mlflow",
            container_name="mlflow",
            image=image,
            essential=True,
            readonly_root_filesystem=True,
            entry_point=["sh", "-c"],
            command=[server_command],
            port_mappings=[ecs.PortMapping(container_port=MLFLOW_PORT, protocol=ecs.Protocol.TCP)],
            environment={
                "DB_HOST": self.db.attr_endpoint_address,
                "DB_PORT": self.db.attr_endpoint_port,
                "DB_NAME": DB_NAME,
                "DB_USER": DB_USER,
                "MLFLOW_SERVER_ALLOWED_HOSTS": f"{host},{host}:{MLFLOW_PORT},localhost,localhost:{MLFLOW_PORT}",
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                "TMPDIR": "/tmp",
                # The image this container runs (contract.yaml image_variable), as every container of the stack.
                contract().image_variable: image_uri,
            },
            secrets={"DB_PASSWORD": ecs.Secret.from_secrets_manager(secret, "password")},
            logging=ecs.LogDrivers.aws_logs(stream_prefix="mlflow", log_group=logs_group),
        )
        container.add_mount_points(ecs.MountPoint(source_volume="tmp", container_path="/tmp", read_only=False))
        self.service = ecs.FargateService(
            self,
            "Service",
            service_name="esteira-mlflow",
            cluster=cluster,
            task_definition=task_definition,
            desired_count=desired_count,
            platform_version=ecs.FargatePlatformVersion.LATEST,
            # ECS's own defaults for a replica service (what Terraform gets by leaving them unset).
            min_healthy_percent=100,
            max_healthy_percent=200,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            vpc_subnets=private_subnets,
            security_groups=[self.mlflow_sg],
            assign_public_ip=False,
        )
        self.service.associate_cloud_map_service(service=discovery)
