"""The test statistics against scipy's reference implementations, and their null calibration on synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2_contingency, mannwhitneyu

from model.drift import DriftConfig, chi2_homogeneity, jensen_shannon, mann_whitney_binned, pool_bins, psi
from model.profile import histogram


def test_chi2_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    ref, win = rng.integers(1, 40, 20), rng.integers(1, 15, 20)
    stat, df, p = chi2_homogeneity(ref, win)
    expected = chi2_contingency(np.vstack([ref, win]), correction=False)
    assert stat == pytest.approx(expected.statistic)
    assert df == expected.dof
    assert p == pytest.approx(expected.pvalue)


@pytest.mark.parametrize("alternative", ["less", "greater", "two-sided"])
def test_binned_mann_whitney_matches_scipy_on_the_binned_values(alternative: str) -> None:
    rng = np.random.default_rng(2)
    edges = list(np.linspace(0, 1, 21))
    ref, win = rng.beta(5, 2, 800), rng.beta(4, 2, 150)
    centre = lambda v: np.clip(np.searchsorted(edges, v, side="right") - 1, 0, 19)  # noqa: E731
    _, p = mann_whitney_binned(histogram(ref, edges), histogram(win, edges), alternative)
    # scipy's U is for its first sample, so the window goes first.
    expected = mannwhitneyu(centre(win), centre(ref), alternative=alternative, method="asymptotic", use_continuity=True)
    assert p == pytest.approx(expected.pvalue, rel=1e-6)


def test_pooling_reaches_min_expected() -> None:
    ref = np.array([0, 1, 2, 3, 50, 60, 70, 80, 5, 9], dtype=float)
    groups = pool_bins(ref, n_window=100, n_reference=int(ref.sum()), min_expected=5)
    scale = 100 / ref.sum()
    assert sorted(i for g in groups for i in g) == list(range(len(ref)))
    assert all(ref[g].sum() * scale >= 5 for g in groups)
    # A window larger than the reference: the reference's own counts must reach 5 (its rare bins pool).
    big = pool_bins(ref, 10_000, int(ref.sum()), 5)
    assert len(big) == 7 and all(ref[g].sum() >= 5 for g in big)


def test_effect_sizes_are_zero_for_identical_and_positive_for_different() -> None:
    a = np.array([10, 20, 30, 40])
    assert psi(a, a) == pytest.approx(0.0, abs=1e-12)
    assert jensen_shannon(a, a) == pytest.approx(0.0, abs=1e-12)
    assert jensen_shannon(a, a[::-1]) > 0.05
    assert psi(a, a[::-1]) > 0.1


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        DriftConfig(alpha=0)
    with pytest.raises(ValueError):
        DriftConfig(min_window=5)


def test_pooled_chi2_is_calibrated_for_small_windows_over_77_skewed_classes() -> None:
    """Null: window and reference from the same skewed 77-class multinomial; a naive 77-bin test would over-reject."""
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.full(77, 0.7))
    rejections = naive_rejections = 0
    trials = 400
    for _ in range(trials):
        ref = rng.multinomial(1500, probs).astype(float)
        win = rng.multinomial(200, probs).astype(float)
        groups = pool_bins(ref + win, 200, 1500, 5)
        _, _, p = chi2_homogeneity(np.array([ref[g].sum() for g in groups]), np.array([win[g].sum() for g in groups]))
        rejections += p <= 0.01
        naive_rejections += chi2_homogeneity(ref, win)[2] <= 0.01
    # Binomial(400, 0.01): mean 4; 0..12 covers > 99.9 %.
    assert rejections <= 12, rejections
    assert naive_rejections > rejections  # the unpooled test is the one that is not honest here
