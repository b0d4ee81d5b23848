"""Shared fixtures: the real BANKING77 files, small slices of them, a real MLflow server, and the applied stack."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from demo.mlflow_server import MlflowServer, free_port
from localaws import LocalAWS
from localaws.applied import AppliedStack
from model.config import Settings
from model.data import banking77_dir
from pipelines import executions

# Qase's reporter (docs/qase.md): off unless QASE_MODE asks for it; stable case ids for the operator's suites.
pytest_plugins = ["tests.qase_plugin"]


@pytest.fixture(scope="session")
def banking77() -> Path:
    """The data folder; needs ESTEIRA_DATA_DIR (set by the Makefile here) or network access."""
    return banking77_dir(Settings.from_env())


@pytest.fixture(scope="session")
def train_frame(banking77: Path) -> pd.DataFrame:
    return pd.read_csv(banking77 / "train.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="session")
def test_frame(banking77: Path) -> pd.DataFrame:
    return pd.read_csv(banking77 / "test.csv", dtype=str, keep_default_na=False)


def small_slice(frame: pd.DataFrame, intents: int, per_intent: int, seed: int = 0) -> pd.DataFrame:
    keep = sorted(frame["category"].unique())[:intents]
    part = frame[frame["category"].isin(keep)]
    return part.sample(frac=1.0, random_state=seed).groupby("category").head(per_intent).reset_index(drop=True)


@pytest.fixture(scope="session")
def slice_files(
    tmp_path_factory: pytest.TempPathFactory, train_frame: pd.DataFrame, test_frame: pd.DataFrame
) -> dict[str, Path]:
    """A 12-intent slice: big enough for a meaningful model, small enough to train in about a second."""
    folder = tmp_path_factory.mktemp("slice")
    paths = {"train": folder / "train.csv", "test": folder / "test.csv"}
    small_slice(train_frame, 12, 60).to_csv(paths["train"], index=False)
    small_slice(test_frame, 12, 30).to_csv(paths["test"], index=False)
    return paths


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real `mlflow server` process; no part of MLflow is mocked."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"), free_port()).start()
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = server.uri
    yield server
    server.stop()
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


@pytest.fixture()
def settings(mlflow_server: MlflowServer) -> Settings:
    """Settings bound to the test server, with a registered model name of its own per test."""
    name = f"intent-{uuid.uuid4().hex[:8]}"
    return Settings.from_env().replace(
        mlflow_tracking_uri=mlflow_server.uri,
        registered_model_name=name,
        experiment_name=name,
        min_rows=20,
    )


def explain(aws: LocalAWS, execution_arn: str) -> str:
    """An execution's failed events and the local task logs, for assertion messages."""
    sfn = aws.client("stepfunctions")
    lines = []
    for e in executions.history(sfn, execution_arn):
        for key, val in e.items():
            if key.endswith("FailedEventDetails"):
                lines.append(f"{e['type']}: {json.dumps(val, default=str)[:1500]}")
    for log in sorted((aws.workdir / "logs").glob("*.log")):
        lines.append(f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}")
    return "\n".join(lines)


@contextmanager
def deployed(
    tmp_path_factory: pytest.TempPathFactory, name: str, **variables: str
) -> Iterator[tuple[AppliedStack, Settings]]:
    """A suite's own account: an MLflow server and `tofu apply` of infra/terraform + dev.tfvars on a
    fresh embedded AWS (`variables` are a user's own `-var`s). Yields the stack and the settings that
    reach the same registry and model name from this process. The label set is in the data bucket, as
    a user's `seed-data` puts it (the data steps read it from S3). Skips where the toolchain is missing."""
    from localaws.applied import applied_stack, image_variables
    from localaws.terraform import toolchain
    from pipelines.seed_data import write_labels

    if toolchain() is None:
        pytest.skip("the Terraform toolchain is missing: run `make tools`")
    work = tmp_path_factory.mktemp(name)
    # MLflow as the stack's MLflow task runs it: basic-auth, its users set from the stack's secrets.
    mlflow = MlflowServer.as_task(work / "mlflow", free_port()).launch()
    try:
        uri = mlflow.wait_healthy().uri
        # The serving tasks run from the serving image built here, as deploy.yml deploys it (pinned by digest).
        variables = {**image_variables(), **variables}
        with applied_stack(work, uri, variables=variables, on_mlflow_start=mlflow.take_secrets) as stack:
            settings = Settings.from_env().replace(
                mlflow_tracking_uri=uri,
                registered_model_name=stack.environment["ESTEIRA_MODEL_NAME"],
                aws_endpoint_url=stack.local.endpoint_url,
                min_rows=20,
            )
            with pytest.MonkeyPatch.context() as mp:
                for key, value in stack.local.env().items():
                    mp.setenv(key, value)  # credentials for this process's own call to the emulator
                write_labels(stack.buckets["data"], settings)
            # This process is the operator: it reads the registry as the workflow's user (its secret).
            with pytest.MonkeyPatch.context() as mp:
                for key, value in stack.mlflow_credential("workflow").items():
                    mp.setenv(key, value)
                yield stack, settings
    finally:
        mlflow.stop()
