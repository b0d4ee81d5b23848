"""Step: deploy a model version as a new, immutable ECS task-definition revision, then point the service at it.

The revision pins `ESTEIRA_MODEL_URI=models:/<name>/<version>` (never the moving `@champion` alias), so a
running task always says which model it serves and a rollback is just choosing the previous revision.
The previous revision is returned so the workflow can hand it to `rollback` if anything after fails.
"""

from __future__ import annotations

from typing import Any

from model.config import Settings
from pipelines import aws, lineage, registry

# The serving container's setting the deploy pins (model/serving/settings.py ServingSettings.model_uri).
MODEL_URI_VARIABLE = "ESTEIRA_MODEL_URI"

# Fields of DescribeTaskDefinition that RegisterTaskDefinition accepts back unchanged.
_COPY_FIELDS = (
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
)


def current_task_definition(wf: aws.WorkflowSettings, settings: Settings | None = None) -> str:
    ecs = aws.client("ecs", settings)
    found = ecs.describe_services(cluster=wf.cluster, services=[wf.service])
    services = [s for s in found.get("services", []) if s.get("status") != "INACTIVE"]
    if not services:
        raise LookupError(f"ECS service {wf.service!r} not found in cluster {wf.cluster!r}: {found.get('failures')}")
    return str(services[0]["taskDefinition"])


def served_model_uri(env: dict[str, str]) -> str:
    """The model URI a serving container's environment names (model/serving/settings.py), under its
    current name or the deprecated MODEL_URI that revisions registered before the rename carry."""
    return env.get(MODEL_URI_VARIABLE) or env.get("MODEL_URI") or ""


def pin_model(
    task_definition: dict[str, Any], container: str, model_uri: str, version: str, role: str | None = None
) -> dict[str, Any]:
    """The register-task-definition request for a copy of `task_definition` serving `model_uri`.

    `role` sets ESTEIRA_SERVING_ROLE: "shadow" for a shadow candidate (the stable tasks copy traffic to it),
    "serving" otherwise; None keeps what the copied revision has."""
    request = {k: task_definition[k] for k in _COPY_FIELDS if task_definition.get(k) not in (None, [], {})}
    containers = []
    matched = False
    for definition in task_definition["containerDefinitions"]:
        definition = dict(definition)
        if definition["name"] == container:
            matched = True
            env = {e["name"]: e["value"] for e in definition.get("environment", [])}
            env.pop("MODEL_URI", None)  # the deprecated names, in revisions registered before the rename
            env[MODEL_URI_VARIABLE] = model_uri
            if role is not None:
                env.pop("SERVING_ROLE", None)
                env["ESTEIRA_SERVING_ROLE"] = role
            definition["environment"] = [{"name": k, "value": v} for k, v in sorted(env.items())]
            definition["dockerLabels"] = {**definition.get("dockerLabels", {}), "esteira.model-version": version}
        containers.append(definition)
    if not matched:
        names = [c["name"] for c in task_definition["containerDefinitions"]]
        raise LookupError(f"task definition has no container {container!r} (has {names})")
    request["containerDefinitions"] = containers
    return request


def deploy(
    model_version: str,
    *,
    settings: Settings | None = None,
    wf: aws.WorkflowSettings | None = None,
    execution_arn: str | None = None,
) -> dict[str, Any]:
    settings = settings or Settings.from_env()
    wf = wf or aws.WorkflowSettings.from_env()
    ecs = aws.client("ecs", settings)
    model_version = str(model_version)
    model_uri = registry.model_uri(settings, model_version)
    previous = current_task_definition(wf, settings)
    described = ecs.describe_task_definition(taskDefinition=previous, include=["TAGS"])
    td = described["taskDefinition"]
    serving = next((c for c in td["containerDefinitions"] if c["name"] == wf.serving_container), None)
    env = {e["name"]: e["value"] for e in (serving or {}).get("environment", [])}
    if served_model_uri(env) == model_uri:  # a retried deploy: the service already runs this version
        lineage.record_release(
            model_version,
            strategy="all_at_once",
            event="deploy",
            execution_arn=execution_arn,
            task_definition=previous,
            settings=settings,
        )
        return {
            "step": "deploy",
            "status": "already-deployed",
            "model_version": model_version,
            "model_uri": model_uri,
            "task_definition": previous,
            "previous_task_definition": previous,
        }
    request = pin_model(td, wf.serving_container, model_uri, model_version)
    tags = [*described.get("tags", []), {"key": "esteira:model-version", "value": model_version}]
    new_arn = ecs.register_task_definition(**request, tags=tags)["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=wf.cluster, service=wf.service, taskDefinition=new_arn)
    lineage.record_release(
        model_version,
        strategy="all_at_once",
        event="deploy",
        execution_arn=execution_arn,
        task_definition=new_arn,
        previous_task_definition=previous,
        settings=settings,
    )
    return {
        "step": "deploy",
        "status": "deploying",
        "model_version": model_version,
        "model_uri": model_uri,
        "task_definition": new_arn,
        "previous_task_definition": previous,
    }


def record_smoke_passed(
    model_version: str, smoke: dict[str, Any], *, execution_arn: str | None = None, settings: Settings | None = None
) -> dict[str, Any]:
    """The all-at-once release's outcome in the version's lineage, from the smoke test's result: it
    passed, so the version serves. Recorded here, in the VPC, because the smoke test may run outside it
    (smoke_test_outside_vpc) where MLflow's private name does not resolve."""
    if smoke.get("status") != "passed":
        raise ValueError(f"record_smoke_passed: the smoke test did not pass: {smoke}")
    lineage.record_release(
        str(model_version),
        strategy="all_at_once",
        event="smoke",
        execution_arn=execution_arn,
        passed=True,
        detail=f"{smoke.get('requests')} requests, accuracy {smoke.get('accuracy')}",
        outcome="serving",
        settings=settings,
    )
    return {"step": "record-release", "status": "recorded", "model_version": str(model_version), "outcome": "serving"}
