"""MLflow tracking server (modules/mlflow): RDS PostgreSQL backend, ECS service, Cloud Map name, and
the basic-auth users' credentials in Secrets Manager.

The database is written with the L1 constructs on purpose: Terraform lets RDS manage the master
password in Secrets Manager (manage_master_user_password, rotated by RDS), and the L2
DatabaseInstance would instead create and own a secret of its own.
"""

from __future__ import annotations

import json
from typing import cast

from aws_cdk import CfnDeletionPolicy, Duration, RemovalPolicy
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

# MLflow's basic-auth users by role (modules/mlflow local.credentials; docs/deploy.md "Who may move an
# alias"): `workflow`, MLflow's admin and the only user that may write (register versions, move
# `champion`); `reader`, read-only, for the serving tasks and the drift check.
CREDENTIAL_USERS: dict[str, str] = {"workflow": "esteira-workflow", "reader": "esteira-reader"}
CREDENTIAL_DESCRIPTIONS: dict[str, str] = {"workflow": "admin: moves aliases", "reader": "read-only: serving"}
AUTH_DEFAULT_PERMISSIONS = ("READ", "NO_PERMISSIONS")


class MlflowCredentials(Construct):
    """Who may use the registry: the two users' {username, password} and the Flask secret key.

    Terraform creates these in modules/mlflow with passwords from an ephemeral
    aws_secretsmanager_random_password written write-only (never in the plan or the state). The
    CloudFormation counterpart is generate_secret_string: Secrets Manager generates the password when
    it creates the secret, and the template holds only the generator's settings. They are a construct
    of their own because the serving tasks (created before the MLflow server) read the reader's.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, name: str, key: kms.IKey, deletion_protection: bool
    ) -> None:
        super().__init__(scope, construct_id)
        # Terraform: recovery_window_in_days = 30 when protected, else 0 (deleted at once). CloudFormation
        # has no recovery window setting: keep the secrets when protected, delete them with the stack otherwise.
        removal = RemovalPolicy.RETAIN if deletion_protection else RemovalPolicy.DESTROY

        def secret(
            construct_id: str, secret_name: str, description: str, generator: secretsmanager.SecretStringGenerator
        ) -> secretsmanager.Secret:
            created = secretsmanager.Secret(
                self,
                construct_id,
                secret_name=secret_name,
                description=description,
                generate_secret_string=generator,
                removal_policy=removal,
            )
            # Under the stack's key, set on the L1 on purpose: given encryption_key, the L2 (and every
            # ecs.Secret grant on it) adds statements to the key policy, which Terraform keeps to its
            # three. Who reads a secret gets kms:Decrypt in its own IAM policy instead, as in Terraform.
            cast(secretsmanager.CfnSecret, created.node.default_child).kms_key_id = key.key_arn
            return created

        self.secrets: dict[str, secretsmanager.Secret] = {
            user: secret(
                user.capitalize(),
                f"{name}/mlflow/{user}",
                f"MLflow basic-auth credential {{username, password}} of the {user} ({CREDENTIAL_DESCRIPTIONS[user]})",
                secretsmanager.SecretStringGenerator(
                    secret_string_template=json.dumps({"username": username}),
                    generate_string_key="password",
                    password_length=40,
                    exclude_punctuation=True,
                ),
            )
            for user, username in CREDENTIAL_USERS.items()
        }
        self.flask = secret(
            "FlaskSecretKey",
            f"{name}/mlflow/flask-secret-key",
            "MLFLOW_FLASK_SERVER_SECRET_KEY of the MLflow basic-auth app (CSRF), read by the MLflow task only",
            secretsmanager.SecretStringGenerator(password_length=64, exclude_punctuation=True),
        )

    @property
    def workflow(self) -> secretsmanager.ISecret:
        return self.secrets["workflow"]

    @property
    def reader(self) -> secretsmanager.ISecret:
        return self.secrets["reader"]


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
        credentials: MlflowCredentials,
        image: ecs.ContainerImage,
        image_uri: str,
        model_name: str,
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
        auth_default_permission: str = "READ",
    ) -> None:
        super().__init__(scope, construct_id)
        if auth_default_permission not in AUTH_DEFAULT_PERMISSIONS:
            raise ValueError(f"auth_default_permission must be one of {AUTH_DEFAULT_PERMISSIONS}")
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
                iam.PolicyStatement(
                    sid="ReadAuthSecrets",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[
                        *(s.secret_arn for s in credentials.secrets.values()),
                        credentials.flask.secret_arn,
                    ],
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
        # docker/mlflow_start.py (in the image) syncs the two users from the injected secrets, writes
        # MLflow's auth configuration (its users in this same database) and execs
        # `mlflow server --app-name basic-auth` with these arguments.
        server_command = " ".join(
            [
                f"exec python /opt/esteira/mlflow_start.py --host 0.0.0.0 --port {MLFLOW_PORT} --workers 2",
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
                "ESTEIRA_MLFLOW_DEFAULT_PERMISSION": auth_default_permission,
                # Created by docker/mlflow_start.py at start: no signed-in user but the admin can own it.
                "ESTEIRA_MODEL_NAME": model_name,
                "TMPDIR": "/tmp",
                # The image this container runs (contract.yaml image_variable), as every container of the stack.
                contract().image_variable: image_uri,
            },
            secrets={
                "DB_PASSWORD": ecs.Secret.from_secrets_manager(secret, "password"),
                # MLflow's admin is the workflow's user; serving's is read-only (docker/mlflow_start.py).
                "MLFLOW_AUTH_ADMIN_USERNAME": ecs.Secret.from_secrets_manager(credentials.workflow, "username"),
                "MLFLOW_AUTH_ADMIN_PASSWORD": ecs.Secret.from_secrets_manager(credentials.workflow, "password"),
                "ESTEIRA_MLFLOW_READER_USERNAME": ecs.Secret.from_secrets_manager(credentials.reader, "username"),
                "ESTEIRA_MLFLOW_READER_PASSWORD": ecs.Secret.from_secrets_manager(credentials.reader, "password"),
                "MLFLOW_FLASK_SERVER_SECRET_KEY": ecs.Secret.from_secrets_manager(credentials.flask),
            },
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
