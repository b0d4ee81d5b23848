"""scripts/ci.py against real peers: real pytest JUnit files, a real HTTP server, ECR and Step Functions in moto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import ci

SHA = "0123456789abcdef0123456789abcdef01234567"
REG = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


# ------------------------------------------------------------------------------------------ a tiny server
class Recorder(BaseHTTPRequestHandler):
    """Answers from `routes` and records every request; the test decides what the service does."""

    routes: dict[tuple[str, str], list[tuple[int, dict[str, str], Any]]] = {}
    seen: list[dict[str, Any]] = []

    def handle_one(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append({"method": method, "path": self.path, "headers": dict(self.headers), "body": body})
        answers = self.routes.get((method, self.path)) or [(404, {}, {"detail": "no route"})]
        status, headers, payload = answers.pop(0) if len(answers) > 1 else answers[0]
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.handle_one("GET")

    def do_POST(self) -> None:
        self.handle_one("POST")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[Recorder]]]:
    handler = type("H", (Recorder,), {"routes": {}, "seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


# ------------------------------------------------------------------------------------------ report
def run_pytest(tmp_path: Path, name: str, body: str) -> None:
    test = tmp_path / f"test_{name}.py"
    test.write_text(body)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(test),
            f"--junitxml={tmp_path}/r/junit-{name}.xml",
        ],
        cwd=tmp_path,
        capture_output=True,
        # only built-in plugins (junitxml is one): the venv's plugins cost seconds at every start
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )


def test_report_from_real_junit(tmp_path: Path) -> None:
    run_pytest(tmp_path, "good", "def test_a():\n    assert 1\n\ndef test_b():\n    assert 2\n")
    text, ok = ci.report(tmp_path / "r")
    assert ok and "| good | 2 | 0 | 0 | 0 |" in text
    run_pytest(tmp_path, "bad", "def test_c():\n    assert 0\n")
    text, ok = ci.report(tmp_path / "r")
    assert not ok and "| bad | 1 | 1 | 0 | 0 |" in text and "FAILED" in text
    assert ci.main(["report", "--reports", str(tmp_path / "r")]) == 1


def test_report_without_junit_fails(tmp_path: Path) -> None:
    with pytest.raises(ci.CiError, match="no JUnit XML"):
        ci.report(tmp_path)


# ------------------------------------------------------------------------------------------ dispatch
def images_file(tmp_path: Path, **override: str) -> Path:
    images = {
        k: f"{REG}/esteira-prod/{k}@sha256:{c * 64}"
        for k, c in (("serving", "a"), ("training", "b"), ("lambda", "c"), ("mlflow", "d"))
    }
    images.update(override)
    path = tmp_path / "images.json"
    path.write_text(json.dumps({"git_sha": SHA, "images": images}))
    return path


def test_dispatch_posts_the_digests(
    server: tuple[str, type[Recorder]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = server
    route = "/repos/o/r/actions/workflows/deploy.yml/dispatches"
    handler.routes[("POST", route)] = [(204, {}, None)]
    monkeypatch.setenv("GITHUB_API_URL", url)
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken-value")
    assert ci.main(["dispatch", "--repo", "o/r", "--images", str(images_file(tmp_path))]) == 0
    req = handler.seen[0]
    assert req["headers"]["Authorization"] == "Bearer t0ken-value"
    sent = json.loads(req["body"])
    assert sent["ref"] == "main" and sent["inputs"]["git_sha"] == SHA
    assert sent["inputs"]["lambda_image"].endswith("@sha256:" + "c" * 64)
    assert sent["inputs"]["mlflow_image"].endswith("@sha256:" + "d" * 64)


def test_dispatch_error_does_not_leak_the_token(
    server: tuple[str, type[Recorder]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, handler = server
    handler.routes[("POST", "/repos/o/r/actions/workflows/deploy.yml/dispatches")] = [(422, {}, {"message": "bad"})]
    monkeypatch.setenv("GITHUB_API_URL", url)
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken-value")
    assert ci.main(["dispatch", "--repo", "o/r", "--images", str(images_file(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert "HTTP 422" in err and "t0ken-value" not in err


def test_dispatch_refuses_a_tag_instead_of_a_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "x")
    with pytest.raises(ci.CiError, match=r"images.serving must be an ECR reference pinned by digest"):
        ci.dispatch_inputs(images_file(tmp_path, serving=f"{REG}/esteira-prod/serving:latest"))


# ------------------------------------------------------------------------------------------ images (ECR in moto)
@mock_aws
def test_images_resolves_digests_from_ecr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    ecr = boto3.client("ecr", region_name="us-east-1")
    media = "application/vnd.docker.distribution.manifest.v2+json"
    digests = {}
    for repo in ("serving", "training", "lambdas", "mlflow"):
        ecr.create_repository(repositoryName=f"esteira-prod/{repo}")
        image = ecr.put_image(
            repositoryName=f"esteira-prod/{repo}",
            imageManifest=json.dumps({"schemaVersion": 2, "mediaType": media, "x": repo}),
            imageTag=SHA,
        )
        digests[repo] = image["image"]["imageId"]["imageDigest"]
    out = tmp_path / "images.json"
    args = ["images", "--git-sha", SHA, "--out", str(out)]
    for key, repo in (("serving", "serving"), ("training", "training"), ("lambda", "lambdas"), ("mlflow", "mlflow")):
        args += ["--image", f"{key}={REG}/esteira-prod/{repo}:{SHA}"]
    assert ci.main(args) == 0
    data = json.loads(out.read_text())
    assert data["images"]["lambda"] == f"{REG}/esteira-prod/lambdas@{digests['lambdas']}"
    assert ci.dispatch_inputs(out)["serving_image"].endswith(digests["serving"])
    assert ci.dispatch_inputs(out)["mlflow_image"] == f"{REG}/esteira-prod/mlflow@{digests['mlflow']}"
    # a tag that was never pushed is an error, not a guess
    with pytest.raises(ci.CiError, match="is not in ECR"):
        ci.resolve_digests({"serving": f"{REG}/esteira-prod/serving:{'f' * 40}"}, SHA, ecr)


# ------------------------------------------------------------------------------------------ smoke
def healthy(handler: type[Recorder], bad_status: int = 422, header: bool = True) -> None:
    handler.routes[("GET", "/ready")] = [(503, {}, {"ready": False}), (200, {}, {"ready": True})]
    hdr = {"X-Model-Version": "7"} if header else {}
    handler.routes[("POST", "/predict")] = [
        (200, hdr, {"predictions": [{"intent": "card_arrival", "confidence": 0.9}]}),
        (bad_status, hdr, {"detail": "text or texts is required"}),
    ]


def test_smoke_passes_on_a_service_that_keeps_the_contract(server: tuple[str, type[Recorder]]) -> None:
    url, handler = server
    healthy(handler)
    passed = ci.smoke(url, "where is my card", retries=3, wait=0.01, timeout=5)
    assert passed[1] == "POST /predict -> 200, model version 7"
    assert sum(1 for r in handler.seen if r["path"] == "/ready") == 2  # retried once


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"bad_status": 500}, "expected 4xx"), ({"header": False}, "X-Model-Version")],
)
def test_smoke_fails_when_the_contract_is_broken(
    server: tuple[str, type[Recorder]], kwargs: dict[str, Any], message: str
) -> None:
    url, handler = server
    healthy(handler, **kwargs)
    with pytest.raises(ci.CiError, match=message):
        ci.smoke(url, "where is my card", retries=3, wait=0.01, timeout=5)


def test_smoke_gives_up_when_never_ready() -> None:
    with pytest.raises(ci.CiError, match="after 2 attempts"):
        ci.smoke("http://127.0.0.1:9", "x", retries=2, wait=0.01, timeout=1)


# ------------------------------------------------------------------------------------------ train (SFN in moto)
def state_machine(sfn: Any, states: dict[str, Any], start: str) -> str:
    definition = json.dumps({"StartAt": start, "States": states})
    role = "arn:aws:iam::123456789012:role/sfn"
    return str(sfn.create_state_machine(name=f"sm-{start}", definition=definition, roleArn=role)["stateMachineArn"])


@mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
def test_train_starts_and_waits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("TRAIN_DATA_URI", "s3://data/banking77/")
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    ok = state_machine(sfn, {"Done": {"Type": "Pass", "End": True}}, "Done")
    out = tmp_path / "train.json"
    args = ["train", "--state-machine-arn", ok, "--wait", "--poll", "0.1", "--timeout", "30", "--out", str(out)]
    assert ci.main([*args, "--trigger", "github-schedule"]) == 0
    result = json.loads(out.read_text())
    assert result["status"] == "SUCCEEDED"
    sent = json.loads(sfn.describe_execution(executionArn=result["executionArn"])["input"])
    assert sent["data_uri"] == "s3://data/banking77/"
    # The lineage's trigger: a CI run (its URL from the CI's environment, or "unknown") and the caller's ARN.
    assert sent["trigger"]["kind"] == "ci" and sent["trigger"]["label"] == "github-schedule"
    assert sent["trigger"]["principal"].startswith("arn:aws:") and sent["trigger"]["run"]

    failing = state_machine(sfn, {"Boom": {"Type": "Fail", "Error": "GateRejected", "Cause": "accuracy 0.41"}}, "Boom")
    args[2] = failing
    assert ci.main(args) == 1
    assert json.loads(out.read_text())["status"] == "FAILED"
