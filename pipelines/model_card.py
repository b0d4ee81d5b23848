"""The model card of a version: what it is for, what it learned from, how good it is, where it falls short.

Written by training as `card/model_card.md` among the version's run artifacts and re-rendered every
time lineage is recorded (pipelines/lineage.py), so the gate decision and the releases on the card are
current. Everything on it is rendered from the version's tags, its run's metrics and parameters and
the artifacts training logged (evaluation/top_features.json, intent_index.json, validation.json,
confusion_matrix.png), so a card can be regenerated for any version: `render` is pure, `publish`
gathers its inputs from MLflow.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from model.config import Settings
from pipelines import registry

CARD_PATH = "card/model_card.md"
# Relative to the card, so it resolves in the MLflow artifact tree and in a downloaded copy of it.
CONFUSION_LINK = "../evaluation/confusion_matrix.png"
LOW_F1 = 0.8  # intents below this F1 on the evaluation set are listed as a known limit
TOP_FEATURES_SHOWN = 6

INTENDED_USE = """\
Classifies one customer message of a retail bank's support channel (chat or call-centre transcript)
into one of the intents it was trained on, with a calibrated confidence, so that the message can be
routed or answered. It is meant to assist routing: a low-confidence answer should go to a person.

Out of scope: any decision about a customer (credit, fraud, account actions) made on its output alone;
languages other than English; intents it was not trained on (it will name the closest known intent,
with low confidence); messages longer than the service's text limit."""


def expected_calibration_error(confidence: ArrayLike, correct: ArrayLike, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins,
    weighted by how many predictions fall in each (0 = perfectly calibrated)."""
    conf = np.asarray(confidence, dtype=float)
    hit = np.asarray(correct, dtype=float)
    if conf.size == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(conf[mask].mean() - hit[mask].mean())
    return float(ece)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render(
    doc: dict[str, Any],
    *,
    metrics: dict[str, float],
    params: dict[str, str],
    intents: list[str] | None = None,
    top_features: dict[str, list[Any]] | None = None,
    validation: dict[str, Any] | None = None,
) -> str:
    """The card as Markdown, from the lineage document, the run's metrics and params and its artifacts."""
    m, data, code, ex = doc["model"], doc["data"], doc["code"], doc["execution"]
    per_intent = {k[3:]: v for k, v in metrics.items() if k.startswith("f1.")}
    intent_names = intents or sorted(per_intent)
    out: list[str] = [f"# Model card: {m['name']} version {m['version']}", ""]
    out += [
        f"Registered {m['registered_at']} from run `{m['run_id']}`; aliases when this card was written: "
        f"{', '.join(m['aliases']) or 'none'}. Card re-rendered {doc.get('updated_at') or 'at training'}.",
        "",
        "## Intended use",
        "",
        INTENDED_USE,
        "",
        "## Data",
        "",
        "| | dataset hash | snapshot | rows |",
        "|---|---|---|---|",
        f"| training | `{data['train']['dataset_hash']}` | `{data['train']['snapshot_uri']}` | "
        f"{params.get('train_rows', (validation or {}).get('rows', 'n/a'))} |",
        f"| evaluation | `{data['eval']['dataset_hash']}` | `{data['eval']['snapshot_uri']}` | "
        f"{_fmt(metrics.get('eval_rows'), 0) if 'eval_rows' in metrics else 'n/a'} |",
        "",
        f"{len(intent_names)} intents; duplicates dropped from training: {params.get('dropped_duplicates', 'n/a')}. "
        "A dataset hash is the SHA-256 of the sorted (text, label) rows (model/validate.py): the snapshot "
        "re-read and re-hashed must give it back.",
        "",
        "## Metrics (evaluation set)",
        "",
        f"- accuracy {_fmt(metrics.get('accuracy'))}, macro-F1 {_fmt(metrics.get('macro_f1'))}",
        f"- estimator `{params.get('estimator', 'n/a')}`, parameters hash `{params.get('params_hash', 'n/a')}`",
        "",
        f"![confusion matrix (rows: true intent, columns: predicted; indices in intent_index.json)]({CONFUSION_LINK})",
        "",
        "## Calibration",
        "",
        f"- calibration beta (temperature fitted on held-out folds): {_fmt(metrics.get('calibration_beta'))}",
        f"- expected calibration error (15 bins): {_fmt(metrics.get('ece'))}",
        f"- mean confidence {_fmt(metrics.get('mean_confidence'))} against accuracy {_fmt(metrics.get('accuracy'))}",
        "",
        "## Gate decision",
        "",
    ]
    gate = doc.get("gate")
    if gate:
        out.append(
            f"**{'passed' if gate.get('passed') else 'rejected'}** ({gate.get('decided_at', 'time n/a')}, "
            f"compared with champion {gate.get('compared_with_champion') or 'none'}):"
        )
        out += [f"- {r}" for r in gate.get("reasons", [])]
    else:
        out.append("pending: the gate has not judged this version yet.")
    low = sorted(((f, i) for i, f in per_intent.items() if f < LOW_F1))
    ref = doc.get("reference") or {}
    out += [
        "",
        "## Known limits",
        "",
        f"- intents with F1 below {LOW_F1} on the evaluation set: "
        + (", ".join(f"`{i}` ({f:.3f})" for f, i in low) if low else "none"),
        f"- drift reference: policy `{ref.get('policy', 'n/a')}`"
        + (f" ({ref['note']})" if ref.get("note") else "")
        + "; drift is judged against this reference, so a shift it already contains raises no alarm.",
        "- trained only on the intents above; a new kind of request is named as the nearest known intent.",
        "",
        "## Per-intent F1",
        "",
        "| intent | F1 | what it looks for (top word features) |",
        "|---|---|---|",
    ]
    for intent in sorted(per_intent, key=lambda i: per_intent[i]):
        words = ", ".join(str(w[0]) for w in (top_features or {}).get(intent, [])[:TOP_FEATURES_SHOWN])
        out.append(f"| `{intent}` | {per_intent[intent]:.3f} | {words or 'n/a'} |")
    out += [
        "",
        "## Lineage",
        "",
        f"- code: commit `{code['git_commit']}`, digest `{code['code_digest']}`, image `{code['image']}`",
        f"- execution: `{ex['arn']}`",
        f"- trigger: `{json.dumps(ex['trigger'])}`; principal `{ex['principal']}` ({ex['principal_source']})",
        f"- replaced: {doc.get('replaced') or 'nothing'}; replaced by: "
        f"{json.dumps(doc['replaced_by']) if doc.get('replaced_by') else 'nothing yet'}",
    ]
    dep = doc.get("deployment")
    if dep:
        out.append(f"- deployment: `{dep['task_definition']}` (revision {dep['revision']}) at {dep['at']}")
    for r in doc.get("releases", []):
        traffic = " -> ".join(f"{t['weight']}%" for t in r.get("traffic", [])) or "-"
        out.append(
            f"- release {r['strategy']}: {r['outcome']} ({r['started_at']} .. {r.get('ended_at', '')}), "
            f"traffic {traffic}, rollbacks {len(r.get('rollbacks', []))}"
        )
    if doc.get("missing"):
        out.append(f"- not recorded: {', '.join(doc['missing'])}")
    out += ["", "The full record is `../lineage/lineage.json` (`esteira lineage <version>`).", ""]
    return "\n".join(out)


def _artifact_json(client: Any, run_id: str, path: str) -> Any:
    try:
        local = client.download_artifacts(run_id, path, tempfile.mkdtemp(prefix="card-"))
        return json.loads(Path(local).read_text())
    except Exception:  # an older run without this artifact: the card says n/a
        return None


def publish(settings: Settings, version: str, doc: dict[str, Any]) -> str:
    """Render the card of `version` and write it among its run's artifacts; returns the Markdown."""
    client = registry.client(settings)
    run_id = doc["model"]["run_id"]
    run = client.get_run(run_id)
    card = render(
        doc,
        metrics=dict(run.data.metrics),
        params=dict(run.data.params),
        intents=_artifact_json(client, run_id, "evaluation/intent_index.json"),
        top_features=_artifact_json(client, run_id, "evaluation/top_features.json"),
        validation=_artifact_json(client, run_id, "evaluation/validation.json"),
    )
    client.log_text(run_id, card, CARD_PATH)
    return card


def card_url(tracking_uri: str, run_id: str) -> str:
    """Where a browser gets the card's Markdown from the MLflow server (its artifact download endpoint)."""
    return f"{tracking_uri.rstrip('/')}/get-artifact?path=card%2Fmodel_card.md&run_uuid={run_id}"
