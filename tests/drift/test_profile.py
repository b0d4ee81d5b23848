"""The reference profile: features equal a plain per-request computation, JSON round-trip, stable hashing."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest

from model.classifier import IntentClassifier
from model.profile import (
    HASH_BUCKETS,
    Profile,
    bucket,
    build_profile,
    histogram,
    request_features,
    token_log_probs,
    tokens,
)


def test_vectorised_features_equal_the_plain_definition(test_frame: pd.DataFrame) -> None:
    texts = [*test_frame["text"].tolist()[:300], "", "!!! ???", "Hello WORLD world", "naïve café", "a\x1eb"]
    log_p, _ = token_log_probs(test_frame["text"].tolist())
    vocab = frozenset({"i", "my", "card", "world", "café"})
    feats = request_features(texts, ["x"] * len(texts), np.ones(len(texts)), vocab, log_p)
    expected_counts = np.zeros(HASH_BUCKETS, dtype=np.int64)
    for i, text in enumerate(texts):
        toks = tokens(text)
        for t in toks:
            expected_counts[bucket(t)] += 1
        if not toks:
            assert feats.oov[i] == 1.0 and feats.typicality[i] == log_p.min()
            continue
        assert feats.oov[i] == pytest.approx(sum(t not in vocab for t in toks) / len(toks))
        assert feats.typicality[i] == pytest.approx(np.mean([log_p[bucket(t)] for t in toks]))
        assert feats.length[i] == len(text)
    assert (feats.bucket_counts == expected_counts).all()


def test_bucket_is_stable_across_processes() -> None:
    # crc32, not Python's salted hash(): a profile written by one process is read by another.
    assert bucket("refund") == zlib.crc32(b"refund") % HASH_BUCKETS
    assert 0 <= bucket("card") < HASH_BUCKETS


def test_histogram_keeps_out_of_range_values() -> None:
    assert histogram(np.array([-5.0, 0.0, 0.5, 1.0, 7.0]), [0.0, 0.5, 1.0]) == [2, 3]


def test_profile_round_trips_and_rejects_foreign_json(
    fast_classifier: IntentClassifier, train_frame: pd.DataFrame, test_frame: pd.DataFrame
) -> None:
    profile = build_profile(fast_classifier, train_frame["text"].tolist(), test_frame["text"].tolist()[:500])
    again = Profile.from_json(profile.to_json())
    assert again.to_json() == profile.to_json()
    assert again.n == 500 and sum(again.intent_counts.values()) == 500 and len(again.classes) == 77
    assert len(profile.to_json()) < 200_000  # small enough to load in a Lambda on every tick
    with pytest.raises(ValueError):
        Profile.from_json('{"version": 99}')
    with pytest.raises(ValueError):
        build_profile(fast_classifier, ["a"], [])


def test_fast_tokenizer_agrees_with_per_text_tokens_and_falls_back_on_the_separator() -> None:
    from model.profile import _tokenize_all

    texts = ["Hi there!", "", "??", "Top-up £20 now", "ΣΑΣ final"]
    flat, counts = _tokenize_all(texts)
    assert flat.tolist() == [t for x in texts for t in tokens(x)] and counts.tolist() == [len(tokens(x)) for x in texts]
    flat, counts = _tokenize_all(["a\x1eb", "c"])  # a text holding the separator: per-text path
    assert flat.tolist() == ["a", "b", "c"] and counts.tolist() == [2, 1]
