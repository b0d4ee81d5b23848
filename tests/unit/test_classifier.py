"""The classifier on a small slice: calibrated probabilities, top-k, explanations, features."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.classifier import IntentClassifier, ModelParams


@pytest.fixture(scope="module")
def fitted(slice_files: dict[str, Path]) -> tuple[IntentClassifier, pd.DataFrame]:
    train = pd.read_csv(slice_files["train"])
    clf = IntentClassifier(ModelParams(n_jobs=1)).fit(train.text.tolist(), train.category.tolist())
    return clf, pd.read_csv(slice_files["test"])


def test_learns_the_slice(fitted: tuple[IntentClassifier, pd.DataFrame]) -> None:
    clf, test = fitted
    intents, conf = clf.predict_top1(test.text.tolist())
    assert np.mean(np.array(intents) == test.category.values) > 0.85
    assert all(0.0 < c <= 1.0 for c in conf)
    assert clf.beta_ != 1.0, "temperature must be fitted, not left at its default"


def test_probabilities_and_top_k(fitted: tuple[IntentClassifier, pd.DataFrame]) -> None:
    clf, test = fitted
    proba = clf.predict_proba(test.text.tolist()[:5])
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    preds = clf.predict(test.text.tolist()[:5], top_k=3)
    for p, row in zip(preds, proba, strict=True):
        assert [i for i, _ in p.top_k][0] == p.intent
        assert [c for _, c in p.top_k] == sorted((c for _, c in p.top_k), reverse=True)
        assert p.confidence == pytest.approx(row.max())


def test_explanation_names_tokens_of_the_text(fitted: tuple[IntentClassifier, pd.DataFrame]) -> None:
    clf, _ = fitted
    text = "my card has not arrived yet"
    exp = clf.explain(text, top_n=5)
    assert exp["intent"] == clf.predict_top1([text])[0][0]
    assert exp["contributions"], "an explanation must name tokens"
    words = set(text.split())
    assert all(any(w in words for w in c["token"].split()) for c in exp["contributions"])
    with pytest.raises(KeyError):
        clf.explain(text, intent="no_such_intent")


def test_global_features_and_pickle(fitted: tuple[IntentClassifier, pd.DataFrame]) -> None:
    clf, test = fitted
    top = clf.global_top_features(5)
    assert set(top) == set(clf.classes_) and all(len(v) == 5 for v in top.values())
    clone = pickle.loads(pickle.dumps(clf))
    assert np.allclose(clone.predict_proba(test.text.tolist()[:3]), clf.predict_proba(test.text.tolist()[:3]))


def test_an_intent_with_fewer_rows_than_folds_keeps_calibration(
    fitted: tuple[IntentClassifier, pd.DataFrame], slice_files: dict[str, Path]
) -> None:
    """A retrain often has a new intent with one or two labelled messages. Calibration used to be
    skipped then (beta 1.0), and half of a healthy model's answers fell below the low-confidence bar:
    a canary rolled the healthy candidate back (CI, 2026-12-03)."""
    clf, test = fitted
    train = pd.read_csv(slice_files["train"])
    rare = sorted(train.category.unique())[:2]
    rows = pd.concat([train[train.category == rare[0]].head(1), train[train.category == rare[1]].head(2)])
    thin = pd.concat([train[~train.category.isin(rare)], rows])
    few = IntentClassifier(ModelParams(n_jobs=1)).fit(thin.text.tolist(), thin.category.tolist())
    assert set(few.classes_) == set(clf.classes_)
    assert few.beta_ != 1.0, "calibration must not be switched off by one rare intent"
    assert few.beta_ == pytest.approx(clf.beta_, rel=0.35)
    texts = test[~test.category.isin(rare)].text.tolist()
    low_full = np.mean(np.asarray(clf.predict_top1(texts)[1]) < 0.5)
    low_few = np.mean(np.asarray(few.predict_top1(texts)[1]) < 0.5)
    assert abs(low_few - low_full) < 0.1, (low_few, low_full)
