"""Step: train a classifier on validated data, track it in MLflow and register it as `challenger`.

Idempotent: a model version already trained from the same data, parameters, code and libraries
(pipelines/provenance.py: the training key) is returned instead of training again, so a retried Step
Functions task never registers duplicates, and changed code always trains anew.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from model.classifier import IntentClassifier, ModelParams
from model.config import Settings
from model.metrics import confusion_png, evaluate_classifier
from model.profile import build_profile
from model.pyfunc import IntentPyfunc
from model.validate import ValidatedData
from pipelines import lineage, model_card, provenance, reference, registry, snapshot
from pipelines.validate_data import load_validated


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("scikit-learn", "numpy", "scipy", "pandas", "mlflow-skinny")]


def metric_key(name: str) -> str:
    """MLflow metric names allow only [A-Za-z0-9_-. :/]; intent names such as `reverted_card_payment?` don't."""
    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", name)


def params_hash(params: ModelParams) -> str:
    return hashlib.sha256(json.dumps(params.as_dict(), sort_keys=True).encode()).hexdigest()[:16]


SEARCH_GRID: list[dict[str, Any]] = [
    {"estimator": "svm", "svm_c": 0.3},
    {"estimator": "svm", "svm_c": 0.5},
    {"estimator": "svm", "svm_c": 1.0},
    {"estimator": "svm", "svm_c": 0.5, "char_weight": 1.0},
    {"estimator": "svm+logreg"},
]


def _search(data: ValidatedData, base: ModelParams, experiment_id: str) -> ModelParams:
    """Pick parameters on a split of the TRAINING data (never the test split), one nested run each."""
    rng = np.random.default_rng(base.seed)
    idx = rng.permutation(len(data.texts))
    cut = int(len(idx) * 0.8)
    texts, labels = np.asarray(data.texts, dtype=object), np.asarray(data.labels, dtype=object)
    best, best_acc = base, -1.0
    for overrides in SEARCH_GRID:
        candidate = replace(base, calibration_folds=0, **overrides)
        with mlflow.start_run(nested=True, experiment_id=experiment_id, run_name=f"search {overrides}"):
            clf = IntentClassifier(candidate).fit(texts[idx[:cut]].tolist(), labels[idx[:cut]].tolist())
            ev = evaluate_classifier(clf, texts[idx[cut:]].tolist(), labels[idx[cut:]].tolist())
            mlflow.log_params(candidate.as_dict())
            mlflow.log_metrics(
                {"val_accuracy": ev.accuracy, "val_macro_f1": ev.macro_f1, "fit_seconds": clf.fit_seconds}
            )
        if ev.accuracy > best_acc:
            best, best_acc = replace(candidate, calibration_folds=base.calibration_folds), ev.accuracy
    mlflow.log_param("search_best", json.dumps({k: v for k, v in best.as_dict().items()}))
    return best


def _existing_version(settings: Settings, key: str) -> Any | None:
    """A registered version trained from the same data, parameters, code and libraries (provenance)."""
    client = registry.client(settings)
    query = f"name='{settings.registered_model_name}' and tags.training_key='{key}'"
    try:
        found = client.search_model_versions(query)
    except Exception:  # the registered model does not exist yet
        return None
    ready = [v for v in found if v.status == "READY"]
    return max(ready, key=lambda v: int(v.version)) if ready else None


def train(
    train_uri: str = "banking77:train",
    eval_uri: str = "banking77:test",
    *,
    params: ModelParams | None = None,
    search: bool = False,
    new_labels: Sequence[str] = (),
    settings: Settings | None = None,
    reference_policy: str = reference.AUTO,
    execution_arn: str | None = None,
    trigger: Any = None,
) -> dict[str, Any]:
    """`execution_arn` and `trigger` (the workflow's execution and what started it) go to the version's
    lineage (pipelines/lineage.py), recorded whether the version is trained now or reused."""
    settings = settings or Settings.from_env()
    params = params or ModelParams()
    data = load_validated(train_uri, new_labels=new_labels, settings=settings)
    eval_data = load_validated(eval_uri, new_labels=new_labels, settings=settings)
    # What this version learns from and is measured on, kept immutable (pipelines/snapshot.py): given
    # snapshot URIs (the workflow) nothing is written; given raw data (a CLI run) it is kept first.
    snapshots = {
        "dataset_snapshot": snapshot.ensure(data, settings).uri,
        "eval_dataset_snapshot": snapshot.ensure(eval_data, settings).uri,
    }
    origin = provenance.tags()

    if not search:
        key = provenance.training_key(data.dataset_hash, eval_data.dataset_hash, params_hash(params))
        existing = _existing_version(settings, key)
        if existing is not None:
            registry.client(settings).set_registered_model_alias(
                settings.registered_model_name, registry.CHALLENGER, existing.version
            )
            run = registry.client(settings).get_run(existing.run_id)
            for tag, uri in snapshots.items():  # versions trained before snapshots existed get them now
                if tag not in existing.tags:
                    registry.client(settings).set_model_version_tag(
                        settings.registered_model_name, existing.version, tag, uri
                    )
            lineage.record_training(
                str(existing.version), status="reused", execution_arn=execution_arn, trigger=trigger, settings=settings
            )
            return {
                "step": "train",
                "status": "reused",
                "run_id": existing.run_id,
                "model_version": str(existing.version),
                "model_uri": registry.model_uri(settings, existing.version),
                "dataset_hash": data.dataset_hash,
                **snapshots,
                "metrics": {k: run.data.metrics[k] for k in ("accuracy", "macro_f1") if k in run.data.metrics},
            }

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    exp_id = registry.experiment_id(settings)
    with mlflow.start_run(experiment_id=exp_id, run_name="train") as run:
        mlflow.set_tags(
            {
                "dataset_hash": data.dataset_hash,
                "eval_dataset_hash": eval_data.dataset_hash,
                **snapshots,
                **origin,
                "step": "train",
                "train_uri": train_uri,
            }
        )
        if search:
            params = _search(data, params, exp_id)
        p_hash = params_hash(params)
        mlflow.log_params(
            {
                **params.as_dict(),
                "params_hash": p_hash,
                "train_rows": len(data.texts),
                "dropped_duplicates": data.dropped_duplicates,
            }
        )
        frame = pd.DataFrame({"text": data.texts, "label": data.labels})
        with warnings.catch_warnings():  # MLflow warns that a local path is ambiguous as a source
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
                frame, source=snapshots["dataset_snapshot"], name="train", digest=data.dataset_hash[7:23]
            )
        mlflow.log_input(dataset, context="training")
        clf = IntentClassifier(params).fit(data.texts, data.labels)
        ev = evaluate_classifier(clf, eval_data.texts, eval_data.labels)
        mlflow.log_metrics(
            {
                "accuracy": ev.accuracy,
                "macro_f1": ev.macro_f1,
                "fit_seconds": clf.fit_seconds,
                "mean_confidence": ev.mean_confidence,
                "calibration_beta": clf.beta_,
                "eval_rows": ev.rows,
            }
        )
        predicted, confidence = clf.predict_top1(eval_data.texts)  # for the model card's calibration error
        correct = [p == t for p, t in zip(predicted, eval_data.labels, strict=True)]
        mlflow.log_metric("ece", model_card.expected_calibration_error(confidence, correct))
        mlflow.log_metrics({f"f1.{metric_key(k)}": v for k, v in ev.per_intent_f1.items()})
        with tempfile.TemporaryDirectory() as tmp:
            tmpdir = Path(tmp)
            confusion_png(ev, str(tmpdir / "confusion_matrix.png"))
            (tmpdir / "intent_index.json").write_text(json.dumps(ev.labels, indent=1))
            (tmpdir / "top_features.json").write_text(json.dumps(clf.global_top_features(), indent=1))
            (tmpdir / "validation.json").write_text(json.dumps(data.summary(), indent=1))
            for name in ("confusion_matrix.png", "intent_index.json", "top_features.json", "validation.json"):
                mlflow.log_artifact(str(tmpdir / name), artifact_path="evaluation")
            # The drift check's reference: the new model's predictions on held-out texts of the traffic it
            # is meant to serve (pipelines/reference.py says which texts, docs/drift.md why).
            ref = reference.plan(reference_policy, eval_data.texts, data.texts, settings)
            mlflow.set_tags(ref.tags)
            (tmpdir / "reference_profile.json").write_text(
                build_profile(clf, data.texts, ref.texts, model_version=run.info.run_id).to_json()
            )
            mlflow.log_artifact(str(tmpdir / "reference_profile.json"), artifact_path="profile")
            pickle_path = tmpdir / "classifier.pkl"
            with pickle_path.open("wb") as fh:
                pickle.dump(clf, fh, protocol=pickle.HIGHEST_PROTOCOL)
            example = pd.DataFrame({"text": eval_data.texts[:3]})
            signature = infer_signature(example, IntentPyfunc._predict_frame(clf, example))
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=IntentPyfunc(),
                artifacts={"classifier": str(pickle_path)},
                signature=signature,
                input_example=example,
                pip_requirements=_requirements(),
            )
        version = mlflow.register_model(
            info.model_uri,
            settings.registered_model_name,
            tags={
                "dataset_hash": data.dataset_hash,
                "eval_dataset_hash": eval_data.dataset_hash,
                **snapshots,
                "params_hash": p_hash,
                **origin,
                "training_key": provenance.training_key(data.dataset_hash, eval_data.dataset_hash, p_hash),
                "run_id": run.info.run_id,
                **ref.tags,
            },
        )
        registry.client(settings).set_registered_model_alias(
            settings.registered_model_name, registry.CHALLENGER, version.version
        )
        # Lineage and the model card (card/model_card.md) are written before the step reports success.
        lineage.record_training(
            str(version.version), status="trained", execution_arn=execution_arn, trigger=trigger, settings=settings
        )
        return {
            "step": "train",
            "status": "trained",
            "run_id": run.info.run_id,
            "model_version": str(version.version),
            "model_uri": registry.model_uri(settings, version.version),
            "dataset_hash": data.dataset_hash,
            **snapshots,
            "params": params.as_dict(),
            "metrics": {**ev.summary(), "fit_seconds": round(clf.fit_seconds, 2)},
            "reference": {"policy": ref.policy, "rows": len(ref.texts), "source": ref.source},
        }
