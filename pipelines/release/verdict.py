"""The verdict on a candidate's bake window: a pure function of its metrics, the champion's and the bars.

No AWS call and no clock, as `pipelines/gate.py`: every bar is unit-tested with plain dictionaries
(tests/canary/test_canary_logic.py). The statistics are `model/drift.py`'s.
"""

from __future__ import annotations

from typing import Any

from model.drift import homogeneity_p_value, js_divergence
from pipelines.release.settings import CanarySettings


def judge(cs: CanarySettings, candidate: dict[str, Any], champion: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The breaches of one bake window (empty = healthy). Pure, so every bar is unit-testable."""
    breaches: list[dict[str, Any]] = []
    requests = float(candidate["requests"])
    rate = float(candidate["http_5xx"]) / requests if requests else 0.0
    if rate > cs.max_5xx_rate:
        breaches.append({"kind": "http_5xx", "value": round(rate, 4), "threshold": cs.max_5xx_rate})
    p99 = candidate.get("latency_p99_ms")
    if p99 is not None and p99 > cs.max_p99_ms:
        breaches.append({"kind": "latency_p99", "value": round(p99, 2), "threshold": cs.max_p99_ms})
    low = candidate.get("low_confidence_rate")
    if low is not None and low > cs.max_low_confidence_rate:
        breaches.append({"kind": "low_confidence", "value": round(low, 4), "threshold": cs.max_low_confidence_rate})
    if champion is not None and champion.get("predictions") and candidate.get("predictions"):
        drift = js_divergence(candidate["predictions"], champion["predictions"])
        p_value = homogeneity_p_value(candidate["predictions"], champion["predictions"])
        if drift > cs.max_prediction_drift and p_value < cs.drift_p_value:
            breaches.append(
                {
                    "kind": "prediction_drift",
                    "value": round(drift, 4),
                    "threshold": cs.max_prediction_drift,
                    "p_value": p_value,
                }
            )
    return breaches


def reason(breaches: list[dict[str, Any]]) -> str:
    """One line naming each breach and its value (or ALARM for an alarm in ALARM)."""
    return "; ".join(f"{b['kind']}={b.get('value', 'ALARM')}" for b in breaches)
