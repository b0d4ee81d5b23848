"""The gate is a pure function: promote, reject, and the first-model thresholds."""

from __future__ import annotations

from model.config import Settings
from pipelines.gate import decide

S = Settings().replace(
    gate_min_improvement=0.005,
    gate_max_intent_f1_drop=0.1,
    gate_min_accuracy=0.85,
    gate_min_macro_f1=0.85,
)


def m(acc: float, f1: float = 0.9, per: dict[str, float] | None = None) -> dict[str, object]:
    return {"accuracy": acc, "macro_f1": f1, "per_intent_f1": per or {"a": 0.9, "b": 0.9}}


def test_first_model_needs_absolute_thresholds() -> None:
    assert decide(m(0.90), None, S).passed
    low = decide(m(0.80, 0.80), None, S)
    assert not low.passed and len(low.reasons) == 2


def test_challenger_must_beat_champion_by_margin() -> None:
    assert decide(m(0.906), m(0.900), S).passed
    rejected = decide(m(0.904), m(0.900), S)
    assert not rejected.passed and "does not beat champion" in rejected.reasons[0]


def test_per_intent_regression_rejects_even_with_better_accuracy() -> None:
    result = decide(m(0.95, per={"a": 0.95, "b": 0.75}), m(0.90, per={"a": 0.9, "b": 0.9}), S)
    assert not result.passed and "intent 'b' F1 drops by 0.1500" in result.reasons[1]


def test_missing_intent_counts_as_zero() -> None:
    assert not decide(m(0.95, per={"a": 0.99}), m(0.90), S).passed
