"""AWS clients and the workflow's AWS-side settings, built one way for Lambdas, ECS tasks, the CLI and tests.

Product code never knows whether it talks to AWS or to an emulator: the only difference is
AWS_ENDPOINT_URL (read by model.config.Settings), which this factory passes to boto3.

The deploy-side names below are read here, not in model/config.py, until the lead folds them in; the
names match the environment the Terraform workflow module gives every Lambda.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from model.config import Settings

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


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


@dataclass(frozen=True)
class WorkflowSettings:
    """What the deploy-side steps need to find the serving service and the workflow's resources."""

    # ECS cluster and service that serve the model.
    cluster: str = "esteira"
    service: str = "esteira-serving"
    # Name of the serving container inside the task definition (its MODEL_URI is pinned on deploy).
    serving_container: str = "serving"
    # Base URL the smoke test calls (the ALB in AWS; localaws's per-service proxy locally).
    serving_url: str = "http://127.0.0.1:8080"
    # DynamoDB table holding the one-execution-at-a-time lock (hash key `lock_id`, TTL `expires_at`).
    lock_table: str = "esteira-workflow-lock"
    # How long a lock lives if its holder dies without releasing it.
    lock_ttl_seconds: int = 6 * 3600
    # SNS topic for notifications.
    sns_topic_arn: str = ""
    # Smoke test: labelled rows to send (CSV/Parquet URI; empty = a built-in handful) and the bar.
    smoke_data: str = ""
    smoke_min_accuracy: float = 0.6
    smoke_timeout_seconds: float = 60.0

    @classmethod
    def from_env(cls) -> WorkflowSettings:
        return cls(
            cluster=_env("ESTEIRA_ECS_CLUSTER", cls.cluster),
            service=_env("ESTEIRA_ECS_SERVICE", cls.service),
            serving_container=_env("ESTEIRA_SERVING_CONTAINER", cls.serving_container),
            serving_url=_env("ESTEIRA_SERVING_URL", cls.serving_url),
            lock_table=_env("ESTEIRA_LOCK_TABLE", cls.lock_table),
            lock_ttl_seconds=int(_env("ESTEIRA_LOCK_TTL_SECONDS", str(cls.lock_ttl_seconds))),
            sns_topic_arn=_env("ESTEIRA_SNS_TOPIC_ARN", cls.sns_topic_arn),
            smoke_data=_env("ESTEIRA_SMOKE_DATA", cls.smoke_data),
            smoke_min_accuracy=float(_env("ESTEIRA_SMOKE_MIN_ACCURACY", str(cls.smoke_min_accuracy))),
            smoke_timeout_seconds=float(_env("ESTEIRA_SMOKE_TIMEOUT_SECONDS", str(cls.smoke_timeout_seconds))),
        )
