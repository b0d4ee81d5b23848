"""Fixtures for the workflow suite: the stack `tofu apply` created, shared by a module, and a bare LocalAWS.

The workflow tests run one after another on one applied stack, as releases would in an account:
each test reads the champion and the serving revision before it acts and asserts on what changed.
A test that changes a function's configuration (as an operator would) has it restored afterwards.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from demo.canary import stage_data
from localaws import LocalAWS
from localaws.applied import AppliedStack
from model.config import Settings
from pipelines import executions, registry
from tests.conftest import deployed

# The 12-intent slice is far from the full data set: its first model cannot reach the absolute bars
# set for BANKING77, so the evaluate function gets these (an operator's configuration change).
SLICE_GATE = {"ESTEIRA_GATE_MIN_ACCURACY": "0.5", "ESTEIRA_GATE_MIN_MACRO_F1": "0.5"}
# The EC2 training capacity of the workflow suite's stack (docs/training-capacity.md): one small host.
EC2_TRAINING = '{enabled=true, instance_type="m6i.large", task_cpu=2048, task_memory=7168}'


@dataclass
class Workflow:
    stack: AppliedStack
    settings: Settings
    slice_files: dict[str, Path]
    _changed: dict[str, dict[str, str]] = field(default_factory=dict)  # function -> environment before

    @property
    def aws(self) -> LocalAWS:
        return self.stack.local

    @property
    def sfn(self) -> Any:
        return self.aws.client("stepfunctions")

    def configure(self, fn: str, **env: str) -> None:
        """Change one function's environment for this test only."""
        if fn not in self._changed:
            lam = self.aws.client("lambda")
            name = self.stack.outputs["functions"][fn]
            self._changed[fn] = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        self.stack.update_function_env(fn, **env)

    def restore(self) -> None:
        lam = self.aws.client("lambda")
        for fn, env in self._changed.items():
            name = self.stack.outputs["functions"][fn]
            lam.update_function_configuration(FunctionName=name, Environment={"Variables": env})
        self._changed.clear()

    def start(self, name: str, **inputs: Any) -> str:
        arn = self.stack.outputs["state_machine_arn"]
        # Local data files go to the data bucket first: no task or function can read this machine's files.
        inputs = stage_data(self.stack, name, inputs)
        return str(self.sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(inputs))["executionArn"])

    def wait(self, execution_arn: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            desc = self.sfn.describe_execution(executionArn=execution_arn)
            if desc["status"] != "RUNNING":
                return dict(desc)
            time.sleep(0.5)
        raise TimeoutError(f"{execution_arn} still running after {timeout} s")

    def states(self, execution_arn: str) -> list[str]:
        """Names of the states entered, in order, the release's (a child execution) included."""
        return executions.states(self.sfn, execution_arn)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        return executions.history(self.sfn, execution_arn)

    def service(self) -> dict[str, Any]:
        ecs = self.aws.client("ecs")
        return dict(ecs.describe_services(cluster=self.stack.cluster, services=[self.stack.service])["services"][0])

    def serving_container(self, task_definition: str) -> dict[str, Any]:
        td = self.aws.client("ecs").describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
        return dict(next(c for c in td["containerDefinitions"] if c["name"] == "serving"))

    def serving_env(self, task_definition: str) -> dict[str, str]:
        return {e["name"]: e["value"] for e in self.serving_container(task_definition).get("environment", [])}

    def champion(self) -> str | None:
        v = registry.version_by_alias(self.settings, registry.CHAMPION)
        return None if v is None else str(v.version)

    def inputs(self, **extra: str) -> dict[str, str]:
        files = self.slice_files
        return {"train_data": str(files["train"]), "eval_data": str(files["test"]), "smoke_data": str(files["test"]),
                **extra}  # fmt: skip


@pytest.fixture(scope="module")
def applied_workflow(tmp_path_factory: pytest.TempPathFactory, slice_files: dict[str, Path]) -> Iterator[Workflow]:
    """The applied stack with the SageMaker training backend (a user's `-var training_backend=sagemaker`)
    and the EC2 training capacity (`-var ec2_training=...`, sized for an m6i.large host): the demo, the
    canary suite and tests/slow/test_applied_stack.py run dev's default, ECS on Fargate."""
    with deployed(tmp_path_factory, "workflow", training_backend="sagemaker", ec2_training=EC2_TRAINING) as (
        stack,
        settings,
    ):
        stack.update_function_env("evaluate", **SLICE_GATE)
        yield Workflow(stack, settings, slice_files)


@pytest.fixture()
def workflow(applied_workflow: Workflow) -> Iterator[Workflow]:
    applied_workflow.stack.notifications()  # drop what earlier tests published
    try:
        yield applied_workflow
    finally:
        applied_workflow.restore()


@pytest.fixture()
def local_aws(tmp_path: Path) -> Iterator[LocalAWS]:
    aws = LocalAWS(workdir=tmp_path / "localaws").start()
    try:
        yield aws
    finally:
        aws.stop()
