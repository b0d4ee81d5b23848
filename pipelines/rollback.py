"""Step: put serving back as it was: the previous task-definition revision AND the previous champion alias.

Called by the state machine when deploy, the stability wait or the smoke test fails. Each half is
done only when there is something to undo, so a rollback after a half-finished deploy is safe, and
so is running it twice. The registry alias and the running revision end up agreeing again.
"""

from __future__ import annotations

from typing import Any

from model.config import Settings
from pipelines import aws, lineage, registry
from pipelines.deploy import current_task_definition


def rollback(
    model_version: str,
    previous_task_definition: str | None = None,
    *,
    reason: str = "",
    settings: Settings | None = None,
    wf: aws.WorkflowSettings | None = None,
    execution_arn: str | None = None,
    record_lineage: bool = True,
) -> dict[str, Any]:
    """`record_lineage=False` for callers that record the rollback in their own release (pipelines/release/)."""
    settings = settings or Settings.from_env()
    wf = wf or aws.WorkflowSettings.from_env()
    model_version = str(model_version)
    result: dict[str, Any] = {"step": "rollback", "model_version": model_version, "reason": reason}

    # 1. The service: back to the revision that ran before this deploy.
    running = current_task_definition(wf, settings)
    if previous_task_definition and running != previous_task_definition:
        aws.client("ecs", settings).update_service(
            cluster=wf.cluster, service=wf.service, taskDefinition=previous_task_definition
        )
        result["task_definition"] = {"from": running, "to": previous_task_definition}
        result["serving_task_definition"] = previous_task_definition
    else:
        result["task_definition"] = {"unchanged": running}
        result["serving_task_definition"] = running

    # 2. The registry: champion back to the version promote recorded as previous_champion.
    client = registry.client(settings)
    name = settings.registered_model_name
    champion = registry.version_by_alias(settings, registry.CHAMPION)
    if champion is not None and str(champion.version) == model_version:
        previous = client.get_model_version(name, model_version).tags.get("previous_champion")
        if previous:
            client.set_registered_model_alias(name, registry.CHAMPION, previous)
        else:  # the first model ever: there is no older champion to restore
            client.delete_registered_model_alias(name, registry.CHAMPION)
        client.set_model_version_tag(name, model_version, "rolled_back", reason[:500] or "true")
        result["champion"] = {"from": model_version, "to": previous}
    else:
        result["champion"] = {"unchanged": None if champion is None else str(champion.version)}
    result["status"] = "rolled-back"
    if record_lineage:
        lineage.record_release(
            model_version,
            strategy="all_at_once",
            event="rollback",
            execution_arn=execution_arn,
            outcome="rolled_back",
            reason=reason,
            champion=result["champion"],
            rollback_task_definition=result["task_definition"],
            settings=settings,
        )
    return result
