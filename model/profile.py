"""The reference profile: what "normal traffic" looked like for one model version, stored with it.

Why a profile and not the reference rows: the drift check runs in a Lambda on every schedule tick, so
it must load something small (tens of kB of JSON) instead of a data set, and the profile must not leak
the texts themselves. Every statistic the drift check needs is a count table, so two-sample tests can
be run exactly from it:

- predicted-intent counts (prediction drift, chi-square on pooled bins);
- histograms of the per-request confidence, OOV fraction and typicality score, on FIXED bin edges, so
  a window binned on the same edges gives a 2 x B table for a rank test with ties;
- hashed token frequencies (2^12 buckets) and the per-request typicality score they define.

The profile is built from held-out predictions (the evaluation split, never the training rows), so
the confidence and OOV figures are what the model shows on text it has not seen; training rows would
flatter both.

Typicality: each request's mean log-probability of its tokens under the reference hashed-unigram model
(built from the TRAINING texts, Laplace-smoothed). Text about things the training data never covered
scores low. It turns a 4096-bucket comparison, whose tokens are not independent draws, into one score
per request, which is an independent draw, so a standard rank test applies.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd

PROFILE_VERSION = 1
HASH_BUCKETS = 1 << 12
_TOKEN_RE = re.compile(r"(?u)\b\w+\b")

# Fixed bin edges: the window is binned on the same edges, so the tables line up.
CONFIDENCE_EDGES: list[float] = [round(x, 3) for x in np.linspace(0.0, 1.0, 51)]
OOV_EDGES: list[float] = [round(x, 3) for x in np.linspace(0.0, 1.0, 41)]
TYPICALITY_EDGES: list[float] = [round(x, 3) for x in np.linspace(-16.0, 0.0, 81)]
LENGTH_EDGES: list[float] = [0, 10, 20, 30, 40, 50, 60, 80, 100, 130, 160, 200, 300, 500, 1000, 1e9]


def tokens(text: str) -> list[str]:
    """The word tokens the classifier's word vectoriser sees (same pattern, lower-cased)."""
    return _TOKEN_RE.findall(text.lower())


def bucket(token: str) -> int:
    """A stable hash (crc32, not Python's salted hash) so a profile means the same in every process."""
    return zlib.crc32(token.encode("utf-8")) & (HASH_BUCKETS - 1)


def histogram(values: Iterable[float], edges: Sequence[float]) -> list[int]:
    """Counts per bin; values outside the edges fall into the first/last bin (never dropped)."""
    arr = values.astype(float, copy=False) if isinstance(values, np.ndarray) else np.asarray(list(values), dtype=float)
    e = np.asarray(edges, dtype=float)
    idx = np.clip(np.searchsorted(e, arr, side="right") - 1, 0, len(e) - 2)
    return np.bincount(idx, minlength=len(e) - 1).astype(int).tolist()


@dataclass(frozen=True)
class RequestFeatures:
    """Per-request numbers, computed the same way for the reference and for a capture window."""

    intents: list[str]
    confidence: np.ndarray
    oov: np.ndarray
    length: np.ndarray
    typicality: np.ndarray
    bucket_counts: np.ndarray  # summed over the requests, HASH_BUCKETS long


_SEP = "\x1e"  # ASCII record separator: not a word character, never produced by a keyboard
_SPLIT_RE = re.compile(r"(?u)\w+|\x1e")  # \w+ is maximal, so the same tokens as _TOKEN_RE, faster


def _tokenize_all(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """All tokens of all texts, in order (an object array), and the token count of each text.

    One regex pass over the joined, lower-cased window instead of one per text (the per-call cost
    dominated); the separator is matched as its own token to recover the per-text counts, and dropped
    with one boolean mask. Texts that contain the separator themselves take the plain per-text path.
    """
    if len(texts) == 0:
        return np.array([], dtype=object), np.zeros(0, dtype=np.int64)
    joined = _SEP.join(texts).lower()
    if joined.count(_SEP) != len(texts) - 1:
        lists = [_TOKEN_RE.findall(t.lower()) for t in texts]
        flat = np.array(list(chain.from_iterable(lists)), dtype=object)
        return flat, np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    found = np.array(_SPLIT_RE.findall(joined), dtype=object)
    is_sep = found == _SEP
    sep_at = np.flatnonzero(is_sep)
    bounds = np.concatenate([[-1], sep_at, [len(found)]])
    counts = np.diff(bounds) - 1
    return found[~is_sep], counts.astype(np.int64)


def request_features(
    texts: Sequence[str],
    intents: Sequence[str],
    confidences: Sequence[float],
    vocabulary: set[str] | frozenset[str],
    log_token_prob: np.ndarray,
    memo: dict[str, tuple[int, bool]] | None = None,
) -> RequestFeatures:
    """OOV fraction, length, typicality and hashed token counts of each request.

    Vectorised over the window's distinct tokens: each distinct token is hashed and looked up once,
    then per-request sums are one `reduceat`. This is the whole cost of a drift check, so it is
    worth the few lines (about 1 us per request on an idle core).
    """
    n = len(texts)
    flat, counts = _tokenize_all(texts)
    # Hash-based factorisation in C: the window's distinct tokens and, per token, its distinct index.
    codes, uniques = pd.factorize(flat)
    memo = {} if memo is None else memo
    mask = HASH_BUCKETS - 1  # bucket(), inlined: this line runs once per distinct token of every window
    entries = [
        memo.get(tok) or memo.setdefault(tok, (zlib.crc32(tok.encode("utf-8")) & mask, tok in vocabulary))
        for tok in uniques
    ]
    uniq_bucket = np.fromiter((e[0] for e in entries), dtype=np.int64, count=len(entries))
    uniq_known = np.fromiter((e[1] for e in entries), dtype=bool, count=len(entries))
    ids = uniq_bucket[codes]
    unknown = (~uniq_known[codes]).astype(float)
    logp = log_token_prob[ids]
    oov = np.ones(n)  # an empty or symbol-only text is as unknown as it gets...
    typ = np.full(n, float(log_token_prob.min()))  # ...and as atypical
    has = counts > 0
    if has.any():
        starts = (np.cumsum(counts) - counts)[has]
        oov[has] = np.add.reduceat(unknown, starts) / counts[has]
        typ[has] = np.add.reduceat(logp, starts) / counts[has]
    return RequestFeatures(
        intents=[str(x) for x in intents],
        confidence=np.asarray(confidences, dtype=float),
        oov=oov,
        length=np.fromiter(map(len, texts), dtype=float, count=n),
        typicality=typ,
        bucket_counts=np.bincount(ids, minlength=HASH_BUCKETS).astype(np.int64),
    )


def token_log_probs(train_texts: Iterable[str]) -> tuple[np.ndarray, list[int]]:
    """Laplace-smoothed log-probabilities of the hashed buckets, from the training texts."""
    counts = np.zeros(HASH_BUCKETS, dtype=np.int64)
    for text in train_texts:
        for tok in tokens(text):
            counts[bucket(tok)] += 1
    probs = (counts + 1.0) / (counts.sum() + HASH_BUCKETS)
    return np.log(probs), counts.astype(int).tolist()


def word_vocabulary(classifier: Any) -> frozenset[str]:
    """The single-word entries of the classifier's word vectoriser (its n-grams are not 'words')."""
    vocab = classifier.features.transformer_list[0][1].vocabulary_
    return frozenset(k for k in vocab if " " not in k)


@dataclass
class Profile:
    """Count tables of one reference sample; see the module docstring for why each exists."""

    model_version: str
    n: int
    classes: list[str]
    intent_counts: dict[str, int]
    confidence_hist: list[int]
    oov_hist: list[int]
    typicality_hist: list[int]
    length_hist: list[int]
    confidence_mean: float
    oov_mean: float
    length_mean: float
    length_std: float
    typicality_mean: float
    train_bucket_counts: list[int]
    reference_bucket_counts: list[int]
    low_confidence_threshold: float = 0.5
    low_confidence_rate: float = 0.0
    vocabulary: list[str] = field(default_factory=list)
    edges: dict[str, list[float]] = field(default_factory=dict)
    version: int = PROFILE_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Profile:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("version") != PROFILE_VERSION:
            raise ValueError(f"not an esteira reference profile (version {PROFILE_VERSION})")
        return cls(**data)

    def log_token_prob(self) -> np.ndarray:
        counts = np.asarray(self.train_bucket_counts, dtype=float)
        return np.log((counts + 1.0) / (counts.sum() + HASH_BUCKETS))

    def features(self, texts: Sequence[str], intents: Sequence[str], confidences: Sequence[float]) -> RequestFeatures:
        """Compute a window's per-request features exactly as the reference's were computed."""
        cache: tuple[frozenset[str], np.ndarray, dict[str, tuple[int, bool]]] | None = getattr(self, "_cache", None)
        if cache is None:
            cache = (frozenset(self.vocabulary), self.log_token_prob(), {})  # memo: token -> (bucket, known)
            self._cache = cache
        return request_features(texts, intents, confidences, cache[0], cache[1], cache[2])


def profile_from_features(
    feats: RequestFeatures,
    *,
    model_version: str,
    classes: Sequence[str],
    vocabulary: Iterable[str],
    train_bucket_counts: list[int],
    low_confidence_threshold: float = 0.5,
) -> Profile:
    """Summarise per-request features into count tables (also used by the benchmark to re-split)."""
    counts = {c: 0 for c in classes}
    for intent in feats.intents:
        counts[intent] = counts.get(intent, 0) + 1
    return Profile(
        model_version=str(model_version),
        n=len(feats.intents),
        classes=[str(c) for c in classes],
        intent_counts=counts,
        confidence_hist=histogram(feats.confidence, CONFIDENCE_EDGES),
        oov_hist=histogram(feats.oov, OOV_EDGES),
        typicality_hist=histogram(feats.typicality, TYPICALITY_EDGES),
        length_hist=histogram(feats.length, LENGTH_EDGES),
        confidence_mean=float(feats.confidence.mean()),
        oov_mean=float(feats.oov.mean()),
        length_mean=float(feats.length.mean()),
        length_std=float(feats.length.std()),
        typicality_mean=float(feats.typicality.mean()),
        train_bucket_counts=train_bucket_counts,
        reference_bucket_counts=feats.bucket_counts.astype(int).tolist(),
        low_confidence_threshold=low_confidence_threshold,
        low_confidence_rate=float((feats.confidence < low_confidence_threshold).mean()),
        vocabulary=sorted(vocabulary),
        edges={
            "confidence": CONFIDENCE_EDGES,
            "oov": OOV_EDGES,
            "typicality": TYPICALITY_EDGES,
            "length": LENGTH_EDGES,
        },
    )


def build_profile(
    classifier: Any,
    train_texts: Sequence[str],
    reference_texts: Sequence[str],
    *,
    model_version: str = "",
    low_confidence_threshold: float = 0.5,
) -> Profile:
    """The profile of a fitted classifier: held-out predictions on `reference_texts`, token model from training."""
    if not reference_texts:
        raise ValueError("a reference profile needs at least one reference text")
    log_p, train_counts = token_log_probs(train_texts)
    vocab = word_vocabulary(classifier)
    intents, conf = classifier.predict_top1(list(reference_texts))
    feats = request_features(reference_texts, intents, conf, vocab, log_p)
    return profile_from_features(
        feats,
        model_version=model_version,
        classes=[str(c) for c in classifier.classes_],
        vocabulary=vocab,
        train_bucket_counts=train_counts,
        low_confidence_threshold=low_confidence_threshold,
    )
