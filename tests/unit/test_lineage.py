"""The lineage document and the model card, rendered from tags alone (pipelines/lineage.py, model_card.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines import lineage, model_card

ARN = "arn:aws:states:us-east-1:123456789012:execution:esteira-dev-train-evaluate-deploy:retrain-drift-1"
TD = "arn:aws:ecs:us-east-1:123456789012:task-definition/esteira-serving:42"
TRIGGER = {
    "kind": "drift-alarm",
    "alarm": "esteira-model-drift",
    "state_change_time": "2026-11-24T09:00:00.000+0000",
    "principal": "arn:aws:lambda:us-east-1:123456789012:function:esteira-retrain-trigger",
}


def version_tags(**extra: str) -> dict[str, str]:
    release = {
        "execution_arn": ARN,
        "strategy": "canary",
        "started_at": "2026-11-24T09:01:00Z",
        "outcome": "serving",
        "ended_at": "2026-11-24T09:05:00Z",
        "task_definition": TD,
        "task_definition_revision": 42,
        "steps": [10, 50, 100],
        "traffic": [{"weight": w, "at": "2026-11-24T09:02:00Z"} for w in (10, 50, 100)],
        "rollbacks": [],
    }
    tags = {
        "dataset_hash": "sha256:" + "a" * 64,
        "eval_dataset_hash": "sha256:" + "b" * 64,
        "dataset_snapshot": "s3://data/snapshots/sha256=" + "a" * 64 + "/",
        "eval_dataset_snapshot": "s3://data/snapshots/sha256=" + "b" * 64 + "/",
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "code_digest": "sha256:" + "c" * 64,
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/esteira-train@sha256:" + "d" * 64,
        "previous_champion": "3",
        "reference.policy": "recent-traffic",
        lineage.TAG_EXECUTION: ARN,
        lineage.TAG_TRIGGER: json.dumps(TRIGGER),
        lineage.TAG_GATE: json.dumps(
            {
                "passed": True,
                "reasons": ["accuracy 0.93 beats champion 0.91 by >= 0.0"],
                "decided_at": "2026-11-24T09:00:30Z",
                "compared_with_champion": "3",
            }
        ),
        lineage.TAG_DEPLOYMENT: json.dumps({"task_definition": TD, "revision": 42, "at": "2026-11-24T09:05:00Z"}),
        lineage.TAG_RELEASES: json.dumps([release]),
    }
    return {**tags, **extra}


def doc_of(tags: dict[str, str]) -> dict[str, object]:
    return lineage.document_from(
        name="esteira-intent",
        version="4",
        tags=tags,
        run_tags={"train_uri": "s3://x/"},
        run_id="r1",
        created=1_790_000_000_000,
        aliases=["champion"],
    )


def test_a_complete_record_misses_nothing_and_renders() -> None:
    doc = doc_of(version_tags())
    assert doc["schema"] == lineage.SCHEMA and doc["missing"] == []
    assert doc["execution"]["arn"] == ARN  # type: ignore[index]
    assert doc["execution"]["principal"] == TRIGGER["principal"]  # type: ignore[index]
    assert doc["releases"][0]["traffic"][-1]["weight"] == 100  # type: ignore[index]
    text = lineage.render_text(doc)
    for needle in (ARN, "esteira-model-drift", "PASSED", "revision 42", "10% -> 50% -> 100%", "missing: nothing"):
        assert needle in text, needle


def test_gaps_are_named() -> None:
    tags = version_tags()
    for key in ("dataset_snapshot", lineage.TAG_GATE, lineage.TAG_TRIGGER):
        tags.pop(key)
    doc = doc_of(tags)
    assert "data.train.snapshot_uri" in doc["missing"] and "gate" in doc["missing"]  # type: ignore[operator]
    assert "execution.trigger" in doc["missing"]  # type: ignore[operator]
    unknown = doc_of(version_tags(**{lineage.TAG_TRIGGER: json.dumps({"kind": "unknown"})}))
    assert "execution.trigger (unknown)" in unknown["missing"]  # type: ignore[operator]
    assert "CloudTrail" in unknown["execution"]["note"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (None, "unknown"),
        ("github-schedule", "ci"),
        ('"github-schedule"', "ci"),  # States.JsonToString of a legacy string trigger
        (json.dumps(TRIGGER), "drift-alarm"),
        ({"kind": "person", "principal": "arn:aws:iam::1:user/ana"}, "person"),
        ({"kind": "cron"}, "unknown"),
        (42, "unknown"),
    ],
)
def test_triggers_are_normalised(raw: object, kind: str) -> None:
    trig = lineage.normalize_trigger(raw)
    assert trig["kind"] == kind
    assert set(trig) <= set(lineage.TRIGGER_FIELDS)
    # One SageMaker container argument holds at most 256 characters.
    assert len(lineage.trigger_argument(TRIGGER)) <= 256


def test_a_list_tag_that_outgrows_its_limit_keeps_the_newest_and_says_so() -> None:
    items = [{"execution_arn": f"{ARN}-{i}", "reason": "x" * 400} for i in range(40)]
    text = lineage._dump_list(items)
    assert len(text) <= lineage.MAX_TAG_CHARS
    kept = json.loads(text)
    assert kept[0]["truncated"] > 0 and kept[0]["see"] == lineage.DOCUMENT_PATH
    assert kept[-1]["execution_arn"].endswith("-39")


def test_revision_of_a_task_definition() -> None:
    assert lineage.task_definition_revision(TD) == 42 and lineage.task_definition_revision(None) is None


def test_expected_calibration_error() -> None:
    assert model_card.expected_calibration_error([1.0, 1.0], [True, True]) == 0.0
    assert model_card.expected_calibration_error([0.9] * 10, [True] * 5 + [False] * 5) == pytest.approx(0.4)
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.1, 1.0, 20000)
    assert model_card.expected_calibration_error(conf, rng.uniform(size=conf.size) < conf) < 0.02


def test_card_has_every_section() -> None:
    doc = doc_of(version_tags())
    metrics = {
        "accuracy": 0.93,
        "macro_f1": 0.92,
        "calibration_beta": 1.7,
        "ece": 0.031,
        "mean_confidence": 0.9,
        "eval_rows": 3080.0,
        "f1.card_arrival": 0.97,
        "f1.verify_top_up": 0.62,
    }
    card = model_card.render(
        doc,
        metrics=metrics,
        params={"train_rows": "10003", "estimator": "svm"},
        intents=["card_arrival", "verify_top_up"],
        top_features={"card_arrival": [["arrive", 2.1], ["card", 1.5]]},
    )
    for heading in (
        "Intended use",
        "Data",
        "Metrics",
        "Calibration",
        "Gate decision",
        "Known limits",
        "Per-intent F1",
        "Lineage",
    ):
        assert f"## {heading}" in card, heading
    assert model_card.CONFUSION_LINK in card
    assert "`verify_top_up` (0.620)" in card  # a known limit: F1 below the bar
    assert "arrive, card" in card  # what the intent looks for
    assert "0.0310" in card and "1.7000" in card  # ECE and calibration beta
    assert "sha256=" + "a" * 64 in card and ARN in card
    pending = model_card.render(doc_of(version_tags(**{lineage.TAG_GATE: ""})), metrics=metrics, params={})
    assert "pending" in pending
