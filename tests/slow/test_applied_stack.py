"""The stack users apply, run: `tofu apply` of infra/terraform + dev.tfvars on the embedded AWS, then
the state machine Terraform created trains, gates, promotes and deploys a model that the serving
service Terraform created answers through the load balancer Terraform created.

Nothing here defines a resource. The data planes run what the emulator holds: the Lambdas with the
image command, environment, memory and timeout Terraform gave them; the training task and the
serving service from their registered task definitions (the serving command from its Dockerfile,
since the task definition leaves it to the image); Cloud Map names from the services' registries;
the ALB listener's forward action. One thing is bound outside: MLflow's ECS service is served by a
local MLflow server, because its RDS database has no local data plane (docs/infra-notes.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from localaws import LocalAWS
from localaws.terraform import StackApply
from tests.conftest import deployed, explain

pytestmark = [pytest.mark.slow, pytest.mark.infra]


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalAWS, StackApply]]:

    with deployed(tmp_path_factory, "applied") as (stack, _):
        yield stack.local, stack.apply


def seed(aws: LocalAWS, bucket: str) -> None:
    from model.config import Settings
    from pipelines.seed_data import write_labelled_csv, write_labels
    from pipelines.validate_data import load_validated

    settings = Settings.from_env()
    write_labels(bucket, settings)
    for split, prefix in (("train", "train"), ("test", "eval")):
        data = load_validated(f"banking77:{split}")
        write_labelled_csv(f"s3://{bucket}/{prefix}/seed.csv", data.texts, data.labels, settings)


def test_the_applied_state_machine_deploys_a_model_that_the_applied_service_serves(
    applied: tuple[LocalAWS, StackApply], monkeypatch: pytest.MonkeyPatch
) -> None:
    aws, apply = applied
    for key, value in aws.env().items():
        monkeypatch.setenv(key, value)  # the test's own calls (seeding) go to the emulator, as a person's would
    outputs = apply.outputs
    seed(aws, outputs["bucket_names"]["data"])
    sfn = aws.client("stepfunctions")
    machine = sfn.describe_state_machine(stateMachineArn=outputs["state_machine_arn"])
    assert "${" not in machine["definition"], "the definition is Terraform's templatefile() output, rendered"
    started = sfn.start_execution(stateMachineArn=outputs["state_machine_arn"], name="applied-1", input="{}")
    arn = started["executionArn"]
    deadline = time.monotonic() + 600
    while (desc := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not finish in 10 min"
        time.sleep(1)
    assert desc["status"] == "SUCCEEDED", explain(aws, arn)
    url = aws.routers[outputs["serving_url"].split("://", 1)[1]].url
    ready = httpx.get(f"{url}/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["model_version"] == "1"
    answer = httpx.post(f"{url}/predict", json={"text": "I lost my card"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert_ran_from_images(aws, apply)


def assert_ran_from_images(aws: LocalAWS, apply: StackApply) -> None:
    """The training task and the serving tasks ran from the images built here (the artefacts AWS runs),
    and the version the training container registered records that image and the commit baked into it."""
    from oci import build

    if build.missing_tools():
        pytest.skip(f"no OCI tools ({', '.join(build.missing_tools())}): the tasks ran as local processes")
    assert aws.ecs is not None
    for name in ("serving", "training"):
        ref = apply.variables[f"{name}_image_uri"]
        assert "@sha256:" in ref, ref
        assert aws.ecs.modes.get(ref) == "container", (name, aws.ecs.modes)
    from mlflow.tracking import MlflowClient

    from localaws.applied import MLFLOW_CLUSTER, MLFLOW_SERVICE

    mlflow_uri = aws.ecs.external[(MLFLOW_CLUSTER, MLFLOW_SERVICE)]  # the MLflow the stack's tasks reach
    version = MlflowClient(mlflow_uri).get_model_version(
        apply.outputs["workflow_environment"]["ESTEIRA_MODEL_NAME"], "1"
    )
    built = build.built("training")
    assert built is not None
    assert version.tags["git_commit"] == built.commit, version.tags
    assert version.tags["image"] == apply.variables["training_image_uri"], version.tags
    assert version.tags["training_key"].startswith("sha256:")


def test_drift_in_traffic_starts_retraining_through_the_applied_alarm_and_rule(
    applied: tuple[LocalAWS, StackApply], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Traffic -> capture -> the applied drift-check function -> DriftScore -> the applied alarm (as
    written: Maximum over 3600 s, notBreaching) -> the applied rule -> the applied retrain trigger ->
    a retraining execution of the applied state machine. The schedule is the only part stood in for:
    the function is invoked as the rule's target would be, rather than waiting six hours."""
    from pipelines.validate_data import load_validated

    aws, apply = applied
    for key, value in aws.env().items():
        monkeypatch.setenv(key, value)
    outputs = apply.outputs
    url = aws.routers[outputs["serving_url"].split("://", 1)[1]].url
    test = load_validated("banking77:test")
    campaign = sorted(set(test.labels))[:4]  # four intents only: a shift no reference profile fits
    texts = [t for t, label in zip(test.texts, test.labels, strict=True) if label in campaign]
    with httpx.Client(timeout=10) as http:
        for text in (texts * 3)[:320]:
            assert http.post(f"{url}/predict", json={"text": text}).status_code == 200
    time.sleep(8)  # the service flushes its capture every 5 s (ESTEIRA_CAPTURE_FLUSH_S default)
    lam = aws.client("lambda")
    name = outputs["lambda_function_names"]["drift_check"]
    answer = lam.invoke(FunctionName=name, Payload=b"{}")
    result = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, result
    assert result["status"] == "drift", json.dumps(result, default=str)[:3000]
    cw, sfn = aws.client("cloudwatch"), aws.client("stepfunctions")
    alarm = f"{outputs['ecs_cluster_name']}-model-drift"
    deadline = time.monotonic() + 60
    while cw.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"] != "ALARM":
        assert time.monotonic() < deadline, "the applied drift alarm did not fire"
        time.sleep(1)
    execution = None
    while execution is None:
        assert time.monotonic() < deadline + 60, f"no retraining started; deliveries {aws.deliveries}"  # type: ignore[attr-defined]
        runs = sfn.list_executions(stateMachineArn=outputs["state_machine_arn"])["executions"]
        execution = next((e for e in runs if e["name"].startswith("retrain-")), None)
        time.sleep(1)
    started = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert started["trigger"]["alarm"] == alarm
    deadline = time.monotonic() + 600
    while (desc := sfn.describe_execution(executionArn=execution["executionArn"]))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the retraining did not finish in 10 min"
        time.sleep(2)
    assert desc["status"] == "SUCCEEDED", explain(aws, execution["executionArn"])


def test_every_lambda_runs_with_what_terraform_gave_it(applied: tuple[LocalAWS, StackApply]) -> None:
    aws, apply = applied
    state = {r["address"]: r["values"] for r in _resources(apply.state())}
    lam = aws.client("lambda")
    for key, name in apply.outputs["lambda_function_names"].items():
        planned = state[f'module.workflow.aws_lambda_function.this["{key}"]']
        live = lam.get_function_configuration(FunctionName=name)
        assert live["ImageConfigResponse"]["ImageConfig"]["Command"] == planned["image_config"][0]["command"]
        assert live["Environment"]["Variables"] == planned["environment"][0]["variables"]
        assert (live["MemorySize"], live["Timeout"]) == (planned["memory_size"], planned["timeout"])


def _resources(state: dict[str, Any]) -> list[dict[str, Any]]:
    from localaws.terraform import managed_resources

    return managed_resources(state.get("values", {}).get("root_module"))
