"""The promotion gate: may a challenger replace the champion?

Kept apart from MLflow so the rule is a pure function that unit tests can pin down exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from model.config import Settings


@dataclass
class GateDecision:
    passed: bool
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(challenger: dict[str, Any], champion: dict[str, Any] | None, settings: Settings) -> GateDecision:
    """Compare metric dicts (accuracy, macro_f1, per_intent_f1) measured on the same evaluation set."""
    reasons: list[str] = []
    passed = True
    acc, f1 = float(challenger["accuracy"]), float(challenger["macro_f1"])
    if champion is None:
        if acc < settings.gate_min_accuracy:
            passed = False
            reasons.append(f"first model: accuracy {acc:.4f} < required {settings.gate_min_accuracy:.4f}")
        if f1 < settings.gate_min_macro_f1:
            passed = False
            reasons.append(f"first model: macro-F1 {f1:.4f} < required {settings.gate_min_macro_f1:.4f}")
        if passed:
            reasons.append(f"first model: accuracy {acc:.4f} and macro-F1 {f1:.4f} clear the absolute thresholds")
        return GateDecision(passed, reasons)

    base = float(champion["accuracy"])
    margin = settings.gate_min_improvement
    if acc < base + margin:
        passed = False
        reasons.append(f"accuracy {acc:.4f} does not beat champion {base:.4f} by margin {margin:.4f}")
    else:
        reasons.append(f"accuracy {acc:.4f} beats champion {base:.4f} by >= {margin:.4f}")
    worst_intent, worst_drop = None, 0.0
    champ_f1: dict[str, float] = champion.get("per_intent_f1", {})
    for intent, before in champ_f1.items():
        after = float(challenger.get("per_intent_f1", {}).get(intent, 0.0))
        if before - after > worst_drop:
            worst_intent, worst_drop = intent, before - after
    if worst_drop > settings.gate_max_intent_f1_drop:
        passed = False
        reasons.append(
            f"intent {worst_intent!r} F1 drops by {worst_drop:.4f} > allowed {settings.gate_max_intent_f1_drop:.4f}"
        )
    else:
        reasons.append(f"largest per-intent F1 drop {worst_drop:.4f} within {settings.gate_max_intent_f1_drop:.4f}")
    return GateDecision(passed, reasons)
