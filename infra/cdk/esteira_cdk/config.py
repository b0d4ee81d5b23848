"""Deployment settings of the CDK app: the Terraform root module's variables, under the same names.

Why one dataclass with the Terraform names: both paths read the *same* environment files
(infra/terraform/envs/<env>.tfvars), so a team switching from Terraform to CDK (or back) keeps one
set of settings, and a parity test compares these defaults with infra/terraform/variables.tf.
Validation mirrors the Terraform `validation` blocks so a bad value fails at synth, not at deploy.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
TFVARS_DIR = REPO_ROOT / "infra" / "terraform" / "envs"

# Terraform variables with no meaning in CloudFormation (listed so the settings-parity test knows).
TERRAFORM_ONLY_VARIABLES = {
    "aws_endpoint_url": "Provider endpoint override for emulators; CDK synthesises offline and never calls AWS.",
    "mlflow_credential_version": (
        "Tells Terraform when to write its write-only MLflow passwords again. CloudFormation generates each "
        "value once, when it creates the secret (GenerateSecretString); rotate with `aws secretsmanager "
        "put-secret-value` and a new deployment of the MLflow service (docs/deploy.md)."
    ),
}

_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

# The AWS APIs the stack's compute calls from the private subnets, by interface endpoint, and who calls
# them (infra/terraform/main.tf local.private_aws_apis). Without a NAT gateway each needs its endpoint.
PRIVATE_AWS_APIS: dict[str, str] = {
    "ecr.api": "image pulls of the Fargate tasks (serving, MLflow, training)",
    "ecr.dkr": "image pulls of the Fargate tasks",
    "logs": "awslogs of the Fargate tasks; SageMaker training logs in VPC mode",
    "secretsmanager": "the MLflow users' credentials and database password (ECS secrets, the workflow Lambdas)",
    "ecs": "deploy, service_stable, rollback and canary_check Lambdas",
    "elasticloadbalancing": "canary_check Lambda: listener weights and the shadow tag",
    "monitoring": "drift_check and canary_check Lambdas; SageMaker training metrics in VPC mode",
    "states": "retrain_trigger Lambda: StartExecution",
    "sns": "drift_check Lambda: the notice when a drift retrain did not absorb the shift",
}


# The ECS agent of the EC2 training hosts registers and reports through these (main.tf
# local.ec2_training_apis): without a NAT gateway they are added to the interface endpoints.
EC2_TRAINING_APIS: dict[str, str] = {
    "ecs-agent": "the ECS agent of the EC2 training hosts (ec2_training)",
    "ecs-telemetry": "the ECS agent's metrics of the EC2 training hosts (ec2_training)",
}

# Terraform's ec2_training object: its optional attributes and their defaults (variables.tf).
EC2_TRAINING_DEFAULTS: dict[str, Any] = {
    "enabled": False,
    "instance_type": "m6i.8xlarge",
    "gpus": 0,
    "max_instances": 1,
    "volume_size_gb": 100,
    "task_cpu": 30720,
    "task_memory": 114688,
}


class ConfigError(ValueError):
    """A setting is invalid; raised at synth time with the setting's name."""


@dataclass(frozen=True)
class EsteiraConfig:
    """Every setting of the deployment; defaults equal infra/terraform/variables.tf."""

    environment: str
    aws_region: str = "us-east-1"
    project: str = "esteira"
    tags: dict[str, str] = field(default_factory=dict)
    # network
    vpc_cidr: str = "10.40.0.0/16"
    availability_zones: list[str] = field(default_factory=list)
    az_count: int = 2
    enable_nat_gateway: bool = False
    interface_endpoints: list[str] = field(
        default_factory=lambda: [
            "ecr.api",
            "ecr.dkr",
            "logs",
            "secretsmanager",
            "ecs",
            "elasticloadbalancing",
            "states",
            "monitoring",
            "sns",
        ]
    )
    endpoint_subnet_count: int = 2
    # images
    image_tag: str = "0.1.0"
    serving_image_uri: str | None = None
    training_image_uri: str | None = None
    lambda_image_uri: str | None = None
    mlflow_image_uri: str | None = None
    # model and serving
    model_name: str = "esteira-intent"
    pinned_model_version: int | None = None
    serving_cpu: int = 1024
    serving_memory: int = 2048
    serving_min_capacity: int = 2
    serving_max_capacity: int = 6
    use_fargate_spot: bool = False
    certificate_arn: str | None = None
    allowed_ingress_cidrs: list[str] = field(default_factory=lambda: ["0.0.0.0/0"])
    # MLflow
    mlflow_db_instance_class: str = "db.t4g.small"
    mlflow_db_multi_az: bool = True
    # workflow and monitoring
    training_backend: str = "ecs"
    # EC2 capacity for heavy training (docs/training-capacity.md), off by default: Terraform's object
    # with optional attributes (EC2_TRAINING_DEFAULTS); read the resolved values from `ec2`.
    ec2_training: dict[str, Any] = field(default_factory=dict)
    smoke_test_outside_vpc: bool = True  # it only calls the internet-facing ALB (no NAT by default)
    retrain_cooldown_seconds: int = 21600
    drift_check_schedule: str = "rate(1 hour)"
    alarm_emails: list[str] = field(default_factory=list)
    lambda_extra_environment: dict[str, str] = field(default_factory=dict)
    # releases (docs/canary.md); canary_thresholds keep the Lambda's documented defaults here
    deployment_strategy: str = "all_at_once"
    canary_steps: list[int] = field(default_factory=lambda: [10, 50, 100])
    canary_bake_seconds: int = 600
    shadow_seconds: int = 1800
    # Live bars (max_5xx_rate, max_5xx_count, max_p99_ms, max_low_confidence_rate, max_prediction_drift,
    # min_requests); unset keys keep the defaults of modules/workflow's canary_thresholds.
    canary_thresholds: dict[str, float] = field(default_factory=dict)
    # CI (GitHub OIDC)
    enable_ci: bool = True
    github_repository: str = "esteira-mlops/esteira"
    github_environment: str = "production"  # the environment deploy.yml's apply job runs in
    create_oidc_provider: bool = True
    oidc_provider_arn: str | None = None
    state_bucket: str = "esteira-tfstate"
    # delivery (docs/delivery.md): github (deploy.yml) or codepipeline (modules/delivery)
    delivery: str = "github"
    release_object_key: str = "releases/release.zip"
    # safety and retention
    deletion_protection: bool = True
    force_destroy: bool = False
    log_retention_days: int = 365
    # CDK only: build the Lambda image from docker/lambda.Dockerfile as a CDK asset (needs Docker at
    # deploy time) instead of pulling <lambdas repository>:<ImageTag> pushed by CI.
    lambda_image_asset: bool = False
    # CDK only: synthesise just the key, buckets and ECR repositories, the counterpart of Terraform's
    # first `apply -target=module.registry` (push the images, then deploy the whole stack).
    registry_only: bool = False

    def __post_init__(self) -> None:
        self._validate()

    @property
    def name(self) -> str:
        """Prefix of every physical name, as Terraform's local.name."""
        return f"{self.project}-{self.environment}"

    @property
    def ec2(self) -> dict[str, Any]:
        """ec2_training with Terraform's optional() defaults filled in."""
        return {**EC2_TRAINING_DEFAULTS, **self.ec2_training}

    @property
    def effective_interface_endpoints(self) -> list[str]:
        """interface_endpoints plus the ECS agent's when EC2 training runs without a NAT (main.tf setunion)."""
        extra = list(EC2_TRAINING_APIS) if self.ec2["enabled"] and not self.enable_nat_gateway else []
        return sorted(set(self.interface_endpoints) | set(extra))

    def _validate(self) -> None:
        def check(ok: bool, setting: str, why: str) -> None:
            if not ok:
                raise ConfigError(f"{setting}: {why}")

        check(
            bool(re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-[0-9]", self.aws_region)),
            "aws_region",
            "a region name such as us-east-1",
        )
        check(bool(re.fullmatch(r"[a-z][a-z0-9]{1,11}", self.project)), "project", "2-12 lowercase letters or digits")
        check(self.environment in ("dev", "staging", "prod"), "environment", "dev, staging or prod")
        try:
            net = ipaddress.ip_network(self.vpc_cidr)
        except ValueError:
            net = None
        check(net is not None and net.version == 4 and net.prefixlen <= 24, "vpc_cidr", "an IPv4 CIDR of /24 or larger")
        check(2 <= self.az_count <= 4, "az_count", "between 2 and 4")
        check(
            bool(self.availability_zones) or self.az_count <= 2,
            "az_count",
            "more than 2 AZs needs explicit availability_zones (the stack is account-agnostic, so CDK sees 2)",
        )
        check(1 <= self.endpoint_subnet_count <= 4, "endpoint_subnet_count", "between 1 and 4")
        check(
            all(re.fullmatch(r"[a-z0-9.-]+", e) for e in self.interface_endpoints),
            "interface_endpoints",
            'service short names like "ecr.api"',
        )
        missing = sorted(set(PRIVATE_AWS_APIS) - set(self.interface_endpoints))
        check(
            self.enable_nat_gateway or not missing,
            "interface_endpoints",
            f"without a NAT gateway the private tasks and Lambdas need endpoints for {', '.join(missing)}",
        )
        check(bool(_IMAGE_TAG.fullmatch(self.image_tag)), "image_tag", "a valid image tag")
        check(
            bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.model_name)), "model_name", "letters, digits, . - _"
        )
        check(self.serving_min_capacity >= 1, "serving_min_capacity", "at least 1")
        check(self.serving_max_capacity >= 1, "serving_max_capacity", "at least 1")
        check(self.training_backend in ("ecs", "ec2", "sagemaker"), "training_backend", "ecs, ec2 or sagemaker")
        unknown_ec2 = sorted(set(self.ec2_training) - set(EC2_TRAINING_DEFAULTS))
        check(not unknown_ec2, "ec2_training", f"unknown attribute(s) {', '.join(unknown_ec2)}")
        ec2 = self.ec2

        def whole(value: Any) -> bool:
            return isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()

        check(isinstance(ec2["enabled"], bool), "ec2_training", "enabled must be true or false")
        check(
            whole(ec2["task_cpu"])
            and whole(ec2["task_memory"])
            and ec2["task_cpu"] >= 256
            and ec2["task_memory"] >= 512,
            "ec2_training",
            "task_cpu must be at least 256 CPU units and task_memory at least 512 MiB",
        )
        # modules/ec2_capacity's validations
        check(
            isinstance(ec2["instance_type"], str)
            and bool(re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9]+", ec2["instance_type"])),
            "ec2_training",
            "instance_type must look like an EC2 instance type, e.g. m6i.4xlarge or g5.2xlarge",
        )
        check(whole(ec2["gpus"]) and 0 <= ec2["gpus"] <= 16, "ec2_training", "gpus must be a whole number from 0 to 16")
        check(
            whole(ec2["max_instances"]) and 1 <= ec2["max_instances"] <= 100,
            "ec2_training",
            "max_instances must be between 1 and 100",
        )
        check(
            whole(ec2["volume_size_gb"]) and 30 <= ec2["volume_size_gb"] <= 16384,
            "ec2_training",
            "volume_size_gb must be between 30 (the ECS-optimised AMI's minimum) and 16384",
        )
        check(
            self.training_backend != "ec2" or ec2["enabled"],
            "training_backend",
            '"ec2" needs the EC2 capacity (ec2_training.enabled = true)',
        )
        check(self.delivery in ("github", "codepipeline"), "delivery", "github or codepipeline")
        check(
            self.delivery != "codepipeline" or self.enable_ci,
            "delivery",
            '"codepipeline" reuses the CI deploy policy: set enable_ci = true',
        )
        check(
            bool(self.release_object_key) and not self.release_object_key.startswith("/"),
            "release_object_key",
            "an S3 object key",
        )
        check(
            self.deployment_strategy in ("all_at_once", "canary", "shadow"),
            "deployment_strategy",
            "all_at_once, canary or shadow",
        )
        steps = list(self.canary_steps)
        check(
            bool(steps)
            and steps[-1] == 100
            and all(1 <= s <= 100 for s in steps)
            and all(b > a for a, b in itertools.pairwise(steps)),
            "canary_steps",
            "strictly increasing percentages in 1..100 ending at 100",
        )
        check(1 <= self.canary_bake_seconds <= 86400, "canary_bake_seconds", "between 1 and 86400")
        check(1 <= self.shadow_seconds <= 86400, "shadow_seconds", "between 1 and 86400")
        check(self.retrain_cooldown_seconds >= 0, "retrain_cooldown_seconds", "not negative")
        check(
            bool(
                re.fullmatch(
                    r"(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\))", self.drift_check_schedule
                )
            ),
            "drift_check_schedule",
            "rate(...) or cron(...)",
        )
        check(
            self.create_oidc_provider or bool(self.oidc_provider_arn),
            "oidc_provider_arn",
            "required when create_oidc_provider is false",
        )
        check(bool(re.fullmatch(r"[\w.-]+/[\w.-]+", self.github_repository)), "github_repository", "<org>/<repo>")
        environment_ok = bool(re.fullmatch(r"[\w.-]+", self.github_environment))
        check(environment_ok, "github_environment", "a GitHub environment name")
        # CloudFormation accepts only these retention values (Terraform's provider has the same list).
        check(
            self.log_retention_days
            in (
                1,
                3,
                5,
                7,
                14,
                30,
                60,
                90,
                120,
                150,
                180,
                365,
                400,
                545,
                731,
                1096,
                1827,
                2192,
                2557,
                2922,
                3288,
                3653,
            ),
            "log_retention_days",
            "a CloudWatch Logs retention value",
        )
        for cidr in self.allowed_ingress_cidrs:
            try:
                ipaddress.ip_network(cidr)
            except ValueError as err:
                raise ConfigError(f"allowed_ingress_cidrs: {cidr!r} is not a CIDR") from err

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EsteiraConfig:
        """Build from tfvars/context values, refusing unknown names (a typo must not be ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known - set(TERRAFORM_ONLY_VARIABLES))
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(unknown)}")
        kwargs = {k: v for k, v in values.items() if k in known}
        try:
            return cls(**kwargs)
        except TypeError as err:
            raise ConfigError(str(err)) from err

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_tfvars(path: Path) -> dict[str, Any]:
    """Read a Terraform .tfvars file (plain values only) with python-hcl2."""
    import hcl2  # python-hcl2; imported here so the app starts without it when no tfvars is used

    with path.open() as handle:
        raw = hcl2.load(handle)
    return {key: _unquote(value) for key, value in raw.items() if not key.startswith("__")}


def _unquote(value: Any) -> Any:
    """python-hcl2 8.x keeps string literals quoted ('"dev"'); strip that so values are plain."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items()}
    return value


def load_config(
    environment: str, overrides: Mapping[str, Any] | str | None = None, tfvars_dir: Path = TFVARS_DIR
) -> EsteiraConfig:
    """Settings for one environment: envs/<environment>.tfvars when it exists, then overrides.

    overrides may be a JSON object string (what `cdk -c overrides='{...}'` passes) or a mapping.
    """
    values: dict[str, Any] = {}
    tfvars = tfvars_dir / f"{environment}.tfvars"
    if tfvars.exists():
        values.update(read_tfvars(tfvars))
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides)
        except json.JSONDecodeError as err:
            raise ConfigError(f"overrides: not a JSON object ({err})") from err
        if not isinstance(overrides, dict):
            raise ConfigError("overrides: not a JSON object")
    values.update(overrides or {})
    values["environment"] = values.get("environment", environment)
    if values["environment"] != environment:
        raise ConfigError(f"environment: {tfvars.name} says {values['environment']!r}, asked for {environment!r}")
    return EsteiraConfig.from_mapping(values)
