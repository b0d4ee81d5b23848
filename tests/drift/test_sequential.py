"""The sequential test: evidence across checks, its boundaries, and calibration/power on BANKING77 streams.

Clean streams: one fresh reference half per stream, consecutive windows drawn WITHOUT replacement from the
other half, the evidence carried from check to check (the sequential test needs streams, and a stream drawn
with replacement from a finite pool would not be a null draw once it is longer than the pool).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from model.drift import (
    SEQUENTIAL,
    DriftConfig,
    Evidence,
    _boundaries,
    alpha_spent,
    compare,
    mann_whitney_binned,
    savage_lower_z,
)
from model.profile import RequestFeatures

from .conftest import HeldOut


def _seq(report):  # type: ignore[no-untyped-def]
    return next(t for t in report.tests if t.name == SEQUENTIAL)


def _low_conf_heavy(
    held_out: HeldOut, rng: np.random.Generator, pool: np.ndarray, n: int, share: float
) -> RequestFeatures:
    """n requests from `pool`, `share` of them from its 15 % lowest-confidence rows (a persistent small shift)."""
    conf = held_out.confidence[pool]
    low = pool[conf <= np.quantile(conf, 0.15)]
    k = rng.binomial(n, share)
    idx = np.concatenate([rng.choice(low, k), rng.choice(pool, n - k)])
    return held_out.features(idx)


def test_evidence_round_trips_through_json(held_out: HeldOut) -> None:
    rng = np.random.default_rng(1)
    perm = rng.permutation(len(held_out.texts))
    profile = held_out.profile(perm[:1540])
    report = compare(profile, held_out.features(perm[1540:1840]))
    assert report.evidence is not None
    raw = json.dumps(report.evidence.to_dict())
    back = Evidence.from_dict(json.loads(raw))
    assert back == report.evidence
    # The whole report stays JSON-serialisable, evidence included.
    json.dumps(report.as_dict(), default=str)
    # Carrying the restored evidence gives the same next look as carrying the original.
    nxt = held_out.features(perm[1840:2140])
    a, b = compare(profile, nxt, evidence=report.evidence), compare(profile, nxt, evidence=back)
    assert _seq(a).statistic == _seq(b).statistic and a.evidence == b.evidence
    assert a.evidence is not None and a.evidence.n == 600 and len(a.evidence.information) == 2


def test_evidence_resets_on_a_new_model_version_and_passes_through_small_windows(held_out: HeldOut) -> None:
    rng = np.random.default_rng(2)
    perm = rng.permutation(len(held_out.texts))
    profile = held_out.profile(perm[:1540])
    first = compare(profile, held_out.features(perm[1540:1840])).evidence
    assert first is not None and first.model_version == "test"
    small = compare(profile, held_out.features(perm[1840:1900]), evidence=first)
    assert small.status == "insufficient_data" and small.evidence is first
    profile.model_version = "v2"
    fresh = compare(profile, held_out.features(perm[1840:2140]), evidence=first).evidence
    assert fresh is not None and fresh.model_version == "v2" and fresh.n == 300 and fresh.checks == 1


def test_boundaries_hold_the_stated_alpha_by_monte_carlo() -> None:
    n_ref, alpha = 1340, 0.005
    infos = [1 / (1 / (200 * k) + 1 / n_ref) for k in range(1, 8)]
    h = 1 / (2 / n_ref)
    spent = [alpha_spent(i, h, alpha) for i in infos]
    looks = tuple(zip(infos, np.diff([0.0, *spent]).tolist(), strict=True))
    bounds = np.array(_boundaries(looks))
    rng = np.random.default_rng(3)
    s = np.cumsum(rng.standard_normal((400_000, len(infos))) * np.sqrt(np.diff([0.0, *infos])), axis=1)
    rate = float((s / np.sqrt(infos) >= bounds).any(axis=1).mean())
    assert rate == pytest.approx(alpha, rel=0.15), rate  # sd of the estimate is ~2.8 % of alpha
    assert bounds.max() < 3.2  # correlated looks: far below Bonferroni's 3.8 for 7 looks


def test_savage_z_is_zero_for_identical_samples_and_positive_for_a_low_tail() -> None:
    ref = np.array([1, 2, 5, 10, 50, 400])
    assert savage_lower_z(ref, ref) == pytest.approx(0.0, abs=1e-9)
    cur = ref + np.array([20, 0, 0, 0, 0, 0])  # a few requests far into the low tail
    z = savage_lower_z(ref, cur)
    assert z > 2
    assert z > -mann_whitney_binned(ref, cur, "less")[0]  # why Savage: it weights the tail that moved


def test_the_sequential_test_fires_on_a_persistent_shift_no_single_window_catches(held_out: HeldOut) -> None:
    rng = np.random.default_rng(4)
    caught = windows_caught = 0
    for _ in range(20):
        perm = rng.permutation(len(held_out.texts))
        profile, pool = held_out.profile(perm[:1540]), perm[1540:]
        evidence = None
        fired = False
        for _ in range(5):  # 5 windows of 200 = 1,000 requests
            report = compare(profile, _low_conf_heavy(held_out, rng, pool, 200, 0.12), evidence=evidence)
            evidence = report.evidence
            windows_caught += any(t.fired for t in report.tests if t.name != SEQUENTIAL)
            fired |= _seq(report).fired
            if _seq(report).fired:
                assert report.drift_detected and report.drift_score == 1.0 and report.status == "drift"
                assert evidence is not None and evidence.closed and evidence.alarms >= 1
        caught += fired
    assert caught >= 15, caught
    assert windows_caught <= 0.25 * 100, windows_caught  # the per-window tests mostly miss it


def _clean_stream_alarms(held_out: HeldOut, streams: int, window: int, seed: int) -> tuple[int, int]:
    rng = np.random.default_rng(seed)
    alarms = requests = 0
    for _ in range(streams):
        perm = rng.permutation(len(held_out.texts))
        profile, pool = held_out.profile(perm[:1540]), perm[1540:]
        evidence = None
        fired = False
        for w in range(len(pool) // window):
            report = compare(profile, held_out.features(pool[w * window : (w + 1) * window]), evidence=evidence)
            evidence = report.evidence
            fired |= _seq(report).fired
            requests += window
        alarms += fired
    return alarms, requests


def test_zero_sequential_false_alarms_over_10000_clean_requests_in_streams(held_out: HeldOut) -> None:
    alarms, requests = _clean_stream_alarms(held_out, streams=14, window=500, seed=5)  # 14 x 3 x 500 = 21,000
    assert requests >= 10_000
    assert alarms == 0


@pytest.mark.slow
def test_sequential_false_alarm_rate_per_epoch_over_many_clean_streams(held_out: HeldOut) -> None:
    """The promise: P(any sequential alarm in an epoch | clean) <= sequential_alpha (0.005).

    Each stream of 7 windows x 200 from a 1,540-row pool is exactly one epoch (horizon = n_ref = 1,540).
    2,000 streams: expected <= 10 alarms; Poisson(10) exceeds 20 with probability < 0.5 %.
    """
    alarms, requests = _clean_stream_alarms(held_out, streams=2000, window=200, seed=2026)
    print(f"clean streams: 2000 x {requests // 2000} requests, sequential alarms {alarms}")
    assert alarms <= 20, alarms


def test_config_validates_the_sequential_fields() -> None:
    with pytest.raises(ValueError):
        DriftConfig(sequential_alpha=0)
    with pytest.raises(ValueError):
        DriftConfig(sequential_horizon=0)
    assert DriftConfig(sequential_alpha=None).sequential_alpha is None
