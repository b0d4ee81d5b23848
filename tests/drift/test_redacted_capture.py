"""The drift check on redacted capture gives the verdicts it gives on the original text (issue 20, item 4).

The reference is built from traffic with customer data in it, as a recent-traffic reference is built from
the capture; windows are clean and shifted. The full comparison on the drift benchmark's windows is
`python -m benchmarks.drift_redaction` (docs/benchmarks.md, section drift-redaction).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks.drift_redaction import inject
from model.drift import check_window, compare
from model.profile import RequestFeatures, profile_from_features, request_features
from model.redact import Redactor
from tests.drift.conftest import HeldOut


def _verdicts(held_out: HeldOut, share: float, seed: int) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(held_out.texts))
    ref, rest = perm[:1540], perm[1540:]
    known = set(held_out.classes[:60])
    shifted = np.array([i for i in rest if held_out.intents[i] not in known])  # only 17 intents: a mix shift
    windows = [rest[:300], rest[300:600], shifted[:300]]
    arms: dict[str, Callable[[str], str]] = {
        "original": lambda t: t,
        "redact": Redactor().redact,
        "hash": Redactor("hash", "k" * 24).redact,
    }
    ref_texts = inject([held_out.texts[i] for i in ref], share, rng)
    win_texts = [inject([held_out.texts[i] for i in w], share, rng) for w in windows]
    out: dict[str, list[str]] = {}
    for arm, f in arms.items():

        def feats(texts: list[str], idx: np.ndarray, f: Callable[[str], str] = f) -> RequestFeatures:
            return request_features(
                [f(t) for t in texts],
                [held_out.intents[i] for i in idx],
                held_out.confidence[idx],
                held_out.vocab,
                held_out.log_p,
            )

        profile = profile_from_features(
            feats(ref_texts, ref),
            model_version="test",
            classes=held_out.classes,
            vocabulary=held_out.vocab,
            train_bucket_counts=held_out.train_counts,
        )
        out[arm] = [compare(profile, feats(t, w)).status for t, w in zip(win_texts, windows, strict=True)]
    return out


def test_same_verdicts_on_redacted_and_hashed_text(held_out: HeldOut) -> None:
    for share, seed in ((0.1, 0), (0.3, 1)):
        v = _verdicts(held_out, share, seed)
        assert v["original"][-1] == "drift"  # the shifted window is seen...
        assert v["redact"] == v["original"] == v["hash"], (share, v)  # ...and every verdict is the same


def test_dropped_text_keeps_the_prediction_and_confidence_tests(held_out: HeldOut) -> None:
    rng = np.random.default_rng(2)
    perm = rng.permutation(len(held_out.texts))
    profile = held_out.profile(perm[:1540])
    win = perm[1540:1840]
    intents, conf = [held_out.intents[i] for i in win], held_out.confidence[win].tolist()
    report = check_window(profile, [None] * len(win), intents, conf)
    assert {t.name for t in report.tests} == {"prediction", "confidence", "sequential"}
    assert report.status == "no_drift"  # empty texts would have fired the OOV and input tests
    full = check_window(profile, [held_out.texts[i] for i in win], intents, conf)
    assert {t.name for t in full.tests} >= {"oov", "input"}
