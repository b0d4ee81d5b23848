"""Small helpers over the MLflow client, so every step names experiments, aliases and tags the same way."""

from __future__ import annotations

import json
import os
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from model.config import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"
# The Secrets Manager secret ({"username", "password"}) a process without injected secrets (a Lambda, a
# SageMaker training job) reads its MLflow credential from; ECS tasks get MLFLOW_TRACKING_USERNAME and
# MLFLOW_TRACKING_PASSWORD from their task definition's `secrets` instead (docs/deploy.md).
CREDENTIALS_SECRET_VARIABLE = "ESTEIRA_MLFLOW_CREDENTIALS_SECRET"


def use_credentials_from_secret(environ: dict[str, str] | None = None, secrets_client: Any = None) -> bool:
    """Set MLFLOW_TRACKING_USERNAME/PASSWORD (which MLflow's clients read natively) from the secret that
    ESTEIRA_MLFLOW_CREDENTIALS_SECRET names. Does nothing when that is unset or a credential is already
    set (a task given its secrets by ECS, a person's shell). Returns whether it read the secret.

    Called once per process (a Lambda's cold start): the value then lives in the process's
    environment, so a rotated secret reaches a warm Lambda at its next cold start."""
    env = os.environ if environ is None else environ
    arn = env.get(CREDENTIALS_SECRET_VARIABLE, "")
    if not arn or env.get("MLFLOW_TRACKING_USERNAME"):
        return False
    if secrets_client is None:
        import boto3

        secrets_client = boto3.client("secretsmanager", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
    value = json.loads(secrets_client.get_secret_value(SecretId=arn)["SecretString"])
    env["MLFLOW_TRACKING_USERNAME"] = str(value["username"])
    env["MLFLOW_TRACKING_PASSWORD"] = str(value["password"])
    return True


def client(settings: Settings) -> MlflowClient:
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)


def experiment_id(settings: Settings) -> str:
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    exp = mlflow.get_experiment_by_name(settings.experiment_name)
    if exp is not None:
        return str(exp.experiment_id)
    try:
        return str(mlflow.create_experiment(settings.experiment_name))
    except MlflowException:  # created concurrently by another step
        exp = mlflow.get_experiment_by_name(settings.experiment_name)
        assert exp is not None
        return str(exp.experiment_id)


def version_by_alias(settings: Settings, alias: str) -> ModelVersion | None:
    try:
        return client(settings).get_model_version_by_alias(settings.registered_model_name, alias)
    except MlflowException:
        return None


def model_uri(settings: Settings, version: str | int) -> str:
    return f"models:/{settings.registered_model_name}/{version}"
