"""Small helpers over the MLflow client, so every step names experiments, aliases and tags the same way."""

from __future__ import annotations

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from model.config import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"


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
