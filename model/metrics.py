"""Quality metrics of a classifier on a labelled set: the numbers the gate compares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from model.classifier import IntentClassifier


@dataclass
class Evaluation:
    accuracy: float
    macro_f1: float
    per_intent_f1: dict[str, float]
    mean_confidence: float
    rows: int
    labels: list[str]
    confusion: np.ndarray

    def summary(self) -> dict[str, Any]:
        return {
            "accuracy": round(self.accuracy, 6),
            "macro_f1": round(self.macro_f1, 6),
            "mean_confidence": round(self.mean_confidence, 6),
            "rows": self.rows,
        }


def evaluate_classifier(clf: IntentClassifier, texts: list[str], labels: list[str]) -> Evaluation:
    predicted, confidence = clf.predict_top1(texts)
    label_set = sorted(set(labels) | set(map(str, clf.classes_)))
    per_intent = f1_score(labels, predicted, labels=label_set, average=None, zero_division=0)
    present = sorted(set(labels))
    return Evaluation(
        accuracy=float(accuracy_score(labels, predicted)),
        macro_f1=float(f1_score(labels, predicted, labels=present, average="macro", zero_division=0)),
        per_intent_f1={lbl: float(f) for lbl, f in zip(label_set, per_intent, strict=True) if lbl in present},
        mean_confidence=float(np.mean(confidence)),
        rows=len(texts),
        labels=label_set,
        confusion=confusion_matrix(labels, predicted, labels=label_set),
    )


def confusion_png(evaluation: Evaluation, path: str) -> None:
    """Render the confusion matrix; 77 classes make labels unreadable, so axes show indices + a legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = evaluation.confusion.astype(float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(10, 9), dpi=100)
    im = ax.imshow(norm, cmap="viridis", vmin=0, vmax=1)
    ax.set_xlabel("predicted intent (index)")
    ax.set_ylabel("true intent (index)")
    ax.set_title(f"Confusion (row-normalised), accuracy {evaluation.accuracy:.3f}")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
