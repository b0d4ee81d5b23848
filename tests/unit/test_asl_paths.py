"""Every state and every Catch edge of both state machines runs in a test.

The two Terraform templates (stepfunctions/train_evaluate_deploy.asl.json, the workflow, and
stepfunctions/release.asl.json, the release it starts with `states:startExecution.sync:2`) are
rendered with stand-in values and run on moto's ASL interpreter, in-process. Every Task except the
nested release execution runs a Lambda double (tests/unit/asl_doubles.py) that answers as the real
step does, or raises the error the scenario names. The nested execution is real: the workflow
starts the release machine and waits for it.

SCENARIOS (below) is the table to read first: the paths a run takes. Then, generated from the
definitions on disk, one scenario per Catch edge of every state: a scenario that already enters the
state, plus an error there that this catcher takes (not an earlier one, and no retrier). At the end,
the states entered and the Catch edges taken, read from the execution histories of both machines,
must be all of them.

Changes to the RENDERED copies only (the files are never touched), each to keep the test fast:
- retriers that match any error (`States.ALL`: Rollback and CanaryAbort, 5 + 10 s) wait 1 + 1 s, and
  so does the Release task's retrier of a refused start (10 s, then 20 s);
- one rendering gives the Release task a 1 s TimeoutSeconds (see RELEASE_TIMES_OUT).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import logging
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws
from moto.core.exceptions import AWSError
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_callback
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from localaws import lambdas as local_lambdas
from localaws.sfn import install_nested_executions
from tests.unit import asl_doubles as doubles

# About 25 s here, 45 s under CI load: `make test` stays under its 10 minutes; .ci/run runs it in test-slow.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_ASL = ROOT / "stepfunctions" / "train_evaluate_deploy.asl.json"
RELEASE_ASL = ROOT / "stepfunctions" / "release.asl.json"
REGION, ACCOUNT = "us-east-1", "123456789012"
START_EXECUTION_SYNC = "arn:aws:states:::states:startExecution.sync:2"
RELEASE_MACHINE = "esteira-test-release"
RELEASE_MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{RELEASE_MACHINE}"
INJECTED = "InjectedError"  # no retrier names it: only `States.ALL` / `States.TaskFailed` catchers take it

Edge = tuple[str, str, int]  # (machine, state, catcher index)

# --- rendering -----------------------------------------------------------------------------------------


def stand_in_variables(**changes: str) -> dict[str, str]:
    """A value for every variable Terraform passes (contract.yaml asl_variables), as a dev stack has them;
    EC2 and SageMaker training are both enabled, so every training branch can run."""
    contract = yaml.safe_load((ROOT / "contract.yaml").read_text())
    values = {
        "sns_topic_arn": f"arn:aws:sns:{REGION}:{ACCOUNT}:esteira-dev-notifications",
        "ecs_cluster_arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/esteira-dev",
        "train_task_definition_arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/esteira-dev-train:1",
        "train_container_name": "train",
        "train_subnets": "subnet-0a,subnet-0b",
        "train_security_groups": "sg-0a",
        "training_backend": "ecs",
        "sagemaker_enabled": "true",
        "ec2_training_enabled": "true",
        "ec2_capacity_provider": "esteira-dev-ec2-training",
        "train_ec2_task_definition_arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/esteira-dev-train-ec2:1",
        "sagemaker_role_arn": f"arn:aws:iam::{ACCOUNT}:role/esteira-dev-sagemaker",
        "training_image_uri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/esteira-dev/training:0.1.0",
        "image_variable": contract["image_variable"],
        "mlflow_credentials_secret": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:esteira-dev/mlflow/wf-A1",
        "data_bucket": f"esteira-dev-data-{ACCOUNT}",
        "artifacts_bucket": f"esteira-dev-artifacts-{ACCOUNT}",
        "deployment_strategy": "all_at_once",
        "canary_steps": "[10, 50, 100]",
        "canary_bake_seconds": "600",
        "shadow_seconds": "1800",
        "release_state_machine_arn": RELEASE_MACHINE_ARN,
    }
    names = contract["asl_variables"]
    for name in names:  # the dev stack's functions (the doubles replace them)
        if name.endswith("_function_arn"):
            function = "esteira-dev-" + name.removesuffix("_function_arn")
            values.setdefault(name, f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}")
    values.update(changes)
    missing = set(names) - values.keys()
    assert not missing, f"no stand-in value for {sorted(missing)}: add one here"
    return {name: values[name] for name in names}


def render(path: Path, variables: dict[str, str]) -> dict[str, Any]:
    """Terraform's templatefile(), for these templates: `${name}` only inside strings."""
    text = path.read_text()
    unknown = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text)) - variables.keys()
    assert not unknown, f"{path.name} uses variables contract.yaml does not list: {sorted(unknown)}"
    rendered: dict[str, Any] = json.loads(re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda m: variables[m.group(1)], text))
    return rendered


def tasks(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in definition["States"].items() if s["Type"] == "Task"}


def nested_task(definition: dict[str, Any]) -> str:
    """The workflow's Task that starts the release and waits for it."""
    (name,) = [n for n, s in tasks(definition).items() if s["Resource"] == START_EXECUTION_SYNC]
    return name


def with_doubles(definition: dict[str, Any]) -> dict[str, Any]:
    """Every Task but the nested execution runs its double; retriers that take any error wait 1 s."""
    out = copy.deepcopy(definition)
    for name, state in tasks(out).items():
        if state["Resource"] != START_EXECUTION_SYNC:
            state["Resource"] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{doubles.function_name(name)}"
        for retrier in state.get("Retry", []):
            # Retriers of the injected errors (1 + 1 s, not 5 + 10 s) and of a refused start (1 s, not 10 s).
            if "States.ALL" in retrier["ErrorEquals"] or state["Resource"] == START_EXECUTION_SYNC:
                retrier["IntervalSeconds"], retrier["BackoffRate"] = 1, 1.0
    return out


# The workflow in four renderings; all start the one release machine (but the last).
WORKFLOW = "workflow"  # the dev stack, every training backend deployed
ECS_ONLY = "workflow-ecs-only"  # a stack without EC2 or SageMaker training
# The Release task has one catcher; ReleaseEnded? tells a release that ran and failed (States.TaskFailed
# with the child's description) from one that never started (a StartExecution refusal, plain-text
# Cause) and from a timeout. The timeout path is reached through the task's TimeoutSeconds: this
# rendering lowers it from a day to 1 s, and the scenario's release is a shadow one that bakes 2 s.
RELEASE_TIMES_OUT = "workflow-release-timeout"
NO_RELEASE_MACHINE = "workflow-no-release-machine"  # StartExecution fails: see the last test


def workflow_renderings() -> dict[str, dict[str, Any]]:
    timeout = render(WORKFLOW_ASL, stand_in_variables())
    timeout["States"][nested_task(timeout)]["TimeoutSeconds"] = 1
    missing = RELEASE_MACHINE_ARN.replace(RELEASE_MACHINE, "esteira-test-no-such-machine")
    return {
        WORKFLOW: render(WORKFLOW_ASL, stand_in_variables()),
        ECS_ONLY: render(WORKFLOW_ASL, stand_in_variables(ec2_training_enabled="false", sagemaker_enabled="false")),
        RELEASE_TIMES_OUT: timeout,
        NO_RELEASE_MACHINE: render(WORKFLOW_ASL, stand_in_variables(release_state_machine_arn=missing)),
    }


def machines() -> dict[str, dict[str, Any]]:
    """The two machines the coverage counts (the files on disk, read now)."""
    return {
        "workflow": render(WORKFLOW_ASL, stand_in_variables()),
        "release": render(RELEASE_ASL, stand_in_variables()),
    }


# --- the scenario table --------------------------------------------------------------------------------

OK, FAILED = "SUCCEEDED", "FAILED"
# Every execution's input: what CI passes, and no waiting in the release. The workflow's input becomes
# its `args`, which the release gets as `overrides` over the stack's canary_bake_seconds/shadow_seconds.
BASE_INPUT = {"trigger": {"kind": "ci", "principal": "pytest"}, "canary_bake_seconds": 0, "shadow_seconds": 0}
CANARY = {"deployment_strategy": "canary", "canary_steps": [10, 100]}
SHADOW = {"deployment_strategy": "shadow"}
# What a step answers, over its canned output (asl_doubles.CANNED):
LOCK_HELD = {"acquired": False, "holder": "arn:aws:states:...:execution:esteira-dev:other", "status": "already-running"}
GATE_REJECTED = {"gate": {"passed": False, "reasons": ["macro_f1 0.850 < champion 0.890"]}}
ALREADY_CHAMPION = {"model_version": doubles.CHAMPION_VERSION, "already_champion": True}
CHECK_FAILS = {"passed": False, "breaches": ["error_rate"], "reason": "error_rate 0.12 > 0.05"}


@dataclass
class Scenario:
    name: str
    input: dict[str, Any] = field(default_factory=dict)  # over BASE_INPUT
    ends_at: str = ""  # the workflow's last state
    status: str = OK  # the workflow's
    release_ends_at: str | None = None  # the release's last state (None: no release, or not checked)
    faults: dict[str, str] = field(default_factory=dict)  # state -> the error its double raises
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # state -> fields over its canned output
    visits: dict[str, int] = field(default_factory=dict)  # state -> times entered (either machine)
    machine: str = WORKFLOW  # which rendering of the workflow
    edge: Edge | None = None  # a generated scenario's Catch edge


SCENARIOS = [
    #        name                              input                               workflow ends at     release ends at
    Scenario("all-at-once release",            {},                                 "Done", OK,          "Released",
             visits={"Deploy": 1, "SmokeTest": 1, "Promote": 1, "CanaryStart": 0}),
    Scenario("canary 10 -> 100 %, healthy",    CANARY,                             "Done", OK,          "Released",
             visits={"CanaryShift": 2, "CanaryBake": 2, "CanaryCheck": 2, "CanaryFinalize": 1, "Promote": 1}),
    Scenario("canary check fails",             CANARY,                             "Failed", FAILED,    "RolledBack",
             outputs={"CanaryCheck": CHECK_FAILS},
             visits={"CanaryAbort": 1, "Promote": 0, "NotifyRolledBack": 1, "ReleaseLockAfterFailure": 1}),
    Scenario("shadow",                         SHADOW,                             "Done", OK,          "Shadowed",
             visits={"ShadowBake": 1, "ShadowReport": 1, "CanaryShift": 0, "Promote": 0}),
    Scenario("backend not deployed",           {"training_backend": "sagemaker"},  "BackendNotDeployed", FAILED,
             machine=ECS_ONLY, visits={"AcquireLock": 0}),
    Scenario("lock held: skipped",             {},                                 "Skipped", OK,
             outputs={"AcquireLock": LOCK_HELD}, visits={"AlreadyRunning": 1, "ValidateData": 0, "ReleaseLock": 0}),
    Scenario("lock error",                     {},                                 "LockFailed", FAILED,
             faults={"AcquireLock": "ResourceNotFoundException"}, visits={"NotifyLockError": 1, "ValidateData": 0}),
    Scenario("gate rejects the challenger",    {},                                 "Done", OK,
             outputs={"Evaluate": GATE_REJECTED}, visits={"NotifyRejected": 1, "Release": 0, "ReleaseLock": 1}),
    Scenario("training on ECS (Fargate)",      {"training_backend": "ecs"},        "Done", OK,          "Released",
             visits={"TrainEcs": 1, "TrainEc2": 0, "TrainSageMaker": 0}),
    Scenario("training on EC2",                {"training_backend": "ec2"},        "Done", OK,          "Released",
             visits={"TrainEc2": 1, "TrainEcs": 0, "TrainSageMaker": 0}),
    Scenario("training on SageMaker",          {"training_backend": "sagemaker"},  "Done", OK,          "Released",
             visits={"TrainSageMaker": 1, "TrainEcs": 0, "TrainEc2": 0}),
    Scenario("already champion, canary asked", CANARY,                             "Done", OK,          "Released",
             outputs={"Evaluate": ALREADY_CHAMPION}, visits={"Deploy": 1, "CanaryStart": 0}),
]  # fmt: skip

# Not part of the coverage: the release machine does not exist, so StartExecution itself fails.
CANNOT_START = Scenario("the release cannot start", machine=NO_RELEASE_MACHINE)
# Nor this: the account is at its quota of open executions for the first StartExecution of the release.
LIMIT_ONCE = Scenario("the first start is refused for the execution quota", ends_at="Done", release_ends_at="Released")


class ExecutionLimitExceeded(AWSError):
    """StartExecution's answer when the account has too many open executions (the API reference's error)."""

    TYPE, STATUS = "ExecutionLimitExceeded", 400


@contextlib.contextmanager
def release_start_refused_once() -> Iterator[list[str]]:
    """moto's StartExecution refuses the release machine's first start; yields the machines it refused."""
    original = StepFunctionsParserBackend.start_execution
    refused: list[str] = []

    def start_execution(backend: Any, state_machine_arn: str, *args: Any, **kwargs: Any) -> Any:
        if state_machine_arn == RELEASE_MACHINE_ARN and not refused:
            refused.append(state_machine_arn)
            raise ExecutionLimitExceeded("Maximum number of running executions reached")
        return original(backend, state_machine_arn, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StepFunctionsParserBackend, "start_execution", start_execution)
        yield refused


# --- reading an ASL ------------------------------------------------------------------------------------


def matches(error_equals: list[str], error: str) -> bool:
    """A retrier's or catcher's ErrorEquals against an error name, as Step Functions matches them:
    `States.TaskFailed` takes every error but the `States.` ones (States.Timeout in particular)."""
    if "States.ALL" in error_equals:
        return True
    if "States.TaskFailed" in error_equals and not error.startswith("States."):
        return True
    return error in error_equals


def catcher_for(state: dict[str, Any], error: str) -> int | None:
    return next((i for i, c in enumerate(state.get("Catch", [])) if matches(c["ErrorEquals"], error)), None)


def error_for(state: dict[str, Any], index: int) -> str | None:
    """An error a double can raise that this catcher takes (not an earlier one), preferably one no
    retrier takes. A `States.ALL` retrier takes any: the double fails every attempt, so it runs out."""
    names = [n for n in state["Catch"][index]["ErrorEquals"] if not n.startswith("States.")] + [INJECTED]
    fits = [n for n in names if catcher_for(state, n) == index]
    unretried = [n for n in fits if not any(matches(r["ErrorEquals"], n) for r in state.get("Retry", []))]
    return (unretried or fits or [None])[0]


def terminal_after(definition: dict[str, Any], name: str) -> str:
    """The Succeed/Fail state a machine ends in from `name` when every Task succeeds (a Choice's
    branches must agree)."""
    state = definition["States"][name]
    if state["Type"] in ("Succeed", "Fail") or state.get("End"):
        return name
    if state["Type"] == "Choice":
        ends = {terminal_after(definition, n) for n in [c["Next"] for c in state["Choices"]] + [state["Default"]]}
        assert len(ends) == 1, f"{name}: the branches end differently ({sorted(ends)}); name the expectation by hand"
        return ends.pop()
    return terminal_after(definition, state["Next"])


def status_of(definition: dict[str, Any], terminal: str) -> str:
    return FAILED if definition["States"][terminal]["Type"] == "Fail" else OK


def all_edges() -> list[Edge]:
    return [
        (machine, name, i)
        for machine, definition in machines().items()
        for name, state in definition["States"].items()
        for i in range(len(state.get("Catch", [])))
    ]


# --- running on moto -----------------------------------------------------------------------------------


@dataclass
class Run:
    scenario: Scenario
    status: str
    entered: dict[str, list[str]]  # machine -> states in the order entered
    edges: set[Edge]


FAILURE_EVENTS = ("LambdaFunctionFailed", "LambdaFunctionTimedOut", "TaskFailed", "TaskTimedOut")


def read_history(events: list[dict[str, Any]], definition: dict[str, Any], machine: str) -> tuple[list[str], set[Edge]]:
    """States entered, and Catch edges taken: a state whose last attempt failed, then its catcher's Next."""
    entered: list[str] = []
    edges: set[Edge] = set()
    failed_with: str | None = None
    for event in events:
        if event["type"].endswith("StateEntered"):
            name = event["stateEnteredEventDetails"]["name"]
            if entered and failed_with is not None:
                previous = definition["States"][entered[-1]]
                index = catcher_for(previous, failed_with)
                assert index is not None and previous["Catch"][index]["Next"] == name, (
                    f"{machine}: {entered[-1]} failed with {failed_with}, then {name} ran"
                )
                edges.add((machine, entered[-1], index))
            entered.append(name)
            failed_with = None
        elif event["type"] in FAILURE_EVENTS:
            details = next(v for k, v in event.items() if k.endswith("EventDetails"))
            failed_with = details.get("error", "")
        elif event["type"].endswith(("Succeeded", "Submitted", "Scheduled", "Started")):
            failed_with = None  # a retry, or the state succeeded
    return entered, edges


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("placeholder.py", "")
    return buffer.getvalue()


class Harness:
    """The machines and the doubles' functions in moto; runs one scenario at a time (the doubles read a
    module-level scenario)."""

    def __init__(self) -> None:
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        iam = boto3.client("iam", region_name=REGION)
        lambda_trust = {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        trust = {"Version": "2012-10-17", "Statement": [lambda_trust]}
        role = iam.create_role(RoleName="esteira-test", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        self.definitions = {"release": render(RELEASE_ASL, stand_in_variables()), **workflow_renderings()}
        workflow_tasks, release_tasks = tasks(self.definitions[WORKFLOW]), tasks(self.definitions["release"])
        shared = workflow_tasks.keys() & release_tasks.keys()
        assert not shared, f"a Task name in both machines: {shared} (the doubles are per state name)"
        doubled = {n for n, s in {**workflow_tasks, **release_tasks}.items() if s["Resource"] != START_EXECUTION_SYNC}
        assert doubled <= doubles.CANNED.keys(), f"Tasks without a double: {sorted(doubled - doubles.CANNED.keys())}"
        lam = boto3.client("lambda", region_name=REGION)
        for name in doubled:
            lam.create_function(
                FunctionName=doubles.function_name(name),
                Runtime="python3.12",
                Role=role,
                Handler="tests.unit.asl_doubles.handler",  # localaws.lambdas runs it in-process
                Code={"ZipFile": _zip()},
                Timeout=60,
            )
        self.arns = {}
        for key, definition in self.definitions.items():
            name = RELEASE_MACHINE if key == "release" else f"esteira-test-{key}"
            text = json.dumps(with_doubles(definition))
            self.arns[key] = self.sfn.create_state_machine(name=name, definition=text, roleArn=role)["stateMachineArn"]
        assert self.arns["release"] == RELEASE_MACHINE_ARN
        self.count = 0

    def _wait(self, arn: str) -> str:
        deadline = time.monotonic() + 60
        while (status := self.sfn.describe_execution(executionArn=arn)["status"]) == "RUNNING":
            assert time.monotonic() < deadline, f"{arn} still running after 60 s"
            time.sleep(0.02)
        return str(status)

    def _history(self, arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            events += page["events"]
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]

    def _releases(self) -> set[str]:
        return {e["executionArn"] for e in self.sfn.list_executions(stateMachineArn=self.arns["release"])["executions"]}

    def run(self, scenario: Scenario) -> Run:
        self.count += 1
        doubles.SCENARIO.clear()
        doubles.SCENARIO.update(scenario.faults)
        doubles.OUTPUTS.clear()
        doubles.OUTPUTS.update(scenario.outputs)
        doubles.CALLS.clear()
        before = self._releases()
        arn = self.sfn.start_execution(
            stateMachineArn=self.arns[scenario.machine],
            name=f"path-{self.count:03d}",
            input=json.dumps({**BASE_INPUT, **scenario.input}),
        )["executionArn"]
        status = self._wait(arn)
        entered, edges = read_history(self._history(arn), self.definitions[scenario.machine], "workflow")
        run = Run(scenario, status, {"workflow": entered}, edges)
        started = self._releases() - before
        assert len(started) <= 1, f"{scenario.name}: more than one release started: {started}"
        for child in started:
            self._wait(child)  # a timed-out Release leaves its release running
            run.entered["release"], edges = read_history(self._history(child), self.definitions["release"], "release")
            run.edges |= edges
        return run


# --- the scenario for a Catch edge ---------------------------------------------------------------------


def retry_waits(run: Run, definitions: dict[str, dict[str, Any]]) -> int:
    """How many of a run's injected errors a retrier waited on (a second or two each)."""
    states = {**definitions[WORKFLOW]["States"], **definitions["release"]["States"]}
    return sum(
        any(matches(r["ErrorEquals"], error) for r in states[name].get("Retry", []))
        for name, error in run.scenario.faults.items()
    )


def cost(run: Run, definitions: dict[str, dict[str, Any]]) -> tuple[int, int]:
    return retry_waits(run, definitions), len(run.scenario.faults)


def base_for(edge: Edge, runs: list[Run], definitions: dict[str, dict[str, Any]]) -> Run | None:
    """The run to build an edge's scenario on: one that entered the state, waiting on the fewest retries."""
    machine, name, _ = edge
    bases = [r for r in runs if name in r.entered.get(machine, []) and r.scenario.machine == WORKFLOW]
    return min(bases, key=lambda r: cost(r, definitions), default=None)


def scenario_for_edge(edge: Edge, base: Run, definitions: dict[str, dict[str, Any]]) -> Scenario | None:
    """A scenario that takes this Catch edge: the base run's scenario plus an error at the state."""
    machine, name, index = edge
    workflow = definitions[WORKFLOW]
    definition = definitions[machine]
    state = definition["States"][name]
    target = state["Catch"][index]["Next"]
    scenario = copy.deepcopy(base.scenario)
    scenario.edge, scenario.visits, scenario.name = edge, {}, f"{machine}: {name} -> Catch[{index}] -> {target}"
    scenario.release_ends_at = None
    if state.get("Resource") == START_EXECUTION_SYNC:
        if catcher_for(state, "States.TaskFailed") == index:  # the release fails: its first Task raises
            first = next(s for s in base.entered["release"] if s in tasks(definitions["release"]))
            scenario.faults = {**scenario.faults, first: INJECTED}
        elif catcher_for(state, "States.Timeout") == index:  # see RELEASE_TIMES_OUT
            scenario.machine, scenario.input = RELEASE_TIMES_OUT, {**SHADOW, "shadow_seconds": 2}
            scenario.faults, scenario.outputs, scenario.release_ends_at = {}, {}, "Shadowed"
        else:
            return None
        terminal = terminal_after(workflow, target)
    elif (error := error_for(state, index)) is None:
        return None
    elif machine == "release":  # the workflow follows the release: a failed one is States.TaskFailed to it
        scenario.faults = {**scenario.faults, name: error}
        scenario.release_ends_at = terminal_after(definition, target)
        release = workflow["States"][nested_task(workflow)]
        if status_of(definition, scenario.release_ends_at) == FAILED:
            caught = catcher_for(release, "States.TaskFailed")
            assert caught is not None, "the workflow does not catch a failed release"
            terminal = terminal_after(workflow, release["Catch"][caught]["Next"])
        else:
            terminal = terminal_after(workflow, release["Next"])
    else:
        scenario.faults = {**scenario.faults, name: error}
        terminal = terminal_after(workflow, target)
    scenario.ends_at, scenario.status = terminal, status_of(workflow, terminal)
    return scenario


# --- the tests -----------------------------------------------------------------------------------------


@dataclass
class Results:
    named: dict[str, Run]
    by_edge: dict[Edge, Run]
    cannot_start: Run
    limit_once: Run
    limit_refusals: list[str]

    @property
    def runs(self) -> list[Run]:
        return [*self.named.values(), *self.by_edge.values()]


@pytest.fixture(scope="module")
def results() -> Iterator[Results]:
    with (
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}),
        pytest.MonkeyPatch.context() as patch,
    ):
        # moto polls a nested execution every 0.5 s; most scenarios run one, and its states take ms.
        patch.setattr(state_task_service_callback, "_DELAY_SECONDS_SYNC_CONDITION_CHECK", 0.02)
        # moto parses the definition again for every execution (~0.15 s each here); the parsed program
        # holds no execution state, so one parse per definition serves every execution.
        parse = functools.cache(AmazonStateLanguageParser.parse)
        patch.setattr(AmazonStateLanguageParser, "parse", staticmethod(parse))
        # moto logs every Fail state an execution reaches as an ERROR; most scenarios end in one.
        patch.setattr(logging.getLogger("moto.stepfunctions.parser"), "level", logging.CRITICAL)
        undo_nested = install_nested_executions()  # moto's startExecution.sync:2 needs it
        undo_lambdas = local_lambdas.install(local_lambdas.LambdaRuntime(base_env={}))  # the doubles, in-process
        try:
            harness = Harness()
            named = {s.name: harness.run(s) for s in SCENARIOS}
            runs, by_edge = list(named.values()), {}
            pending = all_edges()
            # One edge at a time: an error path's states are entered only by scenarios made before, and
            # the edge with the cheapest base goes first (ties: the order of the definitions).
            while bases := {e: b for e in pending if (b := base_for(e, runs, harness.definitions)) is not None}:
                edge = min(bases, key=lambda e: cost(bases[e], harness.definitions))
                pending.remove(edge)
                if (scenario := scenario_for_edge(edge, bases[edge], harness.definitions)) is not None:
                    by_edge[edge] = harness.run(scenario)
                    runs.append(by_edge[edge])
            cannot_start = harness.run(CANNOT_START)
            with release_start_refused_once() as refused:
                limit_once = harness.run(LIMIT_ONCE)
            yield Results(named, by_edge, cannot_start, limit_once, refused)
        finally:
            undo_lambdas()
            undo_nested()
            doubles.SCENARIO.clear()
            doubles.OUTPUTS.clear()


def check_run(run: Run) -> None:
    s = run.scenario
    trail = f"\n  workflow: {run.entered.get('workflow')}\n  release: {run.entered.get('release')}"
    assert run.entered["workflow"][-1] == s.ends_at, f"{s.name}: ended at {run.entered['workflow'][-1]}{trail}"
    assert run.status == s.status, f"{s.name}: {run.status}{trail}"
    if s.release_ends_at is not None:
        assert run.entered.get("release", [None])[-1] == s.release_ends_at, f"{s.name}: the release{trail}"
    seen = [*run.entered.get("workflow", []), *run.entered.get("release", [])]
    wrong = {n: seen.count(n) for n, times in s.visits.items() if seen.count(n) != times}
    assert not wrong, f"{s.name}: entered {wrong} times, expected {s.visits}{trail}"
    if s.edge is not None:
        assert s.edge in run.edges, f"{s.name}: the Catch edge was not taken; taken: {sorted(run.edges)}{trail}"


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
def test_scenario(results: Results, name: str) -> None:
    check_run(results.named[name])


@pytest.mark.parametrize("edge", all_edges(), ids=lambda e: f"{e[0]}:{e[1]}#{e[2]}")
def test_catch_edge(results: Results, edge: Edge) -> None:
    assert edge in results.by_edge, f"no scenario enters {edge[1]} ({edge[0]}), or no error a double raises fits"
    check_run(results.by_edge[edge])


def test_every_state_and_every_catch_edge_runs(results: Results) -> None:
    states = {(m, name) for m, definition in machines().items() for name in definition["States"]}
    edges = set(all_edges())
    entered = {(m, name) for r in results.runs for m, names in r.entered.items() for name in names}
    taken = set().union(*(r.edges for r in results.runs))
    assert not states - entered, f"states no scenario enters: {sorted(states - entered)}"
    assert not edges - taken, f"Catch edges no scenario takes: {sorted(edges - taken)}"
    assert entered <= states and taken <= edges, f"unknown: {sorted(entered - states)} {sorted(taken - edges)}"


def test_a_release_that_cannot_start_notifies_and_frees_the_lock(results: Results) -> None:
    """StartExecution refused (here: no such machine) has a plain-text Cause, not the release's description:
    ReleaseEnded? sends it to NotifyFailure (nothing was released), and the lock is given back."""
    run = results.cannot_start
    entered = run.entered["workflow"]
    assert entered[-5:] == ["Release", "ReleaseEnded?", "NotifyFailure", "ReleaseLockAfterFailure", "Failed"], entered
    assert "release" not in run.entered or not run.entered["release"]


def test_a_start_refused_for_the_execution_quota_is_retried(results: Results) -> None:
    """The account's open-execution quota refuses the release's first start: the Release task's retrier
    (release-start) starts it again, and the release runs once, to the end."""
    run = results.limit_once
    assert results.limit_refusals == [RELEASE_MACHINE_ARN], "the patched StartExecution never refused"
    check_run(run)
    assert run.entered["workflow"].count("Release") == 1, run.entered["workflow"]  # a retry, not a re-entry
    assert "NotifyFailure" not in run.entered["workflow"], run.entered["workflow"]
