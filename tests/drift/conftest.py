"""Drift fixtures: one fast classifier on the full BANKING77 train split and its held-out predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from model.classifier import IntentClassifier, ModelParams
from model.profile import (
    HASH_BUCKETS,
    Profile,
    RequestFeatures,
    bucket,
    profile_from_features,
    request_features,
    token_log_probs,
    tokens,
    word_vocabulary,
)


@dataclass
class HeldOut:
    """Test-split texts with the model's predictions, and what a profile needs."""

    texts: list[str]
    labels: list[str]
    intents: list[str]
    confidence: np.ndarray
    vocab: frozenset[str]
    log_p: np.ndarray
    train_counts: list[int]
    classes: list[str]

    def __post_init__(self) -> None:
        # Per-request features once (they do not depend on the split); windows then slice arrays.
        self.all = request_features(self.texts, self.intents, self.confidence, self.vocab, self.log_p)
        rows = [np.bincount([bucket(t) for t in tokens(x)], minlength=HASH_BUCKETS) for x in self.texts]
        self.buckets = sp.csr_matrix(np.vstack(rows))

    def features(self, idx: np.ndarray) -> RequestFeatures:
        a = self.all
        return RequestFeatures(
            intents=[a.intents[i] for i in idx],
            confidence=a.confidence[idx],
            oov=a.oov[idx],
            length=a.length[idx],
            typicality=a.typicality[idx],
            bucket_counts=np.asarray(self.buckets[idx].sum(axis=0)).ravel().astype(np.int64),
        )

    def profile(self, idx: np.ndarray) -> Profile:
        return profile_from_features(
            self.features(idx),
            model_version="test",
            classes=self.classes,
            vocabulary=self.vocab,
            train_bucket_counts=self.train_counts,
        )


@pytest.fixture(scope="session")
def fast_classifier(train_frame: pd.DataFrame) -> IntentClassifier:
    """All 77 intents, smaller n-grams and no calibration folds: ~6 s instead of ~40 s, same kind of model."""
    params = ModelParams(estimator="svm", calibration_folds=0, word_ngram_max=2, char_ngram_max=4, n_jobs=1)
    return IntentClassifier(params).fit(train_frame["text"].tolist(), train_frame["category"].tolist())


@pytest.fixture(scope="session")
def held_out(fast_classifier: IntentClassifier, train_frame: pd.DataFrame, test_frame: pd.DataFrame) -> HeldOut:
    texts = test_frame["text"].tolist()
    intents, conf = fast_classifier.predict_top1(texts)
    log_p, counts = token_log_probs(train_frame["text"].tolist())
    return HeldOut(
        texts,
        test_frame["category"].tolist(),
        intents,
        np.asarray(conf),
        word_vocabulary(fast_classifier),
        log_p,
        counts,
        [str(c) for c in fast_classifier.classes_],
    )
