"""Fixtures for the workflow suite: a LocalAWS with the workflow deployed on it, per test."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localaws import LocalAWS
from localaws.stack import WorkflowStack
from model.config import Settings

STANDIN = Path(__file__).with_name("serving_standin.py")


def serving_command() -> list[str]:
    """The product's server when the serving branch is merged; the labelled test double until then."""
    if importlib.util.find_spec("model.serving") is not None:
        return [sys.executable, "-m", "model.serving"]
    return [sys.executable, str(STANDIN)]


@dataclass
class Workflow:
    aws: LocalAWS
    stack: WorkflowStack
    settings: Settings

    @property
    def sfn(self) -> Any:
        return self.aws.client("stepfunctions")

    def start(self, name: str, **inputs: Any) -> str:
        arn = self.stack.outputs["state_machine_arn"]
        return str(self.sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(inputs))["executionArn"])

    def wait(self, execution_arn: str, timeout: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            desc = self.sfn.describe_execution(executionArn=execution_arn)
            if desc["status"] != "RUNNING":
                return dict(desc)
            time.sleep(0.5)
        raise TimeoutError(f"{execution_arn} still running after {timeout} s")

    def states(self, execution_arn: str) -> list[str]:
        """Names of the states entered, in order (the execution history, condensed)."""
        events = self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        return list(self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"])

    def service(self) -> dict[str, Any]:
        ecs = self.aws.client("ecs")
        return dict(ecs.describe_services(cluster=self.stack.cluster, services=[self.stack.service])["services"][0])

    def serving_env(self, task_definition: str) -> dict[str, str]:
        td = self.aws.client("ecs").describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
        serving = next(c for c in td["containerDefinitions"] if c["name"] == "serving")
        return {e["name"]: e["value"] for e in serving.get("environment", [])}


def workflow_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "ESTEIRA_MODEL_NAME": settings.registered_model_name,
        "ESTEIRA_EXPERIMENT": settings.experiment_name,
        "ESTEIRA_MIN_ROWS": "20",
        # The 12-intent slice: the absolute first-model bar is for the full data set.
        "ESTEIRA_GATE_MIN_ACCURACY": "0.5",
        "ESTEIRA_GATE_MIN_MACRO_F1": "0.5",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        **extra,
    }


@pytest.fixture()
def local_aws(tmp_path: Path) -> Iterator[LocalAWS]:
    aws = LocalAWS(workdir=tmp_path / "localaws").start()
    try:
        yield aws
    finally:
        aws.stop()


def make_workflow(
    aws: LocalAWS, settings: Settings, initial_model_uri: str = "", backend: str = "ecs", **env: str
) -> Workflow:
    stack = WorkflowStack(
        aws, environment=workflow_env(settings, **env), serving_command=serving_command(), training_backend=backend
    )
    return Workflow(aws, stack.deploy(initial_model_uri=initial_model_uri), settings)


def explain(wf: Workflow, execution_arn: str) -> str:
    """Failed events and the local task logs, for assertion messages."""
    lines = []
    for e in wf.history(execution_arn):
        for key, val in e.items():
            if key.endswith("FailedEventDetails"):
                lines.append(f"{e['type']}: {json.dumps(val, default=str)[:1500]}")
    for log in sorted((wf.aws.workdir / "logs").glob("*.log")):
        lines.append(f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}")
    return "\n".join(lines)
