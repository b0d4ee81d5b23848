"""IntentClassifier.transform's fast path (per-word char_wb cache, tf-idf without sklearn's per-call checks,
direct stacking) must give exactly the matrix the fitted FeatureUnion gives, on real texts and odd ones."""

from __future__ import annotations

import pickle
import threading
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.pipeline import FeatureUnion

import model.classifier as classifier_module
from model.classifier import IntentClassifier, ModelParams

EDGE_TEXTS = [
    "card card card card card",  # repeated words: their n-gram counts must add up
    "the the, the; the. THE!",
    "what???!!! ... $$$ 100% (really) [ok] {x} @me #tag",  # punctuation only, or glued to words
    "Café naïve résumé Ünïcödé ÅNGSTRÖM",  # accents, kept as they are (strip_accents is unset)
    "Σίσυφος ΟΔΟΣ İstanbul straße ǅemal",  # final sigma, dotted I, ß, titlecase digraph: whole-text lower()
    "日本語のテキスト 中文 한국어",
    "emoji 💳💸 in 🏦 text",
    "x" * 300,  # one very long word: longer than the cache's word-length cap
    "supercalifragilisticexpialidocious" * 3 + " card",
    "a",  # a text of one char
    "?",
    "  leading and   trailing\twhite\nspace\r\x0b\x0c  ",
    "non\u00a0breaking\u2003em\u2009thin\u3000ideographic spaces",
    "MY CARD HAS NOT ARRIVED YET",  # uppercase: the cache key is the lowercased word
    "My Card Has Not Arrived Yet",
    "",  # empty and whitespace-only texts: an all-zero row
    "   ",
]


@pytest.fixture(scope="module")
def fitted(train_frame: pd.DataFrame) -> IntentClassifier:
    """The shipped feature union on ~1,500 real rows; one SVM and no calibration keep the fit to a second."""
    train = train_frame.groupby("category").head(20)
    params = ModelParams(estimator="svm", calibration_folds=0, n_jobs=1)
    return IntentClassifier(params).fit(train.text.tolist(), train.category.tolist())


@pytest.fixture(scope="module")
def texts(test_frame: pd.DataFrame) -> list[str]:
    return test_frame.sample(400, random_state=1).text.tolist()


def fresh(clf: IntentClassifier) -> IntentClassifier:
    """A copy with an empty cache (the cache is not pickled)."""
    return pickle.loads(pickle.dumps(clf))


def assert_same(got: sp.csr_matrix, reference: sp.spmatrix) -> None:
    """Exactly equal, not just close: the fast path does sklearn's arithmetic in sklearn's order."""
    ref = sp.csr_matrix(reference, copy=True)
    ref.sort_indices()
    assert isinstance(got, sp.csr_matrix)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    assert got.has_sorted_indices
    np.testing.assert_array_equal(got.indptr, ref.indptr)
    np.testing.assert_array_equal(got.indices, ref.indices)
    np.testing.assert_array_equal(got.data, ref.data)


def char_part(clf: IntentClassifier) -> classifier_module._CharWbPart:
    parts = [part for part, _ in clf._fast_plan() if isinstance(part, classifier_module._CharWbPart)]
    assert len(parts) == 1, "the shipped char_wb vectoriser must take the cached path"
    return parts[0]


def test_matches_the_feature_union_on_banking77(fitted: IntentClassifier, texts: list[str]) -> None:
    clf = fresh(fitted)
    reference = fitted.features.transform(texts)  # type: ignore[union-attr]
    for _ in range(2):  # the first pass fills the word cache, the second is (almost) all hits
        for i in range(0, 60):
            assert_same(clf.transform(texts[i : i + 1]), reference[i : i + 1])
        for i in range(0, len(texts), 16):
            assert_same(clf.transform(texts[i : i + 16]), reference[i : i + 16])
        assert_same(clf.transform(texts), reference)
    info = char_part(clf).cached_word_counts.cache_info()
    assert info.hits > info.misses > 100, info
    np.testing.assert_array_equal(clf.predict_proba(texts[:50]), fitted.predict_proba(texts[:50]))


def test_edge_cases(fitted: IntentClassifier, texts: list[str]) -> None:
    clf = fresh(fitted)
    union = fitted.features
    assert union is not None
    for text in EDGE_TEXTS:
        for _ in range(2):  # miss, then hit
            assert_same(clf.transform([text]), union.transform([text]))
    mixed = EDGE_TEXTS + texts[:20] + EDGE_TEXTS[::-1]  # the same text twice in one batch, too
    assert_same(clf.transform(mixed), union.transform(mixed))
    assert_same(clf.transform(np.array(EDGE_TEXTS[:5])), union.transform(np.array(EDGE_TEXTS[:5])))
    assert_same(clf.transform(iter(EDGE_TEXTS[:5])), union.transform(EDGE_TEXTS[:5]))  # a one-shot iterable
    raw: list[Any] = [b"my card", "my card"]  # bytes: sklearn's own decoding path
    assert_same(clf.transform(raw), union.transform(raw))
    cached = char_part(clf).cached_word_counts
    assert cached.cache_info().currsize > 0
    for word in ("x" * 300, "supercalifragilisticexpialidocious" * 3):  # over the length cap: never cached
        assert len(word) > classifier_module.WORD_CACHE_MAX_LEN
        before = cached.cache_info()
        clf.transform([word])
        assert cached.cache_info().currsize == before.currsize and cached.cache_info().hits == before.hits


def test_bad_input_raises_like_sklearn(fitted: IntentClassifier) -> None:
    cases: list[list[Any]] = [[], [np.nan], ["ok", None]]
    for bad in cases:
        with pytest.raises((ValueError, AttributeError, TypeError)):
            fitted.features.transform(bad)  # type: ignore[union-attr]
        with pytest.raises((ValueError, AttributeError, TypeError)):
            fitted.transform(bad)
    with pytest.raises(ValueError):
        fitted.transform("one string, not a list")


def test_cache_is_bounded(fitted: IntentClassifier, texts: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(classifier_module, "WORD_CACHE_SIZE", 64)
    clf = fresh(fitted)
    assert_same(clf.transform(texts), fitted.features.transform(texts))  # type: ignore[union-attr]
    assert_same(clf.transform(texts[::-1]), fitted.features.transform(texts[::-1]))  # type: ignore[union-attr]
    info = char_part(clf).cached_word_counts.cache_info()
    assert info.maxsize == 64 and info.currsize == 64 and info.misses > 64


def test_cache_is_not_pickled(fitted: IntentClassifier, texts: list[str]) -> None:
    clf = fresh(fitted)
    cold = pickle.dumps(clf)
    clf.transform(texts)
    assert char_part(clf).cached_word_counts.cache_info().currsize > 100
    warm = pickle.dumps(clf)
    assert len(warm) == len(cold), "the word cache (or the plan holding it) leaked into the pickle"
    clone = pickle.loads(warm)
    assert "_fast" not in clone.__dict__
    assert_same(clone.transform(texts[:30]), clf.transform(texts[:30]))
    assert char_part(clone).cached_word_counts.cache_info().currsize < 400


def test_concurrent_callers_agree(fitted: IntentClassifier, texts: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The service predicts from its batching thread and the event loop at once; a small cache forces
    evictions while other threads read it."""
    monkeypatch.setattr(classifier_module, "WORD_CACHE_SIZE", 32)
    clf = fresh(fitted)
    reference = fitted.features.transform(texts)  # type: ignore[union-attr]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(offset, len(texts), 7):
                assert_same(clf.transform(texts[i : i + 3]), reference[i : i + 3])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_other_vectoriser_options_and_fallbacks(fitted: IntentClassifier, texts: list[str]) -> None:
    """Options the shipped model does not use take either a path that honours them or sklearn's own."""
    corpus = texts[:300]
    union = FeatureUnion(
        [
            ("char", TfidfVectorizer(analyzer="char", ngram_range=(1, 3), norm="l1", dtype=np.float64)),
            ("wb_accents", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 4), strip_accents="unicode")),
            ("wb_case", TfidfVectorizer(analyzer="char_wb", lowercase=False, use_idf=False, norm=None)),
            ("wb_binary", TfidfVectorizer(analyzer="char_wb", binary=True)),
            ("wb_pre", TfidfVectorizer(analyzer="char_wb", preprocessor=lambda s: s.upper())),
            ("stop", TfidfVectorizer(stop_words="english", ngram_range=(1, 2), sublinear_tf=True, max_features=500)),
            ("counts", CountVectorizer()),
        ],
        transformer_weights={"char": 0.5, "wb_case": 2.0},
    ).fit(corpus)
    clf = fresh(fitted)
    clf.features = union  # a replaced union gets a new plan (and cache)
    kinds = {
        name: type(part).__name__ for (name, _), (part, _) in zip(union.transformer_list, clf._fast_plan(), strict=True)
    }
    assert kinds == {
        "char": "_TfidfPart",
        "wb_accents": "_CharWbPart",
        "wb_case": "_CharWbPart",
        "wb_binary": "_OtherPart",
        "wb_pre": "_TfidfPart",
        "stop": "_TfidfPart",
        "counts": "_OtherPart",
    }
    batch = texts[300:340] + EDGE_TEXTS
    for _ in range(2):
        assert_same(clf.transform(batch), union.transform(batch))
        assert_same(clf.transform(batch[-3:-2]), union.transform(batch[-3:-2]))
