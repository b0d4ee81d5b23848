"""AWS clients and the workflow's AWS-side settings, built one way for Lambdas, ECS tasks, the CLI and tests.

Product code never knows whether it talks to AWS or to an emulator: the only difference is
AWS_ENDPOINT_URL (read by model.config.Settings), which this factory passes to boto3.

The deploy-side settings below are declared here with the project's one settings mechanism
(model/settings.py); the names match the environment the Terraform workflow module gives every Lambda.
"""

from __future__ import annotations

from typing import Any, ClassVar

import boto3
from botocore.config import Config

from model.config import Settings
from model.settings import EsteiraSettings, setting

# Standard retry mode backs off on throttling and 5xx itself; Step Functions retries on top of that.
_BOTO_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30)


def client(service: str, settings: Settings | None = None) -> Any:
    """A boto3 client for `service` in the configured region, at the configured endpoint (if any)."""
    settings = settings or Settings.from_env()
    return boto3.client(
        service,  # type: ignore[call-overload]
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        config=_BOTO_CONFIG,
    )


class WorkflowSettings(EsteiraSettings):
    """What the deploy-side steps need to find the serving service and the workflow's resources."""

    doc_title: ClassVar[str] = "Workflow steps (pipelines/aws.py `WorkflowSettings`)"

    cluster: str = setting("esteira", env="ESTEIRA_ECS_CLUSTER", description="ECS cluster that serves the model.")
    service: str = setting(
        "esteira-serving", env="ESTEIRA_ECS_SERVICE", description="ECS service that serves the model."
    )
    serving_container: str = setting(
        "serving",
        env="ESTEIRA_SERVING_CONTAINER",
        description="Name of the serving container inside the task definition (its ESTEIRA_MODEL_URI is pinned on "
        "deploy).",
    )
    serving_url: str = setting(
        "http://127.0.0.1:8080",
        env="ESTEIRA_SERVING_URL",
        description="Base URL the smoke test calls (the ALB in AWS; localaws's per-service proxy locally).",
    )
    lock_table: str = setting(
        "esteira-workflow-lock",
        env="ESTEIRA_LOCK_TABLE",
        description="DynamoDB table holding the one-execution-at-a-time lock (hash key lock_id, TTL expires_at).",
    )
    lock_ttl_seconds: int = setting(
        6 * 3600,
        env="ESTEIRA_LOCK_TTL_SECONDS",
        description="How long a lock lives if its holder dies without releasing it (0 or less: expired at once, "
        "for tests).",
    )
    sns_topic_arn: str = setting("", env="ESTEIRA_SNS_TOPIC_ARN", description="SNS topic for notifications.")
    smoke_data: str = setting(
        "",
        env="ESTEIRA_SMOKE_DATA",
        description="Smoke test: labelled rows to send (CSV/Parquet URI; empty: a built-in handful).",
    )
    smoke_min_accuracy: float = setting(
        0.6, env="ESTEIRA_SMOKE_MIN_ACCURACY", ge=0.0, le=1.0, description="Smoke test: the accuracy it must reach."
    )
    smoke_timeout_seconds: float = setting(
        60.0, env="ESTEIRA_SMOKE_TIMEOUT_SECONDS", gt=0.0, description="Smoke test: how long it may take."
    )
