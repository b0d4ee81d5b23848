"""The false-alarm rate the thresholds promise, measured on clean BANKING77 windows; and power on shifted ones.

Each clean window gets a fresh random split of the test split into a reference half (the profile) and a
disjoint pool the window is drawn from without replacement, so every window is an honest "no drift"
draw. These tests fail if a statistic is mis-calibrated (e.g. an unpooled chi-square, a two-sided test
counted as one-sided, or a rank test without the tie correction on the spiky confidence histogram).
"""

from __future__ import annotations

import numpy as np
import pytest

from model.classifier import IntentClassifier
from model.drift import TESTS, DriftConfig, compare
from model.profile import request_features

from .conftest import HeldOut


def _null_p_values(held_out: HeldOut, window: int, trials: int, seed: int) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {t: [] for t in TESTS}
    idx = np.arange(len(held_out.texts))
    for _ in range(trials):
        perm = rng.permutation(idx)
        ref, pool = perm[: len(perm) // 2], perm[len(perm) // 2 :]
        win = rng.choice(pool, size=window, replace=False)
        report = compare(held_out.profile(ref), held_out.features(win), DriftConfig(min_window=window))
        for t in report.tests:
            if t.name in out:  # the per-window tests; the sequential test has its own calibration
                out[t.name].append(t.p_value)
    return out


@pytest.mark.slow  # many clean windows of BANKING77: ~11 s
def test_each_test_rejects_at_its_nominal_rate_on_clean_windows_of_the_minimum_size(held_out: HeldOut) -> None:
    trials = 600
    pvals = _null_p_values(held_out, window=200, trials=trials, seed=11)
    for name, ps in pvals.items():
        rate = float(np.mean(np.asarray(ps) <= 0.05))
        # Binomial(600, 0.05): mean 30; <= 47 covers > 99.9 %. Conservative tests may sit low, never high.
        assert rate * trials <= 47, (name, rate)
    # And the family-wise verdict at the default alpha (0.001) raises no false alarm.
    family = np.min(np.vstack([np.asarray(ps) * len(TESTS) for ps in pvals.values()]), axis=0)
    assert int((family <= DriftConfig().alpha).sum()) == 0


def test_zero_false_alarms_over_10000_clean_requests(held_out: HeldOut) -> None:
    rng = np.random.default_rng(5)
    idx = np.arange(len(held_out.texts))
    alarms = 0
    for _ in range(20):  # 20 windows x 500 requests
        perm = rng.permutation(idx)
        ref, pool = perm[:1540], perm[1540:]
        report = compare(held_out.profile(ref), held_out.features(rng.choice(pool, 500, replace=False)))
        assert 0.0 <= report.drift_score < 1.0 or report.drift_detected
        alarms += report.drift_detected
    assert alarms == 0


def _shifted(
    held_out: HeldOut, rng: np.random.Generator, pool: np.ndarray, n: int, weights: dict[str, float]
) -> np.ndarray:
    w = np.array([weights.get(held_out.labels[i], 1.0) for i in pool])
    return rng.choice(pool, size=n, replace=True, p=w / w.sum())


@pytest.mark.parametrize("window", [500, 1000])
def test_a_changed_intent_mix_is_detected(held_out: HeldOut, window: int) -> None:
    rng = np.random.default_rng(window)
    perm = rng.permutation(len(held_out.texts))
    ref, pool = perm[:1540], perm[1540:]
    heavy = held_out.classes[::8][:10]
    report = compare(
        held_out.profile(ref), held_out.features(_shifted(held_out, rng, pool, window, dict.fromkeys(heavy, 10.0)))
    )
    assert report.drift_detected and report.drift_score == 1.0
    assert next(t for t in report.tests if t.name == "prediction").fired


def test_foreign_text_fires_the_oov_and_input_tests(held_out: HeldOut, fast_classifier: IntentClassifier) -> None:
    rng = np.random.default_rng(9)
    perm = rng.permutation(len(held_out.texts))
    ref = perm[:1540]
    foreign = [
        "quelle est la météo demain à lisbonne",
        "wie spät ist es bitte",
        "recommend a good sci-fi novel about robots",
        "how tall is mount everest in feet",
    ]
    texts = [held_out.texts[i] for i in rng.choice(perm[1540:], 300)] + [foreign[i % 4] for i in range(100)]
    intents, conf = fast_classifier.predict_top1(texts)
    feats = request_features(texts, intents, conf, held_out.vocab, held_out.log_p)
    report = compare(held_out.profile(ref), feats)
    fired = {t.name for t in report.tests if t.fired}
    assert {"oov", "input"} <= fired, fired
    assert report.metrics()["OOVRateIncrease"] > 0.05


@pytest.mark.slow
def test_false_alarm_rate_at_the_real_threshold_over_many_clean_windows(held_out: HeldOut) -> None:
    """The promise itself: P(drift | clean) <= alpha = 0.001, measured at alpha, not only at 5 %.

    12,000 clean windows of the minimum size (200): Bonferroni makes the expected count <= 12;
    Poisson(12) exceeds 24 with probability < 0.1 %, so more than 24 alarms means the promise is broken.
    """
    rng = np.random.default_rng(2026)
    idx = np.arange(len(held_out.texts))
    cfg = DriftConfig(sequential_alpha=None)  # the per-window promise; the sequential one: test_sequential.py
    alarms = 0
    per_test = dict.fromkeys(TESTS, 0)
    for _ in range(12_000):
        perm = rng.permutation(idx)
        report = compare(
            held_out.profile(perm[:1540]), held_out.features(rng.choice(perm[1540:], 200, replace=False)), cfg
        )
        alarms += report.drift_detected
        for t in report.tests:
            per_test[t.name] = per_test.get(t.name, 0) + t.fired
    print(f"clean windows: 12000 x 200, family alarms {alarms}, per test {per_test}")
    assert alarms <= 24, per_test
