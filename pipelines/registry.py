"""Small helpers over the MLflow client, so every step names experiments, aliases and tags the same way."""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache

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


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit the code runs from: GIT_COMMIT (set in images and CI) or `git rev-parse`."""
    env = os.environ.get("GIT_COMMIT")
    if env:
        return env
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
