"""Fixtures for the serving tests: a real registered model, a real moto S3 server, a real service process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from benchmarks.loadgen import ServiceProcess, free_port
from demo.mlflow_server import MlflowServer
from model.classifier import ModelParams
from model.config import Settings
from model.serving.settings import ServingSettings
from pipelines import registry
from pipelines.train import train

FAST = ModelParams(estimator="svm", calibration_folds=3, n_jobs=1)
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def registered_model(mlflow_server: MlflowServer, slice_files: dict[str, Path]) -> dict[str, Any]:
    """A real model trained on the 12-intent slice, registered, with the `champion` alias on version 1."""
    name = f"serving-{uuid.uuid4().hex[:8]}"
    settings = Settings.from_env().replace(
        mlflow_tracking_uri=mlflow_server.uri,
        registered_model_name=name,
        experiment_name=name,
        min_rows=20,
    )
    res = train(str(slice_files["train"]), str(slice_files["test"]), params=FAST, settings=settings)
    registry.client(settings).set_registered_model_alias(name, registry.CHAMPION, res["model_version"])
    return {"name": name, "version": res["model_version"], "settings": settings, "tracking_uri": mlflow_server.uri}


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """A real moto server process (S3 is the one thing emulated); yields its endpoint URL."""
    port = free_port()
    moto = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    old = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    yield url
    proc.terminate()
    proc.wait(10)
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        **{"aws_access_key_id": "testing", "aws_secret_access_key": "testing"},
    )


def new_bucket(endpoint: str) -> str:
    bucket = f"capture-{uuid.uuid4().hex[:10]}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    return bucket


def read_capture(endpoint: str, bucket: str) -> dict[str, list[dict[str, Any]]]:
    """Every captured record, by object key."""
    import json

    s3 = s3_client(endpoint)
    out: dict[str, list[dict[str, Any]]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
            out[obj["Key"]] = [json.loads(line) for line in body.splitlines() if line]
    return out


# Both HTTP paths answer one contract (model/serving/fast_path.py): every test that talks to a service
# process runs on the fast path and on plain uvicorn.
HTTP_PATHS = {"fast": "1", "plain": "0"}


@pytest.fixture(scope="module", params=list(HTTP_PATHS))
def http_path(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment that selects one HTTP path; merge it into a service's environment."""
    return {"ESTEIRA_SERVING_FAST_PATH": HTTP_PATHS[request.param]}


def assert_http_path(proc: ServiceProcess, path: dict[str, str]) -> None:
    """The process runs the path asked for: its log names it (a silent fallback would test the other)."""
    want = "fast" if path["ESTEIRA_SERVING_FAST_PATH"] == "1" else "plain uvicorn"
    assert f'"http path: {want}"' in proc.stderr_path.read_text(), proc.stderr_path.read_text()[-2000:]


def service_env(model: dict[str, Any], **extra: str) -> dict[str, str]:
    """A service's environment; `extra` given under a deprecated name (MODEL_URI=...) replaces the current one."""
    return {
        "ESTEIRA_MODEL_URI": f"models:/{model['name']}@champion",
        "MLFLOW_TRACKING_URI": model["tracking_uri"],
        "ESTEIRA_SERVING_METRICS_INTERVAL_S": "1",
        **AWS_ENV,
        **ServingSettings.renamed(extra),
    }


@pytest.fixture(scope="module")
def service(
    registered_model: dict[str, Any],
    moto_s3: str,
    tmp_path_factory: pytest.TempPathFactory,
    http_path: dict[str, str],
) -> Iterator[tuple[ServiceProcess, str]]:
    """A real `python -m model.serving` on a free port, capturing to a fresh moto bucket."""
    bucket = new_bucket(moto_s3)
    env = service_env(
        registered_model,
        ESTEIRA_CAPTURE_S3_URI=f"s3://{bucket}/capture",
        ESTEIRA_CAPTURE_FLUSH_S="0.5",
        AWS_ENDPOINT_URL=moto_s3,
        ESTEIRA_SERVING_MAX_TEXT_CHARS="200",
        ESTEIRA_SERVING_MAX_BATCH="8",
        ESTEIRA_SERVING_MAX_BODY_BYTES="20000",
        **http_path,
    )
    proc = ServiceProcess(env, tmp_path_factory.mktemp("service")).start()
    try:
        proc.wait_ready()
        assert_http_path(proc, http_path)
        yield proc, bucket
    finally:
        proc.stop()
