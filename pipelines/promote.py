"""Step: move the `champion` alias to a version whose release completed, remembering the one it replaces.

The workflow calls this LAST: after the all-at-once smoke test passed, or after the canary's stable
service took the candidate at 100 % (never for a shadow release). So the alias always names what
serves, and a failed release has nothing in the registry to undo.

The records (tag `previous_champion`, the promote run, the lineage) are written first and the alias
move is the final write: if the alias cannot be moved, the release is rolled back with the alias
untouched and the records say what was tried. Promoting the current champion again is a no-op, so a
retry after a lost response is safe.
"""

from __future__ import annotations

from typing import Any

import mlflow

from model.config import Settings
from pipelines import lineage, provenance, registry
from pipelines.evaluate import evaluate


def promote(
    model_version: str | None = None,
    *,
    evaluation: dict[str, Any] | None = None,
    eval_uri: str = "banking77:test",
    settings: Settings | None = None,
    execution_arn: str | None = None,
) -> dict[str, Any]:
    settings = settings or Settings.from_env()
    client = registry.client(settings)
    if evaluation is None or (model_version is not None and str(evaluation.get("model_version")) != model_version):
        evaluation = evaluate(model_version, eval_uri, settings=settings, execution_arn=execution_arn)
    model_version = str(evaluation["model_version"])
    current = registry.version_by_alias(settings, registry.CHAMPION)
    previous = str(current.version) if current is not None else None
    result: dict[str, Any] = {
        "step": "promote",
        "model_version": model_version,
        "previous_champion": previous,
        "reasons": evaluation["gate"]["reasons"],
    }
    if previous == model_version or not evaluation["gate"]["passed"]:
        status = "already-champion" if previous == model_version else "rejected"
        lineage.record_promotion(
            model_version, status=status, previous_champion=previous, execution_arn=execution_arn, settings=settings
        )
        return {**result, "status": status, "champion": model_version if status == "already-champion" else previous}

    name = settings.registered_model_name
    if previous is not None:
        client.set_model_version_tag(name, model_version, "previous_champion", previous)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    with mlflow.start_run(experiment_id=registry.experiment_id(settings), run_name=f"promote v{model_version}"):
        mlflow.set_tags(
            {
                **provenance.tags(),
                "step": "promote",
                "champion_version": model_version,
                "previous_champion": previous or "none",
                "decision": "promoted",
            }
        )
        mlflow.log_text("\n".join(evaluation["gate"]["reasons"]), "gate_reasons.txt")
    lineage.record_promotion(
        model_version, status="promoted", previous_champion=previous, execution_arn=execution_arn, settings=settings
    )
    client.set_model_version_tag(name, model_version, "promoted", "true")
    client.set_registered_model_alias(name, registry.CHAMPION, model_version)  # the last write: see above
    return {**result, "status": "promoted", "champion": model_version}
