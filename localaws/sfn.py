"""Step Functions: the `.sync` integrations moto cannot run, done by localaws-owned Lambda functions.

At CreateStateMachine/UpdateStateMachine time the definition is rewritten: every Task whose Resource
is `arn:aws:states:::ecs:runTask.sync` or `arn:aws:states:::sagemaker:createTrainingJob.sync` gets
the ARN of a localaws function instead, with the SAME Parameters. That function does what Step
Functions does in AWS (start the job, wait for it, fail the state if it failed) and returns the same
result shape (the described task / training job, PascalCase keys). Nothing else in the definition
changes; the product file on disk is never touched. DescribeStateMachine shows the rewritten text.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3

from localaws import lambdas
from localaws.private_dns import proxy_env

REWRITES = {
    "arn:aws:states:::ecs:runTask.sync": "localaws-ecs-runtask-sync",
    "arn:aws:states:::sagemaker:createTrainingJob.sync": "localaws-sagemaker-training-sync",
}
HANDLERS = {
    "localaws-ecs-runtask-sync": "localaws.sfn.ecs_run_task_sync",
    "localaws-sagemaker-training-sync": "localaws.sfn.sagemaker_training_sync",
}


# With IAM enforced (localaws.iam): authorises a training job as AWS would and returns the credentials
# of its role, which the job's process runs with.
training_identity: Callable[[dict[str, Any]], dict[str, str]] | None = None


class TaskFailed(RuntimeError):
    """A failed .sync job. AWS reports `States.TaskFailed`; a Lambda error may not use the reserved
    `States.` prefix (moto rejects it, as AWS would), so locally the name is `LocalAWS.TaskFailed`.
    The product ASL catches States.ALL for these tasks, so control flow is the same."""

    error_type = "LocalAWS.TaskFailed"


def _camel(value: Any) -> Any:
    """Step Functions' PascalCase parameters -> the API's camelCase (what the service integration does)."""
    if isinstance(value, dict):
        return {(k[:1].lower() + k[1:]): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _pascal(value: Any) -> Any:
    if isinstance(value, dict):
        return {(k[:1].upper() + k[1:]): _pascal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pascal(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _client(service: str) -> Any:
    make: Any = boto3.client
    return make(
        service,
        endpoint_url=lambdas.getenv("AWS_ENDPOINT_URL"),
        region_name=lambdas.getenv("AWS_DEFAULT_REGION", "us-east-1"),
        # The invoking function's credentials (the state machine's role under IAM enforcement), not
        # this process's: a builtin handler's environment is not os.environ.
        aws_access_key_id=lambdas.getenv("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=lambdas.getenv("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=lambdas.getenv("AWS_SESSION_TOKEN"),
    )


def ecs_run_task_sync(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    ecs = _client("ecs")
    params = _camel(event)
    started = ecs.run_task(**params)
    if started.get("failures") or not started.get("tasks"):
        raise TaskFailed(json.dumps(started.get("failures"), default=str))
    arn = started["tasks"][0]["taskArn"]
    cluster = params.get("cluster", "default")
    timeout = float(lambdas.getenv("LOCALAWS_SYNC_TIMEOUT", "3600") or "3600")
    deadline = time.monotonic() + timeout
    while True:
        task = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
        if task["lastStatus"] == "STOPPED":
            break
        if time.monotonic() > deadline:
            ecs.stop_task(cluster=cluster, task=arn, reason="Step Functions task timed out")
            raise TaskFailed(f"task {arn} did not stop within {timeout} s")
        time.sleep(0.5)
    result = _pascal(task)
    codes = [c.get("exitCode") for c in task.get("containers", [])]
    if any(code not in (0, None) for code in codes) or task.get("stoppedReason", "").startswith("CannotStart"):
        raise TaskFailed(json.dumps(result, default=str))
    return result


def sagemaker_training_sync(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Run the training container's entrypoint + arguments as a local process with the job's Environment."""
    spec = event.get("AlgorithmSpecification", {})
    argv = list(spec.get("ContainerEntrypoint") or []) + list(spec.get("ContainerArguments") or [])
    if not argv:
        raise TaskFailed("AlgorithmSpecification has no ContainerEntrypoint (images are not run locally)")
    name = event.get("TrainingJobName", "job")
    workdir = Path(lambdas.getenv("LOCALAWS_WORKDIR", "/tmp") or "/tmp") / "sagemaker" / name
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**lambdas.environment(), **(event.get("Environment") or {})}
    if training_identity is not None:
        try:
            env.update(training_identity(event))
        except Exception as exc:  # AccessDenied on CreateTrainingJob, PassRole or the job's own setup
            raise TaskFailed(f"{type(exc).__name__}: {exc}") from exc
    if dns := lambdas.getenv("LOCALAWS_PRIVATE_DNS"):  # private names resolve per request, as in the VPC
        env.update(proxy_env(dns))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    started = datetime.now().astimezone()
    with (workdir / "output.log").open("wb") as log:
        try:
            proc = subprocess.run(argv, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
        except OSError as exc:
            raise TaskFailed(f"AlgorithmError: cannot start {argv[0]}: {exc}") from exc
    result = {
        "TrainingJobName": name,
        "TrainingJobStatus": "Completed" if proc.returncode == 0 else "Failed",
        "TrainingStartTime": started.isoformat(),
        "TrainingEndTime": datetime.now().astimezone().isoformat(),
        "AlgorithmSpecification": spec,
    }
    if proc.returncode != 0:
        result["FailureReason"] = f"AlgorithmError: exit code {proc.returncode}; log {workdir / 'output.log'}"
        raise TaskFailed(json.dumps(result))
    return result


def rewrite(definition: str, account_id: str, region: str) -> str:
    """Point unsupported .sync Tasks at localaws functions; everything else stays byte-for-byte the same."""
    doc = json.loads(definition)
    changed = False

    def walk(states: dict[str, Any]) -> None:
        nonlocal changed
        for state in states.values():
            if state.get("Type") == "Task" and state.get("Resource") in REWRITES:
                fn = REWRITES[state["Resource"]]
                state["Resource"] = f"arn:aws:lambda:{region}:{account_id}:function:{fn}"
                changed = True
            for branch in state.get("Branches", []):
                walk(branch.get("States", {}))
            if "Iterator" in state:
                walk(state["Iterator"].get("States", {}))
            if "ItemProcessor" in state:
                walk(state["ItemProcessor"].get("States", {}))

    walk(doc.get("States", {}))
    return json.dumps(doc, indent=2) if changed else definition


def _pascal_top(response: Any) -> Any:
    """The shape Step Functions gives a Task for the API's camelCase response: PascalCase keys at the
    top (ExecutionArn, Output, StartDate), dates as epoch milliseconds."""
    if not isinstance(response, dict):
        return response
    out = {}
    for key, value in response.items():
        if isinstance(value, datetime):
            value = int(value.timestamp() * 1000)
        out[key[:1].upper() + key[1:]] = value
    return out


def install_nested_executions() -> Any:
    """moto's `states:startExecution(.sync|.sync:2)` integration sends the ASL's PascalCase parameters
    to the API unchanged (botocore then fails on `StateMachineArn`) and hands the camelCase response to
    the state. AWS maps both ways: parameters to the API's members, the response to PascalCase. This
    adds that mapping, so a parent machine starts and waits for its child as in AWS; the error a failed
    child gives its parent (States.TaskFailed, the child's description as Cause) is moto's own."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    original_params = StateTaskServiceSfn._normalise_parameters
    original_eval = StateTaskServiceSfn._eval_service_task
    original_response = StateTaskServiceSfn._normalise_response

    def normalise_parameters(self: Any, parameters: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        original_params(self, parameters, *args, **kwargs)
        for key in list(parameters):
            parameters[key[:1].lower() + key[1:]] = parameters.pop(key)

    def eval_service_task(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        original_eval(self, env, *args, **kwargs)
        env.stack.append(_pascal_top(env.stack.pop()))

    def normalise_response(self: Any, response: Any, *args: Any, **kwargs: Any) -> None:
        original_response(self, response, *args, **kwargs)
        if isinstance(response, dict):
            pascal = _pascal_top(response)
            response.clear()
            response.update(pascal)

    StateTaskServiceSfn._normalise_parameters = normalise_parameters  # type: ignore[method-assign]
    StateTaskServiceSfn._eval_service_task = eval_service_task  # type: ignore[method-assign]
    StateTaskServiceSfn._normalise_response = normalise_response  # type: ignore[method-assign]

    def undo() -> None:
        StateTaskServiceSfn._normalise_parameters = original_params  # type: ignore[method-assign]
        StateTaskServiceSfn._eval_service_task = original_eval  # type: ignore[method-assign]
        StateTaskServiceSfn._normalise_response = original_response  # type: ignore[method-assign]

    return undo


def install(ensure_functions: Any) -> Any:
    from moto.stepfunctions.models import StepFunctionBackend

    original_create = StepFunctionBackend.create_state_machine
    original_update = StepFunctionBackend.update_state_machine

    def create_state_machine(backend: Any, name: str, definition: str, *args: Any, **kwargs: Any) -> Any:
        new = rewrite(definition, backend.account_id, backend.region_name)
        if new != definition:
            ensure_functions(backend.account_id, backend.region_name)
        return original_create(backend, name, new, *args, **kwargs)

    def update_state_machine(backend: Any, arn: str, definition: str | None = None, **kwargs: Any) -> Any:
        if definition is not None:
            new = rewrite(definition, backend.account_id, backend.region_name)
            if new != definition:
                ensure_functions(backend.account_id, backend.region_name)
            definition = new
        return original_update(backend, arn, definition=definition, **kwargs)

    StepFunctionBackend.create_state_machine = create_state_machine  # type: ignore[method-assign,assignment]
    StepFunctionBackend.update_state_machine = update_state_machine  # type: ignore[method-assign,assignment]
    undo_nested = install_nested_executions()

    def undo() -> None:
        StepFunctionBackend.create_state_machine = original_create  # type: ignore[method-assign]
        StepFunctionBackend.update_state_machine = original_update  # type: ignore[method-assign]
        undo_nested()

    return copy.copy(undo)
