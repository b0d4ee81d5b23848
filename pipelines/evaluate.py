"""Step: measure the challenger and the current champion on the same evaluation set and apply the gate.

Both models are scored here, now, on the same rows, rather than trusting metrics logged at training
time against whatever data existed then.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow

from model.config import Settings
from model.metrics import evaluate_classifier
from model.pyfunc import load_classifier
from pipelines import lineage, provenance, registry, snapshot
from pipelines.gate import decide
from pipelines.validate_data import load_validated


def _metrics_dict(ev: Any) -> dict[str, Any]:
    return {**ev.summary(), "per_intent_f1": ev.per_intent_f1}


def evaluate(
    model_version: str | None = None,
    eval_uri: str = "banking77:test",
    *,
    settings: Settings | None = None,
    execution_arn: str | None = None,
) -> dict[str, Any]:
    settings = settings or Settings.from_env()
    client = registry.client(settings)
    if model_version is None:
        challenger = registry.version_by_alias(settings, registry.CHALLENGER)
        if challenger is None:
            raise LookupError(f"model {settings.registered_model_name!r} has no '{registry.CHALLENGER}' alias")
        model_version = str(challenger.version)
    data = load_validated(eval_uri, settings=settings)  # a snapshot URI is read and re-hashed
    # The immutable copy of these rows (pipelines/snapshot.py), when the validate step or training kept one.
    kept = snapshot.find(data, settings)

    cand = load_classifier(registry.model_uri(settings, model_version))
    cand_metrics = _metrics_dict(evaluate_classifier(cand, data.texts, data.labels))
    champion = registry.version_by_alias(settings, registry.CHAMPION)
    champ_metrics: dict[str, Any] | None = None
    champ_version = str(champion.version) if champion is not None else None
    if champion is not None and champ_version != model_version:
        champ = load_classifier(registry.model_uri(settings, champ_version))  # type: ignore[arg-type]
        champ_metrics = _metrics_dict(evaluate_classifier(champ, data.texts, data.labels))
    if champ_version == model_version:
        decision_passed, reasons = True, [f"version {model_version} is already the champion"]
    else:
        decision = decide(cand_metrics, champ_metrics, settings)
        decision_passed, reasons = decision.passed, decision.reasons

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    with mlflow.start_run(experiment_id=registry.experiment_id(settings), run_name=f"evaluate v{model_version}"):
        mlflow.set_tags(
            {
                **provenance.tags(),
                "step": "evaluate",
                "challenger_version": model_version,
                "champion_version": champ_version or "none",
                "eval_dataset_hash": data.dataset_hash,
                **({"eval_dataset_snapshot": kept} if kept else {}),
                "gate_passed": str(decision_passed).lower(),
            }
        )
        mlflow.log_metrics(
            {"challenger_accuracy": cand_metrics["accuracy"], "challenger_macro_f1": cand_metrics["macro_f1"]}
        )
        if champ_metrics:
            mlflow.log_metrics(
                {
                    "champion_accuracy": champ_metrics["accuracy"],
                    "champion_macro_f1": champ_metrics["macro_f1"],
                }
            )
        mlflow.log_text(json.dumps({"passed": decision_passed, "reasons": reasons}, indent=1), "gate.json")
    client.set_model_version_tag(
        settings.registered_model_name, model_version, "gate_passed", str(decision_passed).lower()
    )
    client.set_model_version_tag(settings.registered_model_name, model_version, "gate_reasons", "; ".join(reasons))
    lineage.record_gate(
        model_version,
        passed=decision_passed,
        reasons=reasons,
        champion_version=champ_version,
        eval_dataset_hash=data.dataset_hash,
        eval_snapshot_uri=kept,
        execution_arn=execution_arn,
        settings=settings,
    )

    def brief(m: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if m is None else {k: v for k, v in m.items() if k != "per_intent_f1"}

    return {
        "step": "evaluate",
        "model_version": model_version,
        "eval_dataset_hash": data.dataset_hash,
        "eval_dataset_snapshot": kept,
        "challenger": {"version": model_version, "metrics": brief(cand_metrics)},
        "champion": None if champ_version is None else {"version": champ_version, "metrics": brief(champ_metrics)},
        "gate": {"passed": decision_passed, "reasons": reasons},
        # Flat, for the state machine: the release starts from the champion that serves now, and a
        # version that already is the champion (training reused it) has nothing to release gradually.
        "champion_version": champ_version,
        "already_champion": champ_version == model_version,
    }
