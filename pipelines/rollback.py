"""Step: put serving back as it was: the service runs the task-definition revision it ran before the release.

Called by the state machine when deploy, the stability wait, the smoke test, the release record or the
promotion fails. The service is updated only when it runs something else, so a rollback after a
half-finished deploy is safe, and so is running it twice. The `champion` alias needs no undoing: it
moves only when a release completes (pipelines/promote.py), so it already names what serves again.
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
    strategy: str = "all_at_once",
) -> dict[str, Any]:
    settings = settings or Settings.from_env()
    wf = wf or aws.WorkflowSettings.from_env()
    model_version = str(model_version)
    result: dict[str, Any] = {"step": "rollback", "model_version": model_version, "reason": reason}

    # The service: back to the revision that ran before this release.
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

    # The registry is not touched: the alias moves only when a release completes (pipelines/promote.py),
    # so it still names the champion that serves again. The version is tagged with what was tried.
    registry.client(settings).set_model_version_tag(
        settings.registered_model_name, model_version, "rolled_back", reason[:500] or "true"
    )
    champion = registry.version_by_alias(settings, registry.CHAMPION)
    result["champion"] = {"unchanged": None if champion is None else str(champion.version)}
    result["status"] = "rolled-back"
    lineage.record_release(
        model_version,
        strategy=strategy,
        event="rollback",
        execution_arn=execution_arn,
        outcome="rolled_back",
        reason=reason,
        champion=result["champion"],
        rollback_task_definition=result["task_definition"],
        settings=settings,
    )
    return result
