"""The shipped model on the whole BANKING77 train split must reach 0.92 accuracy on the test split."""

from __future__ import annotations

import numpy as np
import pytest

from model.classifier import IntentClassifier
from pipelines.validate_data import load_validated


@pytest.mark.slow
def test_full_train_split_reaches_092() -> None:
    train = load_validated("banking77:train")
    test = load_validated("banking77:test")
    clf = IntentClassifier().fit(train.texts, train.labels)
    intents, confidence = clf.predict_top1(test.texts)
    accuracy = float(np.mean(np.array(intents) == np.array(test.labels)))
    assert accuracy >= 0.92, f"accuracy {accuracy:.4f} < 0.92"
    # Calibration: mean confidence within 3 points of accuracy (expected calibration error is in the benchmark).
    assert abs(float(np.mean(confidence)) - accuracy) < 0.03
