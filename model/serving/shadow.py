"""Shadow traffic from the serving process: send a sampled copy of answered requests to a candidate.

Why in the serving process: an ALB cannot mirror requests, and the champion is the only component
that holds both the request and its own answer. After the client has its answer, `offer()` puts
the texts and the champion's intents on a bounded queue. A background thread posts them to
`SHADOW_URL/predict`, compares the candidate's intents with the champion's, and prints
`ShadowRequests` / `ShadowAgreements` as EMF on [Service, ModelVersion=<candidate version>]. The
release workflow (pipelines/canary.py shadow_report) reads those metrics. Shadow copies are best
effort: a full queue or a slow candidate drops copies (`ShadowDropped`) and never delays a client.

Off unless SHADOW_URL is set. Environment:
- SHADOW_URL: base URL of the candidate (e.g. an internal route to the canary service); unset = off;
- SHADOW_SAMPLE_RATE: share of requests copied, 0..1 (default 1.0);
- SHADOW_TIMEOUT_S: per-copy timeout (default 2.0);
- SHADOW_MAX_PENDING: queue bound (default 1000);
- SHADOW_FLUSH_S: EMF interval (default 60; the serving metrics interval is a good value).

The hook in the app is three lines: build `ShadowMirror.from_env(service_name)` at startup (None
when off), `start()` it, and after a successful predict call `mirror.offer(texts, intents)`.
"""

from __future__ import annotations

import json
import os
import queue
import random
import sys
import threading
import time
from typing import Any, TextIO

import httpx

NAMESPACE = "Esteira"


class ShadowMirror:
    def __init__(
        self,
        url: str,
        service: str,
        *,
        sample_rate: float = 1.0,
        timeout_s: float = 2.0,
        max_pending: int = 1000,
        flush_s: float = 60.0,
        out: TextIO | None = None,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"SHADOW_SAMPLE_RATE must be in 0..1, got {sample_rate}")
        self.url = url.rstrip("/")
        self.service = service
        self.sample_rate = sample_rate
        self.timeout_s = timeout_s
        self.flush_s = flush_s
        self.out = out or sys.stdout
        self._queue: queue.Queue[tuple[list[str], list[str]] | None] = queue.Queue(maxsize=max_pending)
        self._counts: dict[str, list[int]] = {}  # candidate version -> [rows, agreements]
        self._errors = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @classmethod
    def from_env(cls, service: str) -> ShadowMirror | None:
        url = os.environ.get("SHADOW_URL", "").strip()
        if not url:
            return None
        return cls(
            url,
            service,
            sample_rate=float(os.environ.get("SHADOW_SAMPLE_RATE", "1.0")),
            timeout_s=float(os.environ.get("SHADOW_TIMEOUT_S", "2.0")),
            max_pending=int(os.environ.get("SHADOW_MAX_PENDING", "1000")),
            flush_s=float(os.environ.get("SHADOW_FLUSH_S", "60")),
        )

    def offer(self, texts: list[str], intents: list[str]) -> None:
        """Queue a copy (never blocks); called after the client's answer is decided."""
        if self.sample_rate < 1.0 and random.random() >= self.sample_rate:
            return
        try:
            self._queue.put_nowait((list(texts), list(intents)))
        except queue.Full:
            with self._lock:
                self.dropped += 1

    def _send(self, client: httpx.Client, texts: list[str], intents: list[str]) -> None:
        try:
            resp = client.post(f"{self.url}/predict", json={"texts": texts}, headers={"X-Esteira-Shadow": "1"})
            if resp.status_code != 200:
                raise ValueError(f"status {resp.status_code}")
            theirs = [str(p["intent"]) for p in resp.json()["predictions"]]
            version = resp.headers.get("x-model-version", "unknown")
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            with self._lock:
                self._errors += 1
            return
        agree = sum(a == b for a, b in zip(theirs, intents, strict=False))
        with self._lock:
            counts = self._counts.setdefault(version, [0, 0])
            counts[0] += len(intents)
            counts[1] += agree

    def _worker(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                self._send(client, *item)

    def _flusher(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()

    def start(self, workers: int = 2) -> ShadowMirror:
        for i in range(workers):
            self._threads.append(threading.Thread(target=self._worker, daemon=True, name=f"shadow-{i}"))
        self._threads.append(threading.Thread(target=self._flusher, daemon=True, name="shadow-flush"))
        for t in self._threads:
            t.start()
        return self

    def documents(self, timestamp_ms: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            counts, self._counts = self._counts, {}
            dropped, self.dropped = self.dropped, 0
            errors, self._errors = self._errors, 0
        ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        docs = []
        for version, (rows, agreed) in sorted(counts.items()):
            values = {"ShadowRequests": rows, "ShadowAgreements": agreed}
            docs.append(self._doc(ts, version, values))
        if dropped or errors:
            docs.append(self._doc(ts, "unknown", {"ShadowDropped": dropped, "ShadowErrors": errors}))
        return docs

    def _doc(self, ts: int, version: str, values: dict[str, int]) -> dict[str, Any]:
        return {
            "_aws": {
                "Timestamp": ts,
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": [["Service", "ModelVersion"]],
                        "Metrics": [{"Name": k, "Unit": "Count"} for k in values],
                    }
                ],
            },
            "Service": self.service,
            "ModelVersion": version,
            **values,
        }

    def flush(self) -> int:
        docs = self.documents()
        if docs:
            self.out.write("".join(json.dumps(d, separators=(",", ":")) + "\n" for d in docs))
            self.out.flush()
        return len(docs)

    def stop(self, timeout: float = 5.0) -> None:
        for _ in range(len(self._threads)):
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.flush()
