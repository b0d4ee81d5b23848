"""Lambda doubles for the state machines' Task states (tests/unit/test_asl_paths.py).

The test points every Task (except the nested release execution) at a moto Lambda function named
`double-<State>` whose handler is `handler` below; localaws.lambdas runs it in-process. The double
finds its state from the function name and does what `SCENARIO` says for that state: answer with the
output the real step gives (the shapes of pipelines/*.py, pipelines/release/actions.py and
lambdas/*.py, as far as the ASL reads them), with `OUTPUTS[state]` merged over it, or raise an error
named as the scenario says. Step Functions names a Lambda error after the exception's class, so the
error is an exception of a class with that name.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from typing import Any

FUNCTION_PREFIX = "double-"

# Set by the test before each execution: state name -> "ok" or the error name to raise (unlisted: "ok").
SCENARIO: dict[str, str] = {}
# Set by the test: state name -> fields merged over the canned output (lock held, gate rejected, ...).
OUTPUTS: dict[str, dict[str, Any]] = {}
# Every invocation, in order: (state name, event). For debugging a failing scenario.
CALLS: list[tuple[str, dict[str, Any]]] = []
_CALLS_LOCK = threading.Lock()

MODEL_VERSION = "7"
CHAMPION_VERSION = "6"
_ACCOUNT = "123456789012"
_SERVING_TD = f"arn:aws:ecs:us-east-1:{_ACCOUNT}:task-definition/esteira-dev-serving"
_SNAPSHOT = "s3://esteira-dev-data-123456789012/snapshots/{role}/sha256=" + "ab" * 32 + "/"


def function_name(state: str) -> str:
    """The double's function name for a state (names may hold `?` and other characters Lambda refuses)."""
    return FUNCTION_PREFIX + re.sub(r"[^A-Za-z0-9_-]", "-", state)


def error_class(name: str) -> type[Exception]:
    """An exception class called `name`: Step Functions reports the error under the class's name."""
    return type(name, (Exception,), {})


# --- canned outputs, one per state, from the event the state sends ------------------------------------


def _lock_acquire(event: dict[str, Any]) -> dict[str, Any]:
    owner = event["owner"]
    return {"step": "lock", "acquired": True, "owner": owner, "holder": owner, "status": "acquired"}


def _lock_release(event: dict[str, Any]) -> dict[str, Any]:
    return {"step": "lock", "released": True, "owner": event["owner"], "status": "released"}


def _sns(event: dict[str, Any]) -> dict[str, Any]:
    return {"MessageId": "5f1c0b9e-0000-4000-8000-000000000000", "SdkHttpMetadata": {"HttpStatusCode": 200}}


def _validate(event: dict[str, Any]) -> dict[str, Any]:
    def summary(role: str) -> dict[str, Any]:
        return {"rows": 1000, "labels": 77, "snapshot_uri": _SNAPSHOT.format(role=role), "snapshot": "written"}

    train, evaluation = summary("train"), summary("eval")
    return {
        "step": "validate-data",
        "status": "valid",
        **train,
        "train": train,
        "eval": evaluation,
        "training_environment": {"MLFLOW_TRACKING_URI": "http://mlflow.esteira.internal:5000"},
    }


def _ecs_task(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "TaskArn": f"arn:aws:ecs:us-east-1:{_ACCOUNT}:task/esteira-dev/0123456789abcdef",
        "LastStatus": "STOPPED",
        "StoppedReason": "Essential container in task exited",
        "Containers": [{"Name": "train", "ExitCode": 0}],
    }


def _training_job(event: dict[str, Any]) -> dict[str, Any]:
    return {"TrainingJobName": event["TrainingJobName"], "TrainingJobStatus": "Completed"}


def _evaluate(event: dict[str, Any]) -> dict[str, Any]:
    metrics = {"accuracy": 0.91, "macro_f1": 0.9}
    return {
        "step": "evaluate",
        "model_version": MODEL_VERSION,
        "eval_dataset_hash": "sha256:" + "ab" * 32,
        "eval_dataset_snapshot": event["eval_data"],
        "challenger": {"version": MODEL_VERSION, "metrics": metrics},
        "champion": {"version": CHAMPION_VERSION, "metrics": {"accuracy": 0.9, "macro_f1": 0.89}},
        "gate": {"passed": True, "reasons": ["macro_f1 0.900 >= champion 0.890"]},
        "champion_version": CHAMPION_VERSION,
        "already_champion": False,
    }


def _deploy(event: dict[str, Any]) -> dict[str, Any]:
    version = event["model_version"]
    return {
        "step": "deploy",
        "status": "deploying",
        "model_version": version,
        "model_uri": f"models:/esteira/{version}",
        "task_definition": f"{_SERVING_TD}:8",
        "previous_task_definition": f"{_SERVING_TD}:7",
    }


def _stable(event: dict[str, Any]) -> dict[str, Any]:
    return {"step": "service-stable", "status": "stable", "task_definition": event["task_definition"], "running": 2}


def _smoke(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "step": "smoke-test",
        "status": "passed",
        "model_version": event["model_version"],
        "requests": 20,
        "accuracy": 0.95,
        "p50_ms": 12.0,
        "max_ms": 40.0,
    }


def _record(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "step": "record-release",
        "status": "recorded",
        "model_version": event["model_version"],
        "outcome": "serving",
    }


def _canary_start(event: dict[str, Any]) -> dict[str, Any]:
    strategy = event["strategy"]
    return {
        "strategy": strategy,
        "model_version": event["model_version"],
        "champion_version": event["previous_champion"],
        "candidate_task_definition": f"{_SERVING_TD}:9",
        "stable_task_definition": f"{_SERVING_TD}:7",
        "steps": list(event["steps"]) if strategy == "canary" else [],
        "alarms": [],
        "started_at": 1_700_000_000.0,
        "progress": {"next_index": 0, "weight": 0, "last": False, "shifted_at": 1_700_000_000.0},
    }


def _canary_stable(event: dict[str, Any]) -> dict[str, Any]:
    return {"step": "canary-stable", "canary": {"status": "stable"}, "stable": {"status": "stable"}}


def _canary_shift(event: dict[str, Any]) -> dict[str, Any]:
    steps, index = list(event["steps"]), int(event["index"])
    return {
        "index": index,
        "next_index": index + 1,
        "weight": steps[index],
        "last": index + 1 == len(steps),
        "shifted_at": 1_700_000_100.0 + index,
    }


def _canary_check(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "passed": True,
        "weight": event["weight"],
        "breaches": [],
        "reason": "within every threshold",
        "metrics": {"requests": 120, "error_rate": 0.0},
        "window_seconds": 0.0,
    }


def _canary_finalize(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": "serving",
        "model_version": event["model_version"],
        "task_definition": event["candidate_task_definition"],
        "previous_task_definition": event["stable_task_definition"],
    }


def _promote(event: dict[str, Any]) -> dict[str, Any]:
    version = event["evaluation"]["model_version"]
    return {
        "step": "promote",
        "model_version": version,
        "previous_champion": CHAMPION_VERSION,
        "reasons": event["evaluation"]["gate"]["reasons"],
        "status": "promoted",
        "champion": version,
    }


def _shadow_report(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": "shadowed",
        "model_version": event["model_version"],
        "champion_version": event["champion_version"],
        "agreement_rate": 0.97,
        "mirrored_requests": 300,
        "verdict": "agrees",
        "candidate_metrics": {"requests": 300},
        "champion": {"unchanged": CHAMPION_VERSION},
    }


def _canary_abort(event: dict[str, Any]) -> dict[str, Any]:
    canary = event["state"].get("canary") or {}
    check, error = canary.get("check") or {}, event["state"].get("error")
    reason = f"canary check failed: {check.get('reason')}" if check and not check.get("passed", True) else str(error)
    return {
        "status": "rolled_back",
        "model_version": event["model_version"],
        "reason": reason,
        "step": (canary.get("progress") or {}).get("weight"),
        "champion": {"unchanged": CHAMPION_VERSION},
        "breaches": check.get("breaches", []),
        "metrics": check.get("metrics"),
    }


def _rollback(event: dict[str, Any]) -> dict[str, Any]:
    previous = event["previous_task_definition"] or f"{_SERVING_TD}:7"
    error = event.get("error") or {}
    return {
        "step": "rollback",
        "model_version": event["model_version"],
        "reason": f"{error.get('Error', '')}: {error.get('Cause', '')}",
        "task_definition": {"from": f"{_SERVING_TD}:8", "to": previous},
        "serving_task_definition": previous,
        "champion": {"unchanged": CHAMPION_VERSION},
        "status": "rolled-back",
    }


CANNED: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    # train_evaluate_deploy.asl.json
    "AcquireLock": _lock_acquire,
    "NotifyLockError": _sns,
    "ValidateData": _validate,
    "TrainEcs": _ecs_task,
    "TrainEc2": _ecs_task,
    "TrainSageMaker": _training_job,
    "Evaluate": _evaluate,
    "NotifyRejected": _sns,
    "NotifyReleased": _sns,
    "ReleaseLock": _lock_release,
    "NotifyRolledBack": _sns,
    "NotifyRollbackFailed": _sns,
    "NotifyFailure": _sns,
    "ReleaseLockAfterFailure": _lock_release,
    # release.asl.json
    "Deploy": _deploy,
    "WaitServiceStable": _stable,
    "SmokeTest": _smoke,
    "RecordRelease": _record,
    "CanaryStart": _canary_start,
    "CanaryWaitStable": _canary_stable,
    "CanaryShift": _canary_shift,
    "CanaryCheck": _canary_check,
    "CanaryFinalize": _canary_finalize,
    "Promote": _promote,
    "ShadowReport": _shadow_report,
    "CanaryAbort": _canary_abort,
    "Rollback": _rollback,
    "WaitRollbackStable": _stable,
}


def state_of(function: str) -> str:
    """The state a double stands in for, from its function name."""
    for state in CANNED:
        if function_name(state) == function:
            return state
    raise LookupError(f"{function}: no double for this function (a Task state new to the ASL? add it to CANNED)")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    state = state_of(os.environ["AWS_LAMBDA_FUNCTION_NAME"])
    with _CALLS_LOCK:
        CALLS.append((state, event))
    error = SCENARIO.get(state, "ok")
    if error != "ok":
        raise error_class(error)(f"{state}: injected by the test scenario")
    return {**CANNED[state](event), **OUTPUTS.get(state, {})}
