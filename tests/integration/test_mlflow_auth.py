"""The registry has an owner: a real `mlflow server --app-name basic-auth`, started by the script the MLflow
task runs (docker/mlflow_start.py), with the two credentials the stack keeps in Secrets Manager.

- no credential: 401 on moving `champion` (and on reading);
- the read-only credential (serving's): reads the registry and loads the champion, 403 on moving it;
- the workflow's credential (MLflow's admin): trains, registers and moves the alias;
- rotation: a new password in the secret and a restart, and the old one is refused.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from demo.mlflow_server import MlflowServer, free_port
from model.classifier import ModelParams
from model.config import Settings
from pipelines.train import train

# A real basic-auth MLflow, a model trained and registered through it: ~80 s, so in the slow suite.
pytestmark = pytest.mark.slow

FAST = ModelParams(estimator="svm", calibration_folds=3, n_jobs=1)
WORKFLOW = ("esteira-workflow", secrets.token_urlsafe(24))
READER = ("esteira-reader", secrets.token_urlsafe(24))
STACK_MODEL = "esteira-intent"  # the task's ESTEIRA_MODEL_NAME (modules/mlflow), claimed at start


def auth_env(workflow: tuple[str, str], reader: tuple[str, str]) -> dict[str, str]:
    """What the task definition's `secrets` give the MLflow container (modules/mlflow)."""
    return {
        "MLFLOW_AUTH_ADMIN_USERNAME": workflow[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": workflow[1],
        "ESTEIRA_MLFLOW_READER_USERNAME": reader[0],
        "ESTEIRA_MLFLOW_READER_PASSWORD": reader[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),
        "ESTEIRA_MODEL_NAME": STACK_MODEL,
        # The rotation test syncs users on the running server (a task restarts, emptying the cache).
        "ESTEIRA_MLFLOW_AUTH_CACHE_SECONDS": "0",
    }


@pytest.fixture(scope="module")
def auth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow-auth")


@pytest.fixture(scope="module")
def auth_server(auth_root: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(auth_root, free_port(), auth_env=auth_env(WORKFLOW, READER)).start()
    yield server
    server.stop()


def set_alias(uri: str, name: str, version: str, who: tuple[str, str] | None) -> int:
    """POST registered-models/alias as a client would, returning the HTTP status."""
    body = json.dumps({"name": name, "alias": "champion", "version": version}).encode()
    req = urllib.request.Request(f"{uri}/api/2.0/mlflow/registered-models/alias", data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    if who is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{who[0]}:{who[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def as_user(mp: pytest.MonkeyPatch, who: tuple[str, str] | None) -> None:
    """MLflow's clients read these two variables natively (the Lambdas and tasks set them)."""
    for key, value in zip(("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"), who or ("", ""), strict=True):
        if who is None:
            mp.delenv(key, raising=False)
        else:
            mp.setenv(key, value)


def test_only_the_workflow_credential_moves_champion(auth_server: MlflowServer, slice_files: dict[str, Path]) -> None:
    name = f"intent-{uuid.uuid4().hex[:8]}"
    settings = Settings.from_env().replace(
        mlflow_tracking_uri=auth_server.uri,
        registered_model_name=name,
        experiment_name=name,
        min_rows=20,
    )
    with pytest.MonkeyPatch.context() as mp:
        as_user(mp, WORKFLOW)
        res = train(str(slice_files["train"]), str(slice_files["test"]), params=FAST, settings=settings)
        assert res["status"] == "trained"
    version = str(res["model_version"])

    # Nobody: refused before any permission is looked at.
    assert set_alias(auth_server.uri, name, version, None) == 401
    with pytest.MonkeyPatch.context() as mp:
        as_user(mp, None)
        with pytest.raises(MlflowException, match="401|Unauthorized|credentials"):
            MlflowClient(auth_server.uri).set_registered_model_alias(name, "champion", version)
    # A wrong password is nobody too.
    assert set_alias(auth_server.uri, name, version, (WORKFLOW[0], "not-the-password")) == 401
    # Serving's credential reads, and cannot move the alias.
    assert set_alias(auth_server.uri, name, version, READER) == 403
    # The workflow's credential moves it.
    assert set_alias(auth_server.uri, name, version, WORKFLOW) == 200
    with pytest.MonkeyPatch.context() as mp:
        as_user(mp, READER)
        client = MlflowClient(auth_server.uri)
        assert client.get_model_version_by_alias(name, "champion").version == version
        with pytest.raises(MlflowException, match="403|PERMISSION_DENIED|Permission"):
            client.delete_registered_model_alias(name, "champion")
        # What model/serving/loader.py does with the read-only credential: load the champion.
        mlflow.set_tracking_uri(auth_server.uri)
        model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
        assert len(model.predict(pd.DataFrame({"text": ["I lost my card"]}))) == 1


def test_the_reader_cannot_take_the_stack_model(auth_server: MlflowServer) -> None:
    """Any signed-in MLflow user may create a registered model and would own it: the start script has
    created the stack's model already, so the reader's create fails and it stays read-only on it."""
    body = json.dumps({"name": STACK_MODEL}).encode()
    req = urllib.request.Request(f"{auth_server.uri}/api/2.0/mlflow/registered-models/create", data=body)
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{READER[0]}:{READER[1]}".encode()).decode())
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=30)
    assert refused.value.code == 400 and b"RESOURCE_ALREADY_EXISTS" in refused.value.read()
    # The workflow registers into it and moves its alias; the reader cannot.
    with pytest.MonkeyPatch.context() as mp:
        as_user(mp, WORKFLOW)
        client = MlflowClient(auth_server.uri)
        assert client.get_registered_model(STACK_MODEL).name == STACK_MODEL
    assert set_alias(auth_server.uri, STACK_MODEL, "1", READER) == 403


def test_rotation_is_a_new_secret_and_the_start_script(auth_server: MlflowServer) -> None:
    """The start script resets both users' passwords to their secrets on every start: here its user sync
    (the same code, `--sync-users`, without starting a second server) with rotated secrets, on the
    running server, whose basic-auth reads the users' table on every request."""
    rotated_workflow = (WORKFLOW[0], secrets.token_urlsafe(24))
    rotated_reader = (READER[0], secrets.token_urlsafe(24))
    auth_server.take_secrets(auth_env(rotated_workflow, rotated_reader))
    missing = f"no-such-model-{uuid.uuid4().hex[:6]}"
    assert set_alias(auth_server.uri, missing, "1", WORKFLOW) == 401  # the old password is gone
    assert set_alias(auth_server.uri, missing, "1", READER) == 401
    assert set_alias(auth_server.uri, missing, "1", rotated_reader) == 403
    assert set_alias(auth_server.uri, missing, "1", rotated_workflow) == 404  # allowed; the model does not exist
