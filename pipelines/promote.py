"""Step: move the `champion` alias to a version that passed the gate, remembering the one it replaces.

The previous champion is recorded on the new version (tag `previous_champion`), which is what a
rollback restores. Promoting the current champion again is a no-op, so retries are safe.
"""

from __future__ import annotations

from typing import Any

import mlflow

from model.config import Settings
from pipelines import provenance, registry
from pipelines.evaluate import evaluate


def promote(
    model_version: str | None = None,
    *,
    evaluation: dict[str, Any] | None = None,
    eval_uri: str = "banking77:test",
    settings: Settings | None = None,
) -> dict[str, Any]:
    settings = settings or Settings.from_env()
    client = registry.client(settings)
    if evaluation is None or (model_version is not None and str(evaluation.get("model_version")) != model_version):
        evaluation = evaluate(model_version, eval_uri, settings=settings)
    model_version = str(evaluation["model_version"])
    current = registry.version_by_alias(settings, registry.CHAMPION)
    previous = str(current.version) if current is not None else None
    result: dict[str, Any] = {
        "step": "promote",
        "model_version": model_version,
        "previous_champion": previous,
        "reasons": evaluation["gate"]["reasons"],
    }
    if previous == model_version:
        return {**result, "status": "already-champion", "champion": model_version}
    if not evaluation["gate"]["passed"]:
        return {**result, "status": "rejected", "champion": previous}

    name = settings.registered_model_name
    if previous is not None:
        client.set_model_version_tag(name, model_version, "previous_champion", previous)
    client.set_registered_model_alias(name, registry.CHAMPION, model_version)
    client.set_model_version_tag(name, model_version, "promoted", "true")
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
    return {**result, "status": "promoted", "champion": model_version}
