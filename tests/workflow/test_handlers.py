"""Each Lambda handler against moto in-process (and the real MLflow server where the step needs it)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws

from lambdas import deploy, evaluate, lock, promote, rollback, service_stable, smoke_test, validate_data
from lambdas._runtime import TransientError, step
from model.classifier import ModelParams
from model.config import Settings
from model.validate import DataValidationError
from pipelines import lineage, registry
from pipelines.service_stable import DeploymentFailed, ServiceNotStable
from pipelines.smoke_test import SmokeTestFailed
from pipelines.train import train

REGION = "us-east-1"
ARN = "arn:aws:states:us-east-1:123456789012:execution:sm:run-1"


@pytest.fixture()
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The lineage records a step makes, for steps tested here without a registry that knows the version
    (recording against MLflow is tested in tests/integration/test_lineage_mlflow.py)."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(lineage, "record_release", lambda version, **kw: calls.append({"version": version, **kw}))
    return calls


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k, v in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


@pytest.fixture()
def mlflow_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    monkeypatch.setenv("ESTEIRA_MODEL_NAME", settings.registered_model_name)
    monkeypatch.setenv("ESTEIRA_EXPERIMENT", settings.experiment_name)
    monkeypatch.setenv("ESTEIRA_MIN_ROWS", "20")
    monkeypatch.setenv("ESTEIRA_GATE_MIN_ACCURACY", "0.5")
    monkeypatch.setenv("ESTEIRA_GATE_MIN_MACRO_F1", "0.5")
    return settings.replace(gate_min_accuracy=0.5, gate_min_macro_f1=0.5)


def _service(monkeypatch: pytest.MonkeyPatch, model_uri: str = "models:/m/1") -> dict[str, str]:
    ecs = boto3.client("ecs", region_name=REGION)
    ecs.create_cluster(clusterName="c")
    td = ecs.register_task_definition(
        family="serving",
        containerDefinitions=[{"name": "serving", "image": "img", "memory": 512,
                               "environment": [{"name": "ESTEIRA_MODEL_URI", "value": model_uri}]}],
    )["taskDefinition"]["taskDefinitionArn"]  # fmt: skip
    ecs.create_service(cluster="c", serviceName="s", taskDefinition=td, desiredCount=1)
    monkeypatch.setenv("ESTEIRA_ECS_CLUSTER", "c")
    monkeypatch.setenv("ESTEIRA_ECS_SERVICE", "s")
    return {"td": td}


# ---- lock
def test_lock_is_exclusive_and_released_only_by_its_owner(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName="lock", KeySchema=[{"AttributeName": "lock_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "lock_id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )  # fmt: skip
    monkeypatch.setenv("ESTEIRA_LOCK_TABLE", "lock")
    assert lock.handler({"action": "acquire", "owner": "a"}, None)["acquired"] is True
    assert lock.handler({"action": "acquire", "owner": "a"}, None)["acquired"] is True  # a retry by the holder
    second = lock.handler({"action": "acquire", "owner": "b"}, None)
    assert second == {**second, "acquired": False, "holder": "a", "status": "already-running"}
    assert lock.handler({"action": "release", "owner": "b"}, None)["released"] is False
    assert lock.handler({"action": "release", "owner": "a"}, None)["released"] is True
    assert lock.handler({"action": "acquire", "owner": "b"}, None)["acquired"] is True
    with pytest.raises(ValueError, match="unknown action"):
        lock.handler({"action": "steal", "owner": "c"}, None)


def test_expired_lock_can_be_taken(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName="lock", KeySchema=[{"AttributeName": "lock_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "lock_id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )  # fmt: skip
    monkeypatch.setenv("ESTEIRA_LOCK_TABLE", "lock")
    monkeypatch.setenv("ESTEIRA_LOCK_TTL_SECONDS", "-10")
    assert lock.handler({"action": "acquire", "owner": "dead"}, None)["acquired"] is True
    assert lock.handler({"action": "acquire", "owner": "next"}, None)["acquired"] is True


# ---- deploy / service_stable
def test_deploy_registers_a_pinned_revision_and_updates_the_service(
    aws: None, monkeypatch: pytest.MonkeyPatch, recorded: list[dict[str, Any]]
) -> None:
    monkeypatch.setenv("ESTEIRA_MODEL_NAME", "intent")
    before = _service(monkeypatch)["td"]
    out = deploy.handler({"model_version": "7", "execution_arn": ARN}, None)
    assert out["previous_task_definition"] == before and out["task_definition"] != before
    ecs = boto3.client("ecs", region_name=REGION)
    td = ecs.describe_task_definition(taskDefinition=out["task_definition"])["taskDefinition"]
    env = {e["name"]: e["value"] for e in td["containerDefinitions"][0]["environment"]}
    assert env["ESTEIRA_MODEL_URI"] == "models:/intent/7" and td["revision"] == 2
    assert ecs.describe_services(cluster="c", services=["s"])["services"][0]["taskDefinition"] == out["task_definition"]
    again = deploy.handler({"model_version": "7"}, None)  # a retry: nothing new registered
    assert again["status"] == "already-deployed"
    assert recorded[0]["version"] == "7" and recorded[0]["event"] == "deploy" and recorded[0]["execution_arn"] == ARN
    assert recorded[0]["task_definition"] == out["task_definition"]
    assert recorded[0]["previous_task_definition"] == before
    with pytest.raises(ValueError):
        deploy.handler({}, None)


def test_deploy_names_a_missing_container(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    _service(monkeypatch)
    monkeypatch.setenv("ESTEIRA_SERVING_CONTAINER", "web")
    with pytest.raises(LookupError, match="no container 'web'"):
        deploy.handler({"model_version": "1"}, None)


def test_service_stable_branches(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # moto reports runningCount from MOTO_ECS_SERVICE_RUNNING (default 0: a deployment in progress).
    td = _service(monkeypatch)["td"]
    with pytest.raises(ServiceNotStable, match="in progress"):
        service_stable.handler({"task_definition": td}, None)
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")
    boto3.client("ecs", region_name=REGION).create_service(
        cluster="c", serviceName="running", taskDefinition=td, desiredCount=1
    )
    monkeypatch.setenv("ESTEIRA_ECS_SERVICE", "running")
    assert service_stable.handler({"task_definition": td}, None)["status"] == "stable"
    with pytest.raises(DeploymentFailed, match="primary deployment runs"):
        service_stable.handler({"task_definition": td.replace(":1", ":9")}, None)
    with pytest.raises(ValueError):
        service_stable.handler({}, None)


# ---- smoke test
class _Serving(BaseHTTPRequestHandler):
    version = "3"
    intent = "card_arrival"

    def log_message(self, *args: Any) -> None:
        return

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("X-Model-Version", self.version)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(200, {"status": "ready"})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self._send(200, {"intent": self.intent, "confidence": 0.9})


@pytest.fixture()
def serving(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Serving]]:
    handler = type("H", (_Serving,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ESTEIRA_SERVING_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("ESTEIRA_SMOKE_TIMEOUT_SECONDS", "3")
    yield handler
    server.shutdown()


def test_smoke_test_checks_version_and_accuracy(
    serving: type[_Serving], tmp_path: Path, recorded: list[dict[str, Any]]
) -> None:
    rows = tmp_path / "smoke.csv"
    rows.write_text(
        "text,category\n" + "".join(f"my card number {i} has not arrived yet,card_arrival\n" for i in range(30))
    )
    out = smoke_test.handler({"model_version": "3", "smoke_data": str(rows)}, None)
    assert out["status"] == "passed" and out["accuracy"] == 1.0 and out["requests"] == 30
    assert recorded == [], "the smoke test may run outside the VPC: it never calls MLflow"
    # RecordRelease: the deploy function records the passed smoke test as the release's outcome.
    done = deploy.handler({"model_version": "3", "smoke": out, "execution_arn": "arn:x"}, None)
    assert done["status"] == "recorded"
    assert [(r["event"], r["outcome"], r["passed"]) for r in recorded] == [("smoke", "serving", True)]
    with pytest.raises(ValueError, match="did not pass"):
        deploy.handler({"model_version": "3", "smoke": {"status": "failed"}}, None)
    with pytest.raises(SmokeTestFailed, match="model version"):
        smoke_test.handler({"model_version": "4"}, None)
    serving.intent = "lost_or_stolen_card"
    with pytest.raises(SmokeTestFailed, match="accuracy 0.000"):
        smoke_test.handler({"model_version": "3", "smoke_data": str(rows)}, None)


def test_smoke_test_fails_when_nothing_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESTEIRA_SERVING_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ESTEIRA_SMOKE_TIMEOUT_SECONDS", "1")
    with pytest.raises(SmokeTestFailed, match="never answered"):
        smoke_test.handler({"model_version": "1"}, None)


# ---- steps that need MLflow
def test_validate_evaluate_promote_rollback(
    aws: None, mlflow_env: Settings, slice_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = mlflow_env
    out = validate_data.handler({"train_data": str(slice_files["train"])}, None)
    assert out["status"] == "valid"
    assert out["training_environment"]["ESTEIRA_MODEL_NAME"] == settings.registered_model_name
    bad = tmp_path / "bad.csv"
    bad.write_text("text,category\n" + "hello,card_arrival\n" * 25 + ",card_arrival\n")
    with pytest.raises(DataValidationError):
        validate_data.handler({"train_data": str(bad)}, None)

    fast = ModelParams(estimator="svm", n_jobs=1, calibration_folds=0)
    v1 = train(str(slice_files["train"]), str(slice_files["test"]), params=fast, settings=settings)["model_version"]
    ev = evaluate.handler({"eval_data": str(slice_files["test"])}, None)
    assert ev["model_version"] == v1 and ev["gate"]["passed"] is True
    assert promote.handler({"evaluation": ev, "eval_data": str(slice_files["test"])}, None)["status"] == "promoted"

    v2 = train(str(slice_files["train"]), str(slice_files["test"]), params=replace(fast, svm_c=1.0), settings=settings)[
        "model_version"
    ]
    ev2 = evaluate.handler({"eval_data": str(slice_files["test"])}, None)
    assert ev2["model_version"] == v2
    monkeypatch.setenv("ESTEIRA_GATE_MIN_IMPROVEMENT", "-1")
    monkeypatch.setenv("ESTEIRA_GATE_MAX_INTENT_F1_DROP", "1")
    ev2 = evaluate.handler({"eval_data": str(slice_files["test"])}, None)

    # A release that fails: deployed, then rolled back. The alias moves only when a release completes
    # (Promote is its last step), so the rollback has nothing to undo in the registry.
    before = _service(monkeypatch, registry.model_uri(settings, v1))["td"]
    deployed = deploy.handler({"model_version": v2}, None)
    back = rollback.handler(
        {"model_version": v2, "previous_task_definition": deployed["previous_task_definition"],
         "error": {"Error": "SmokeTestFailed", "Cause": "wrong answers"}}, None,
    )  # fmt: skip
    assert back["champion"] == {"unchanged": v1}
    assert back["serving_task_definition"] == before
    assert str(registry.version_by_alias(settings, registry.CHAMPION).version) == v1  # type: ignore[union-attr]
    ecs = boto3.client("ecs", region_name=REGION)
    assert ecs.describe_services(cluster="c", services=["s"])["services"][0]["taskDefinition"] == before
    tags = registry.client(settings).get_model_version(settings.registered_model_name, v2).tags
    assert "SmokeTestFailed" in tags["rolled_back"]
    again = rollback.handler({"model_version": v2, "previous_task_definition": before}, None)  # idempotent
    assert again["champion"] == {"unchanged": v1} and again["task_definition"] == {"unchanged": before}
    # A release that completes promotes last: v2 becomes the champion and remembers v1.
    assert promote.handler({"evaluation": ev2}, None)["previous_champion"] == v1
    assert str(registry.version_by_alias(settings, registry.CHAMPION).version) == v2  # type: ignore[union-attr]


# ---- runtime
def test_transient_errors_are_renamed_for_retry() -> None:
    @step("t")
    def flaky(event: dict[str, Any]) -> dict[str, Any]:
        raise EndpointConnectionError(endpoint_url="http://nowhere")

    @step("t")
    def broken(event: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("model_version")

    with pytest.raises(TransientError):
        flaky({}, None)
    with pytest.raises(KeyError):
        broken({}, None)


def test_notify_publishes_or_says_why_not(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.notify import notify

    monkeypatch.delenv("ESTEIRA_SNS_TOPIC_ARN", raising=False)
    assert notify("x", {})["status"] == "skipped"
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="t")["TopicArn"]
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn)
    out = notify("esteira: model 3 deployed\n(é)", {"version": "3"}, topic_arn=topic)
    assert out["status"] == "sent"
    body = json.loads(sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"])
    assert body["Subject"] == "esteira: model 3 deployed ( )" and json.loads(body["Message"]) == {"version": "3"}


def test_each_function_reads_the_secret_itself(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two functions named the same secret each read it, once per environment: in AWS each has its own
    environment and its own role, so one function's read must not serve another here either."""
    import lambdas._runtime as runtime
    import pipelines.registry as registry

    sm = boto3.client("secretsmanager", region_name=REGION)
    arn = sm.create_secret(Name="esteira-dev/mlflow/workflow", SecretString=json.dumps(
        {"username": "esteira-workflow", "password": "p" * 40}))["ARN"]  # fmt: skip
    monkeypatch.setenv("ESTEIRA_MLFLOW_CREDENTIALS_SECRET", arn)
    monkeypatch.setattr(runtime, "_credentials", {})
    reads: list[str | None] = []
    real = registry.use_credentials_from_secret

    def counted(environ: dict[str, str] | None = None, secrets_client: Any = None) -> bool:
        reads.append(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
        return real(environ, secrets_client)

    monkeypatch.setattr(registry, "use_credentials_from_secret", counted)
    for function in ("esteira-dev-deploy", "esteira-dev-rollback", "esteira-dev-deploy"):
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", function)
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
        runtime.mlflow_credentials()
        assert os.environ["MLFLOW_TRACKING_USERNAME"] == "esteira-workflow"
    assert reads == ["esteira-dev-deploy", "esteira-dev-rollback"]


def test_every_mlflow_caller_reads_its_own_credential(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A function named an MLflow secret (ESTEIRA_MLFLOW_CREDENTIALS_SECRET) calls MLflow as that user,
    the workflow steps (@step) and the scheduled drift check alike; never with a credential it did not
    read itself."""
    import lambdas._runtime as runtime
    from lambdas import drift_check

    sm = boto3.client("secretsmanager", region_name=REGION)
    arn = sm.create_secret(Name="esteira-dev/mlflow/reader", SecretString=json.dumps(
        {"username": "esteira-reader", "password": "p" * 40}))["ARN"]  # fmt: skip
    monkeypatch.setenv("ESTEIRA_MLFLOW_CREDENTIALS_SECRET", arn)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.setattr(runtime, "_credentials", {})
    seen: dict[str, str | None] = {}

    def check(version: str | None = None) -> dict[str, Any]:
        seen["user"] = os.environ.get("MLFLOW_TRACKING_USERNAME")
        return {"status": "ok"}

    monkeypatch.setattr(drift_check, "drift_check", check)
    drift_check.handler({}, None)
    assert seen == {"user": "esteira-reader"}
