"""Step: is the serving service running the expected revision, and only it?

Raised errors are the contract with the state machine: `ServiceNotStable` is retried with backoff
(a deployment takes minutes), `DeploymentFailed` (ECS's circuit breaker gave up, or another revision
took over) is not, and goes straight to rollback.
"""

from __future__ import annotations

from typing import Any

from model.config import Settings
from pipelines import aws


class ServiceNotStable(RuntimeError):
    """The deployment is still in progress; ask again later."""


class DeploymentFailed(RuntimeError):
    """The deployment cannot succeed; roll back."""


def check(task_definition: str, *, settings: Settings | None = None, wf: aws.WorkflowSettings | None = None) -> dict:
    wf = wf or aws.WorkflowSettings.from_env()
    ecs = aws.client("ecs", settings)
    services = ecs.describe_services(cluster=wf.cluster, services=[wf.service]).get("services", [])
    if not services:
        raise DeploymentFailed(f"service {wf.service!r} not found in cluster {wf.cluster!r}")
    svc = services[0]
    deployments: list[dict[str, Any]] = svc.get("deployments", [])
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    if primary is None or primary.get("taskDefinition") != task_definition:
        found = primary.get("taskDefinition") if primary else None
        raise DeploymentFailed(f"primary deployment runs {found}, not {task_definition}")
    if primary.get("rolloutState") == "FAILED":
        raise DeploymentFailed(f"deployment of {task_definition} failed: {primary.get('rolloutStateReason')}")
    summary = {
        "deployments": len(deployments),
        "running": primary.get("runningCount", 0),
        "desired": primary.get("desiredCount", svc.get("desiredCount", 0)),
        "failed_tasks": primary.get("failedTasks", 0),
        "rollout_state": primary.get("rolloutState"),
    }
    if len(deployments) != 1 or summary["running"] < summary["desired"] or summary["rollout_state"] == "IN_PROGRESS":
        raise ServiceNotStable(f"deployment of {task_definition} in progress: {summary}")
    return {"step": "service-stable", "status": "stable", "task_definition": task_definition, **summary}
