"""Drift statistics: four two-sample tests of a capture window against a reference profile.

Why tests and not thresholds on PSI: a PSI of 0.1 means something different for 100 requests than for
10,000, and with 77 intents a small window leaves most bins nearly empty, where PSI and a naive
chi-square are dominated by noise. Each check here is a two-sample hypothesis test whose null is "the
window and the reference sample come from the same distribution", so its p-value already accounts for
the size of both samples, and the false-alarm rate of the verdict is a number we choose:

    P(verdict "drift" | no drift) <= alpha        (per window; default alpha = 0.001)

by Bonferroni across the four tests (each at alpha / 4). With windows of 500 requests, 10,000 clean
requests are 20 windows, so the chance of even one false alarm over them is at most 2 %.

The tests (each valid for any window of at least `min_window` requests):

1. Prediction drift: chi-square test of homogeneity on the 2 x G table of predicted-intent counts.
   Intents are pooled (rarest first, by their combined count, which under the null says nothing about
   which sample a request is in) until every pooled bin expects at least `min_expected` requests in
   both samples; that keeps the chi-square approximation honest for small windows. PSI and Jensen-Shannon on the same
   pooled bins are reported as effect sizes, not used for the verdict.
2. Confidence drop: one-sided Mann-Whitney U (window lower) computed from the binned confidences with
   the tie correction, so it is exact for the binned variable and needs no normality.
3. OOV-rate rise: one-sided Mann-Whitney U (window higher) on the per-request OOV fraction.
4. Input shift: two-sided Mann-Whitney U on per-request typicality (mean token log-probability under
   the reference's hashed-unigram model, see model/profile.py). The per-request score is an
   independent draw per request, unlike the tokens, which is why the test is not a 4096-bin
   chi-square over tokens.

5. Sequential (persistent small shifts): one window of 200-500 requests cannot see 10 % of traffic
   moving into the low-confidence tail, so the confidence histograms of consecutive windows are summed
   into an *epoch* and a one-sided two-sample Savage (log-rank) test of "the epoch's confidences are
   lower" is repeated at every check, with group-sequential boundaries that spend `sequential_alpha`
   over the epoch. See `sequential_test` for the statistic, the boundary and the guarantee:

    P(the sequential test fires at least once in an epoch | no drift) <= sequential_alpha

   where an epoch ends at the first check at which it holds `sequential_horizon` x (reference size)
   requests, or when it fires; the next check starts a new epoch. Marginal over the reference draw, as
   the per-window promise: the reference's own sampling error is in the statistic's variance.

Every test reads only count tables, so a check costs microseconds after the window's features.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import chdtrc, digamma, ndtr, ndtri

from model.contract import contract
from model.profile import (
    CONFIDENCE_EDGES,
    OOV_EDGES,
    TYPICALITY_EDGES,
    Profile,
    RequestFeatures,
    histogram,
)

TESTS = ("prediction", "confidence", "oov", "input")  # the per-window tests (Bonferroni over these)
SEQUENTIAL = "sequential"
SCORE_CAP = 10.0
_EULER_GAMMA = 0.5772156649015329


@dataclass(frozen=True)
class DriftConfig:
    """The knobs of the verdict; the defaults give a false-alarm rate of at most 0.1 % per window."""

    alpha: float = 0.001  # family-wise false-alarm rate per window (Bonferroni over the 4 tests)
    min_window: int = 200  # below this the check reports "insufficient_data" instead of a verdict
    min_expected: float = 5.0  # smallest expected count per pooled intent bin (Cochran's rule)
    # The sequential test (persistent small shifts, see `sequential_test`): false-alarm probability per
    # epoch, and the epoch length in multiples of the reference size. 0.005 per epoch of >= n_ref
    # requests is <= 5e-6 per request for n_ref >= 1,000: the per-window test's budget at its minimum
    # window (0.001 per 200 requests). None disables the test.
    sequential_alpha: float | None = 0.005
    sequential_horizon: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.min_window < 20:
            raise ValueError(f"min_window must be at least 20, got {self.min_window}")
        if self.min_expected <= 0:
            raise ValueError(f"min_expected must be positive, got {self.min_expected}")
        if self.sequential_alpha is not None and not 0.0 < self.sequential_alpha < 1.0:
            raise ValueError(f"sequential_alpha must be in (0, 1) or None, got {self.sequential_alpha}")
        if not 0.0 < self.sequential_horizon <= 1000.0:
            raise ValueError(f"sequential_horizon must be in (0, 1000], got {self.sequential_horizon}")

    @property
    def alpha_per_test(self) -> float:
        return self.alpha / len(TESTS)


@dataclass
class TestResult:
    name: str
    statistic: float
    p_value: float
    alpha: float
    fired: bool
    score: float  # log(p) / log(alpha): >= 1 exactly when the test fires
    effect: float  # a human-readable size of the change (see `effect_name`)
    effect_name: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Evidence:
    """The sequential test's state between checks (persisted as JSON next to the drift reports).

    It belongs to one model version (one reference): a different version starts fresh. An epoch is a
    run of consecutive checks whose confidence histograms are summed; `closed` says the last check
    ended it (it fired, or the epoch reached its horizon), so the next check starts a new epoch.
    `information` and `boundaries` are the looks of the current epoch (information 1/(1/n + 1/n_ref)
    and the z boundary used), from which the next boundary is computed.
    """

    model_version: str
    epoch: int = 0  # index of the current epoch for this model version
    checks: int = 0  # judged checks seen for this model version (all epochs)
    alarms: int = 0  # checks at which the sequential test fired (all epochs)
    n: int = 0  # requests summed in the current epoch
    confidence_hist: list[int] = field(default_factory=list)  # the current epoch's summed histogram
    information: list[float] = field(default_factory=list)
    boundaries: list[float] = field(default_factory=list)
    spent: float = 0.0  # alpha spent in the current epoch
    statistic: float = 0.0  # z at the last look
    closed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Evidence:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        ev = cls(**known)
        ev.confidence_hist = [int(x) for x in ev.confidence_hist]
        ev.information = [float(x) for x in ev.information]
        ev.boundaries = [float(x) for x in ev.boundaries]
        return ev


@dataclass
class DriftReport:
    status: str  # "drift", "no_drift" or "insufficient_data"
    window_size: int
    reference_size: int
    alpha: float
    drift_score: float  # min(1, max test score): >= 1.0 means the verdict is "drift"
    drift_detected: bool
    tests: list[TestResult]
    model_version: str = ""
    evidence: Evidence | None = None  # the sequential test's updated state, to pass to the next check

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        """The CloudWatch metrics (names from contract.yaml), by name."""
        by = {t.name: t for t in self.tests}
        m = contract().metrics

        def eff(name: str) -> float:
            return float(by[name].effect) if name in by else 0.0

        return {
            m.drift_score: float(self.drift_score),
            m.prediction_drift: eff("prediction"),
            m.confidence_drop: eff("confidence"),
            m.oov_rate_increase: eff("oov"),
            m.input_drift: eff("input"),
            m.drift_detected: 1.0 if self.drift_detected else 0.0,
        }


def _score(p: float, alpha: float) -> float:
    if p >= 1.0:
        return 0.0
    if p <= 0.0:
        return SCORE_CAP
    return float(min(SCORE_CAP, max(0.0, math.log(p) / math.log(alpha))))


def pool_bins(
    totals: Sequence[float] | np.ndarray, n_window: int, n_reference: int, min_expected: float
) -> list[list[int]]:
    """Group category indices, rarest first by their COMBINED count, until each group expects >= min_expected.

    Why combined (reference + window) counts: under the null, which of the combined requests fell in
    the window is a random split, and the combined counts carry no information about that split, so
    grouping on them keeps the test valid (the usual expected-count rule). Grouping on the reference
    counts alone is not: classes that happen to be rare in the reference sample are pooled together and
    are then systematically over-represented in the window. On clean BANKING77 windows of 200 that
    mistake gave 29 % false alarms at a nominal 5 % (tests/drift/test_calibration_banking77.py).
    """
    tot = np.asarray(totals, dtype=float)
    big_n = max(float(tot.sum()), 1.0)
    scale = min(n_window, n_reference) / big_n
    order = np.argsort(tot, kind="stable")
    groups: list[list[int]] = []
    current: list[int] = []
    mass = 0.0
    for idx in order:
        current.append(int(idx))
        mass += tot[idx]
        if mass * scale >= min_expected:
            groups.append(current)
            current, mass = [], 0.0
    if current:
        if groups:
            groups[-1].extend(current)
        else:
            groups.append(current)
    return groups


def chi2_homogeneity(ref_counts: np.ndarray, win_counts: np.ndarray) -> tuple[float, int, float]:
    """Pearson chi-square on a 2 x G table; returns (statistic, degrees of freedom, p-value)."""
    table = np.vstack([ref_counts, win_counts]).astype(float)
    keep = table.sum(axis=0) > 0
    table = table[:, keep]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    df = table.shape[1] - 1
    return stat, df, float(chdtrc(df, stat))


def _proportions(counts: np.ndarray, eps: float = 0.5) -> np.ndarray:
    """Add-half (Jeffreys) smoothing so empty bins do not make PSI or JS infinite."""
    c = counts.astype(float) + eps
    return c / c.sum()


def psi(ref_counts: np.ndarray, win_counts: np.ndarray) -> float:
    p, q = _proportions(ref_counts), _proportions(win_counts)
    return float(((q - p) * np.log(q / p)).sum())


def jensen_shannon(ref_counts: np.ndarray, win_counts: np.ndarray, eps: float = 0.5) -> float:
    """JS divergence in bits (0..1)."""
    p, q = _proportions(ref_counts, eps), _proportions(win_counts, eps)
    m = (p + q) / 2
    return float(0.5 * (p * np.log2(p / m)).sum() + 0.5 * (q * np.log2(q / m)).sum())


def mann_whitney_binned(ref_hist: Sequence[int], win_hist: Sequence[int], alternative: str) -> tuple[float, float]:
    """Mann-Whitney U from two histograms on the same bins (ties within a bin get mid-ranks).

    Returns (z, p). `alternative`: "less" (window values lower), "greater", or "two-sided". Binning only
    creates ties, which the variance correction accounts for, so the test stays valid for the binned
    variable; the normal approximation is good for the window sizes we allow (>= 20 each side).
    """
    r = np.asarray(ref_hist, dtype=float)
    w = np.asarray(win_hist, dtype=float)
    n_r, n_w = r.sum(), w.sum()
    big_n = n_r + n_w
    if n_r == 0 or n_w == 0:
        return 0.0, 1.0
    t = r + w
    below = np.concatenate([[0.0], np.cumsum(t)[:-1]])
    midrank = below + (t + 1) / 2
    u_w = float((w * midrank).sum() - n_w * (n_w + 1) / 2)
    mean = n_w * n_r / 2
    tie = float((t**3 - t).sum()) / (big_n * (big_n - 1))
    var = n_w * n_r / 12 * ((big_n + 1) - tie)
    if var <= 0:
        return 0.0, 1.0
    diff = u_w - mean
    if alternative == "less":
        z = (diff + 0.5) / math.sqrt(var)
        return z, float(ndtr(z))
    if alternative == "greater":
        z = (diff - 0.5) / math.sqrt(var)
        return z, float(ndtr(-z))
    if alternative == "two-sided":
        z = (diff - math.copysign(0.5, diff)) / math.sqrt(var) if diff else 0.0
        return z, float(min(1.0, 2 * ndtr(-abs(z))))
    raise ValueError(f"unknown alternative {alternative!r}")


def _prediction_test(profile: Profile, intents: Sequence[str], cfg: DriftConfig) -> TestResult:
    classes = list(profile.classes)
    ref = np.array([profile.intent_counts.get(c, 0) for c in classes], dtype=float)
    seen = Counter(intents)  # counting in C; one lookup per class instead of one per request
    win = np.array([seen.pop(c, 0) for c in classes], dtype=float)
    unknown = sum(seen.values())
    if unknown:  # a label the reference model never had: its own bin, empty in the reference
        ref, win = np.append(ref, 0.0), np.append(win, unknown)
    groups = pool_bins(ref + win, int(win.sum()), int(ref.sum()), cfg.min_expected)
    group_of = np.empty(len(ref), dtype=np.int64)
    for gi, members in enumerate(groups):
        group_of[members] = gi
    ref_g = np.bincount(group_of, weights=ref, minlength=len(groups))
    win_g = np.bincount(group_of, weights=win, minlength=len(groups))
    stat, df, p = chi2_homogeneity(ref_g, win_g)
    a = cfg.alpha_per_test
    return TestResult(
        name="prediction",
        statistic=stat,
        p_value=p,
        alpha=a,
        fired=p <= a,
        score=_score(p, a),
        effect=jensen_shannon(ref_g, win_g),
        effect_name="Jensen-Shannon divergence (bits) of pooled predicted-intent distributions",
        details={"df": df, "bins": len(groups), "psi": psi(ref_g, win_g), "unknown_intents": unknown},
    )


def _rank_test(
    name: str,
    ref_hist: Sequence[int],
    values: np.ndarray,
    edges: Sequence[float],
    alternative: str,
    effect: float,
    effect_name: str,
    cfg: DriftConfig,
) -> TestResult:
    win_hist = histogram(values, edges)
    z, p = mann_whitney_binned(ref_hist, win_hist, alternative)
    a = cfg.alpha_per_test
    return TestResult(
        name=name,
        statistic=z,
        p_value=p,
        alpha=a,
        fired=p <= a,
        score=_score(p, a),
        effect=effect,
        effect_name=effect_name,
        details={"alternative": alternative, "test": "Mann-Whitney U (binned, tie-corrected)"},
    )


# The sequential test -------------------------------------------------------------------------------------


def savage_lower_z(ref_hist: Sequence[int] | np.ndarray, cur_hist: Sequence[int] | np.ndarray) -> float:
    """One-sided two-sample Savage (log-rank) z: large when `cur` puts more mass in the LOW tail.

    Why Savage scores: a drift that sends a small share of traffic far into the low-confidence tail is
    a contamination, not a location shift. The Savage score of the i-th smallest of N pooled values is
    a_i = sum_{j=i..N} 1/j (about -log(i/N), the log of a conformal p-value), which weights the low
    tail heavily and is locally most powerful for Lehmann alternatives (G = F^k, k > 1), the closest
    rank family to such a tail contamination. On BANKING77 held-out intents its efficacy (mean shift of
    contaminating requests in null SDs) is 1.96, against 1.82 for the best tail-share indicator and
    1.64 for Mann-Whitney. Ties (histogram bins) get the average score of the ranks they span, and the
    variance is the exact permutation variance of a linear rank statistic, so both samples' noise,
    the reference's included, is in it.
    """
    r = np.asarray(ref_hist, dtype=float)
    w = np.asarray(cur_hist, dtype=float)
    n_r, n_w = float(r.sum()), float(w.sum())
    big_n = n_r + n_w
    if n_r == 0 or n_w == 0:
        return 0.0
    t = r + w
    hi = np.cumsum(t)
    lo = hi - t

    def cum_h(m: np.ndarray) -> np.ndarray:  # sum_{k=0}^{m-1} H_k = m H_m - m, with H_m = psi(m+1) + gamma
        return m * (digamma(m + 1.0) + _EULER_GAMMA) - m

    h_n = float(digamma(big_n + 1.0)) + _EULER_GAMMA
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where(t > 0, h_n - (cum_h(hi) - cum_h(lo)) / np.where(t > 0, t, 1.0), 0.0)
    centred = avg - 1.0  # Savage scores average exactly 1 over the N ranks
    var = n_w * n_r / (big_n * (big_n - 1.0)) * float((t * centred**2).sum())
    if var <= 0:
        return 0.0
    return float((w * centred).sum() / math.sqrt(var))


@lru_cache(maxsize=4096)
def _boundaries(looks: tuple[tuple[float, float], ...]) -> tuple[float, ...]:
    """z boundaries of a one-sided group-sequential test; `looks` = ((information, alpha to spend), ...).

    Under the null the look statistics are jointly normal with corr(Z_j, Z_k) = sqrt(I_j / I_k), j < k
    (the canonical joint distribution: S = Z sqrt(I) has independent increments). The boundary at look k
    makes P(no crossing before k, crossing at k) equal to that look's spend, computed by the
    Armitage-McPherson-Rowe recursion (numerical integration of the sub-density of S that has not
    crossed). A pure function of the schedule, so it is cached: a repeated schedule costs nothing.
    """
    info0, spend0 = looks[0]
    bounds = [float(-ndtri(min(max(spend0, 1e-300), 1.0 - 1e-12)))]
    if len(looks) == 1:
        return tuple(bounds)
    sd = math.sqrt(info0)
    grid = np.linspace(-8.0 * sd, bounds[0] * sd, 200)
    dens = np.exp(-0.5 * (grid / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
    for k in range(1, len(looks)):
        info, spend = looks[k]
        step = max(info - looks[k - 1][0], 1e-12)
        sd_step, sd_k = math.sqrt(step), math.sqrt(info)
        weights = np.full(len(grid), grid[1] - grid[0])
        weights[[0, -1]] *= 0.5
        mass = weights * dens  # the not-yet-crossed probability at the previous look, on the grid

        def crossing(b: float, mass: np.ndarray = mass, grid: np.ndarray = grid, sd_step: float = sd_step) -> float:
            return float((mass * ndtr((grid - b) / sd_step)).sum())

        lo, hi = float(grid[0]), float(grid[-1]) + 12.0 * sd_step
        if crossing(hi) >= spend:  # numerically nothing left to spend at any sensible boundary
            b = hi
        else:
            excess = lambda x, target=spend: crossing(x) - target  # noqa: E731
            b = float(brentq(excess, lo, hi, xtol=1e-6 * sd_k)) if excess(lo) > 0 else lo
        bounds.append(b / sd_k)
        if k < len(looks) - 1:
            points = int(min(800, max(200, 48.0 * sd_k / sd_step)))
            new = np.linspace(-8.0 * sd_k, b, points)
            kernel = np.exp(-0.5 * ((new[:, None] - grid[None, :]) / sd_step) ** 2) / (sd_step * math.sqrt(2 * math.pi))
            grid, dens = new, kernel @ mass
    return tuple(bounds)


def alpha_spent(info: float, horizon_info: float, alpha: float) -> float:
    """Alpha spent by information `info`: Lan-DeMets' Pocock-type function alpha * ln(1 + (e - 1) f) of
    the information fraction f, all of it at the horizon. It spends more early than a linear function
    (61 % of alpha at half the information, not 50 %): the shift we look for persists from the start of
    the epoch, so early looks are where the test should be most ready to fire."""
    return alpha * math.log1p((math.e - 1.0) * min(1.0, info / horizon_info))


def sequential_test(
    profile: Profile, confidence: np.ndarray, cfg: DriftConfig, evidence: Evidence | None
) -> tuple[TestResult, Evidence]:
    """One look of the sequential test: add this window to the epoch, test the epoch, update the evidence.

    Statistic: the epoch's summed confidence histogram against the reference's, by `savage_lower_z`.

    Why an epoch-wise group-sequential test: the reference is a finite sample of n_ref requests, so
    however long the epoch, the statistic's variance never drops below that of the reference's own
    error: with n epoch requests the information is I = 1 / (1/n + 1/n_ref) < n_ref. The looks of one
    epoch are thus a group-sequential trial with bounded information, and a spending function over the
    information fraction I / I(horizon) gives a boundary at every look whatever the window sizes turn
    out to be (Lan-DeMets), with

        P(any look of an epoch crosses | no drift) <= sequential_alpha.

    A test that took the reference as exact (a one-sample CUSUM or e-process against the reference
    histogram) would see the reference's error as a persistent shift and fire on every long clean
    stream. The epoch ends at the horizon (sequential_horizon x n_ref requests: beyond that more traffic
    adds little information but dilutes a shift that starts late), or when the test fires; the next
    check starts a new epoch with a fresh budget. A persistent shift therefore fires again about every
    epoch until a new model version (new reference) replaces this one; a false alarm does not pin the
    alarm on. Windows carry the per-window tests' budget separately (cfg.alpha per window).
    """
    alpha = float(cfg.sequential_alpha or 0.0)
    ref_hist = np.asarray(profile.confidence_hist, dtype=np.int64)
    n_ref = int(ref_hist.sum())
    win_hist = np.asarray(histogram(confidence, CONFIDENCE_EDGES), dtype=np.int64)
    ev = evidence
    if ev is None or ev.model_version != profile.model_version:
        ev = Evidence(model_version=profile.model_version, epoch=0)
        fresh = True
    else:
        ev = Evidence.from_dict(ev.to_dict())  # never mutate the caller's state
        fresh = False
    if ev.closed or len(ev.confidence_hist) != len(win_hist):
        ev = Evidence(
            model_version=ev.model_version, epoch=ev.epoch + (0 if fresh else 1), checks=ev.checks, alarms=ev.alarms
        )
    summed = win_hist + (np.asarray(ev.confidence_hist, dtype=np.int64) if ev.confidence_hist else 0)
    n = ev.n + int(win_hist.sum())
    info = 1.0 / (1.0 / n + 1.0 / max(n_ref, 1))
    horizon_n = cfg.sequential_horizon * n_ref
    horizon_info = 1.0 / (1.0 / horizon_n + 1.0 / max(n_ref, 1))
    target = alpha_spent(info, horizon_info, alpha)
    spends = [*_spends(ev.information, horizon_info, alpha), target - ev.spent]
    looks = tuple((round(i, 6), s) for i, s in zip([*ev.information, info], spends, strict=True))
    bound = _boundaries(looks)[-1]
    z = savage_lower_z(ref_hist, summed)
    p = float(ndtr(-z))
    a = float(ndtr(-bound))
    fired = p <= a
    closed = fired or info >= horizon_info * (1 - 1e-12)
    new = Evidence(
        model_version=ev.model_version,
        epoch=ev.epoch,
        checks=ev.checks + 1,
        alarms=ev.alarms + int(fired),
        n=n,
        confidence_hist=summed.astype(int).tolist(),
        information=[*ev.information, info],
        boundaries=[*ev.boundaries, bound],
        spent=target,
        statistic=z,
        closed=closed,
    )
    ref_mean = profile.confidence_mean
    cur_mean = float((summed * _CONF_MID).sum() / max(n, 1))
    result = TestResult(
        name=SEQUENTIAL,
        statistic=z,
        p_value=p,
        alpha=a,
        fired=fired,
        score=_score(p, a),
        effect=ref_mean - cur_mean,
        effect_name="reference mean confidence minus the epoch's mean confidence (binned), over the epoch's requests",
        details={
            "test": "Savage (log-rank) two-sample, one-sided (epoch lower), group-sequential",
            "epoch": new.epoch,
            "look": len(new.information),
            "epoch_requests": n,
            "horizon_requests": horizon_n,
            "information_fraction": min(1.0, info / horizon_info),
            "boundary_z": bound,
            "alpha_spent": target,
            "sequential_alpha": alpha,
            "epoch_closed": closed,
        },
    )
    return result, new


def _spends(information: Sequence[float], horizon_info: float, alpha: float) -> list[float]:
    """Per-look spends of the looks so far (differences of the spending function)."""
    out, before = [], 0.0
    for info in information:
        now = alpha_spent(info, horizon_info, alpha)
        out.append(now - before)
        before = now
    return out


_CONF_MID = (np.asarray(CONFIDENCE_EDGES[:-1]) + np.asarray(CONFIDENCE_EDGES[1:])) / 2


def compare(
    profile: Profile,
    feats: RequestFeatures,
    cfg: DriftConfig | None = None,
    evidence: Evidence | None = None,
    *,
    text_tests: bool = True,
) -> DriftReport:
    """The verdict for one window's features against a reference profile.

    `evidence` is the sequential test's state from the previous check (None: start fresh; a different
    model version also starts fresh). The updated state is `report.evidence`; a window too small for a
    verdict returns the evidence unchanged.
    """
    cfg = cfg or DriftConfig()
    n = len(feats.intents)
    if n < cfg.min_window:
        return DriftReport(
            "insufficient_data", n, profile.n, cfg.alpha, 0.0, False, [], profile.model_version, evidence
        )
    ref_tokens = np.asarray(profile.reference_bucket_counts, dtype=float)
    tests = [
        _prediction_test(profile, feats.intents, cfg),
        _rank_test(
            "confidence",
            profile.confidence_hist,
            feats.confidence,
            CONFIDENCE_EDGES,
            "less",
            profile.confidence_mean - float(feats.confidence.mean()),
            "reference mean confidence minus window mean confidence",
            cfg,
        ),
        _rank_test(
            "oov",
            profile.oov_hist,
            feats.oov,
            OOV_EDGES,
            "greater",
            float(feats.oov.mean()) - profile.oov_mean,
            "window mean OOV fraction minus reference mean OOV fraction",
            cfg,
        ),
        _rank_test(
            "input",
            profile.typicality_hist,
            feats.typicality,
            TYPICALITY_EDGES,
            "two-sided",
            jensen_shannon(ref_tokens, feats.bucket_counts, eps=0.01),
            "Jensen-Shannon divergence (bits) of hashed token distributions (descriptive; biased up for small windows)",
            cfg,
        ),
    ]
    tests[3].details["typicality_shift"] = float(feats.typicality.mean()) - profile.typicality_mean
    if not text_tests:  # texts not captured (ESTEIRA_CAPTURE_REDACTION=drop): OOV and typicality are unknown
        tests = tests[:2]
    new_evidence = evidence
    if cfg.sequential_alpha is not None:
        seq, new_evidence = sequential_test(profile, feats.confidence, cfg, evidence)
        tests.append(seq)
    score = min(1.0, max(t.score for t in tests))
    detected = any(t.fired for t in tests)
    return DriftReport(
        status="drift" if detected else "no_drift",
        window_size=n,
        reference_size=profile.n,
        alpha=cfg.alpha,
        drift_score=score,
        drift_detected=detected,
        tests=tests,
        model_version=profile.model_version,
        evidence=new_evidence,
    )


def check_window(
    profile: Profile,
    texts: Sequence[str | None],
    intents: Sequence[str],
    confidences: Sequence[float],
    cfg: DriftConfig | None = None,
    evidence: Evidence | None = None,
) -> DriftReport:
    """Features plus verdict for raw captured requests (what drift-check calls); evidence as in `compare`.

    A text of None was not captured (model/redact.py, mode drop): if any is missing, the two tests that
    read text (OOV, input) are left out and the prediction, confidence and sequential tests still run.
    """
    full = all(t is not None for t in texts)
    words = [t if t is not None else "" for t in texts]
    return compare(profile, profile.features(words, intents, confidences), cfg, evidence, text_tests=full)


def as_metric_dict(report: DriftReport) -> Mapping[str, float]:
    return report.metrics()


# Shared with the canary (pipelines/release/): two versions' predicted-intent counts on the same traffic.


def js_divergence(p: dict[str, float], q: dict[str, float]) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between two count vectors over intents."""
    keys = sorted(set(p) | set(q))
    sp, sq = sum(p.values()), sum(q.values())
    if not keys or sp <= 0 or sq <= 0:
        return 0.0
    out = 0.0
    for k in keys:
        a, b = p.get(k, 0.0) / sp, q.get(k, 0.0) / sq
        m = (a + b) / 2
        if a > 0:
            out += 0.5 * a * math.log2(a / m)
        if b > 0:
            out += 0.5 * b * math.log2(b / m)
    return max(0.0, min(1.0, out))


def homogeneity_p_value(candidate: dict[str, float], champion: dict[str, float], draws: int = 4000) -> float:
    """How often two versions answering the same traffic would look at least this different by chance.

    A two-sample permutation test on the JS divergence itself: pool both versions' predictions, deal
    the pool at random into a "candidate" of the candidate's size and a "champion" of the rest, `draws`
    times, and count the deals at least as far apart as the observed pair. Both sides are samples, so
    both sides' noise is in the null: a 235-request champion over 77 intents has never seen some
    intents a healthy 21-request candidate will predict, and a test that takes the champion's counts
    as the truth calls that drift (measured: 3.5-6.5 % false alarms per check, in CI once). Holds for
    any window size, where chi-square needs about five expected requests per intent. Seeded, so a
    verdict can be reproduced from the metrics.
    """
    keys = sorted(set(candidate) | set(champion))
    cand = np.array([round(candidate.get(k, 0.0)) for k in keys], dtype=np.int64)
    champ = np.array([round(champion.get(k, 0.0)) for k in keys], dtype=np.int64)
    n, m = int(cand.sum()), int(champ.sum())
    if len(keys) < 2 or n <= 0 or m <= 0:
        return 1.0
    observed = js_divergence(candidate, champion)
    rng = np.random.default_rng(12345)
    dealt = rng.multivariate_hypergeometric(cand + champ, n, size=draws).astype(float)
    a = dealt / n
    b = (cand + champ - dealt) / m
    mid = (a + b) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        js = 0.5 * np.where(a > 0, a * np.log2(a / mid), 0.0).sum(axis=1)
        js += 0.5 * np.where(b > 0, b * np.log2(b / mid), 0.0).sum(axis=1)
    return float((np.sum(js >= observed - 1e-12) + 1) / (draws + 1))
