"""Training benchmark: accuracy, macro-F1, fit time, batched throughput and one-row latency.

Compares the shipped model with the baseline named in issue 2 (TF-IDF word 1-2 + char_wb 2-5 grams,
LinearSVC C=0.5), both fitted on the BANKING77 train split only and scored on the test split, in the
same run on the same machine.

    .venv/bin/python -m benchmarks.train         # writes the "train" section of docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline, make_union
from sklearn.svm import LinearSVC

from benchmarks.report import write_section
from model.classifier import IntentClassifier, ModelParams
from pipelines.validate_data import load_validated


def _latency_ms(predict: Callable[[list[str]], object], texts: list[str], n: int = 300) -> tuple[float, float]:
    samples = []
    for text in texts[:n]:
        t0 = time.perf_counter()
        predict([text])
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), float(np.percentile(samples, 99))


def _rows_per_s(predict: Callable[[list[str]], object], texts: list[str], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict(texts)
        best = min(best, time.perf_counter() - t0)
    return len(texts) / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    train = load_validated("banking77:train")
    test = load_validated("banking77:test")
    rows = []

    t0 = time.perf_counter()
    baseline = make_pipeline(
        make_union(TfidfVectorizer(ngram_range=(1, 2)), TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5))),
        LinearSVC(C=0.5),
    ).fit(train.texts, train.labels)
    base_fit = time.perf_counter() - t0
    pred = baseline.predict(test.texts)
    rows.append(
        (
            "baseline: TF-IDF + LinearSVC (issue 2)",
            accuracy_score(test.labels, pred),
            f1_score(test.labels, pred, average="macro"),
            base_fit,
            _rows_per_s(baseline.predict, test.texts),
            *_latency_ms(baseline.predict, test.texts),
            "none",
        )
    )

    clf = IntentClassifier(ModelParams()).fit(train.texts, train.labels)
    intents, _ = clf.predict_top1(test.texts)
    rows.append(
        (
            "esteira: SVM+LR logit average, temperature-calibrated",
            accuracy_score(test.labels, intents),
            f1_score(test.labels, intents, average="macro"),
            clf.fit_seconds,
            _rows_per_s(clf.predict_proba, test.texts),
            *_latency_ms(clf.predict_proba, test.texts),
            f"softmax temperature 1/{clf.beta_:.2f}, fitted on a held-out fold (1 of 3), alongside the full fit",
        )
    )

    lines = [
        f"BANKING77: fitted on the train split ({len(train.texts)} rows after dropping "
        f"{train.dropped_duplicates} exact duplicates), scored on the test split ({len(test.texts)} rows).",
        "",
        "| model | accuracy | macro-F1 | fit s (incl. calibration) | batched rows/s "
        "| one-row p50 ms | one-row p99 ms | calibration |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, acc, f1, fit, rps, p50, p99, cal in rows:
        lines.append(f"| {name} | {acc:.4f} | {f1:.4f} | {fit:.1f} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {cal} |")
    ratio = rows[1][1] - rows[0][1]
    lines += [
        "",
        f"Accuracy gain over the baseline: {ratio * 100:+.2f} points; fit time ratio "
        f"{rows[1][3] / rows[0][3]:.1f}x. Goal (issue 2): accuracy >= 0.92 with fit <= 60 s.",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("train", body, "make benchmark  (.venv/bin/python -m benchmarks.train)")


if __name__ == "__main__":
    main()
