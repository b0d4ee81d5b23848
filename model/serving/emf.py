"""CloudWatch Embedded Metric Format: aggregate per interval, print one JSON document per dimension set.

Why aggregate instead of one record per request: at ~1,500 req/s a record per request would cost more
than the prediction and flood the log group; one record per model version (plus one per intent) per
interval carries the same alarms and dashboards. Percentiles are computed here because CloudWatch
cannot derive p99 from pre-aggregated means. Names and dimensions come from contract.yaml (namespace
`Esteira`, dimensions [Service, ModelVersion] rolled up on [Service], per intent [Service, ModelVersion,
Intent]): the alarms Terraform and CDK create read the same names.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from model.contract import contract

NAMESPACE = contract().metrics_namespace
_M = contract().metrics
_D = contract().dimensions


@dataclass
class _Window:
    latencies_ms: list[float] = field(default_factory=list)
    http4xx: int = 0
    http5xx: int = 0
    predictions: Counter[str] = field(default_factory=Counter)
    confidence_sum: float = 0.0
    low_confidence: int = 0
    text_length_sum: int = 0
    rows: int = 0


class Metrics:
    """Per-interval counters keyed by model version; `flush()` writes the EMF documents."""

    def __init__(
        self,
        service: str,
        low_confidence: float = 0.5,
        out: TextIO | None = None,
        dropped_counter: Callable[[], int] | None = None,
    ):
        self.service = service
        self.low_confidence = low_confidence
        self.out = out or sys.stdout
        self._dropped_counter = dropped_counter
        self._dropped_reported = 0
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def set_dropped_counter(self, counter: Callable[[], int]) -> None:
        self._dropped_counter = counter

    def _window(self, version: str) -> _Window:
        win = self._windows.get(version)
        if win is None:
            win = self._windows[version] = _Window()
        return win

    def record_request(self, version: str, status: int, latency_ms: float) -> None:
        with self._lock:
            win = self._window(version)
            win.latencies_ms.append(latency_ms)
            if 400 <= status < 500:
                win.http4xx += 1
            elif status >= 500:
                win.http5xx += 1

    def record_predictions(
        self, version: str, intents: list[str], confidences: list[float], lengths: list[int]
    ) -> None:
        with self._lock:
            win = self._window(version)
            win.predictions.update(intents)
            win.confidence_sum += float(sum(confidences))
            win.low_confidence += sum(1 for c in confidences if c < self.low_confidence)
            win.text_length_sum += sum(lengths)
            win.rows += len(intents)

    def documents(self, timestamp_ms: int | None = None) -> list[dict[str, Any]]:
        """Take the current window and return its EMF documents (empty if nothing happened)."""
        with self._lock:
            windows, self._windows = self._windows, {}
        dropped_total = self._dropped_counter() if self._dropped_counter else 0
        dropped, self._dropped_reported = dropped_total - self._dropped_reported, dropped_total
        if dropped and not windows:
            windows = {"unknown": _Window()}
        ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        docs: list[dict[str, Any]] = []
        for i, (version, win) in enumerate(sorted(windows.items())):
            count = len(win.latencies_ms)
            p50 = p90 = p99 = 0.0
            if count:
                p50, p90, p99 = (float(v) for v in np.percentile(np.asarray(win.latencies_ms), [50, 90, 99]))
            values: dict[str, tuple[float, str]] = {
                _M.request_count: (count, "Count"),
                _M.latency_p50: (round(p50, 3), "Milliseconds"),
                _M.latency_p90: (round(p90, 3), "Milliseconds"),
                _M.latency_p99: (round(p99, 3), "Milliseconds"),
                _M.http_4xx: (win.http4xx, "Count"),
                _M.http_5xx: (win.http5xx, "Count"),
                _M.capture_dropped: (dropped if i == 0 else 0, "Count"),
            }
            if win.rows:
                values[_M.mean_confidence] = (round(win.confidence_sum / win.rows, 6), "None")
                values[_M.low_confidence_rate] = (round(win.low_confidence / win.rows, 6), "None")
                values[_M.mean_text_length] = (round(win.text_length_sum / win.rows, 3), "None")
            # Also roll up on [Service] alone, so alarms need not know which version is live.
            dims = {_D.service: self.service, _D.model_version: version}
            docs.append(self._doc(ts, dims, values, rollup=True))
            for intent, n in sorted(win.predictions.items()):
                docs.append(self._doc(ts, {**dims, _D.intent: intent}, {_M.predictions: (n, "Count")}))
        return docs

    def _doc(
        self, ts: int, dims: dict[str, str], values: dict[str, tuple[float, str]], rollup: bool = False
    ) -> dict[str, Any]:
        return {
            "_aws": {
                "Timestamp": ts,
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": [list(dims), [_D.service]] if rollup else [list(dims)],
                        "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in values.items()],
                    }
                ],
            },
            **dims,
            **{name: value for name, (value, _) in values.items()},
        }

    def flush(self) -> int:
        """Write this interval's documents to stdout, one line each; return how many."""
        docs = self.documents()
        if docs:
            self.out.write("".join(json.dumps(d, separators=(",", ":")) + "\n" for d in docs))
            self.out.flush()
        return len(docs)
