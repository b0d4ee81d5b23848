"""Shadow traffic from the serving process: send a copy of answered requests to a candidate.

Why in the serving process: an ALB cannot mirror requests, and the champion is the only component
that holds both the request and its own answer. After the client has its answer, `offer()` puts
the texts and the champion's intents on a bounded queue. Background threads post them to
`ESTEIRA_SHADOW_URL/predict` (header `X-Esteira-Shadow: 1`, so the candidate does not capture them as live
traffic), compare the candidate's intents with the champion's, and print `ShadowRequests` /
`ShadowAgreements` as EMF on [Service, ModelVersion=<candidate version>]. The release workflow
(pipelines/release/actions.py shadow_report) reads those metrics. Copies are best effort: a full queue or a
slow candidate drops copies (`ShadowDropped`, `ShadowErrors`) and never delays a client.

When it copies: ESTEIRA_SHADOW_URL is a fixed internal name for the canary service (Cloud Map in AWS,
the canary service's proxy in localaws), set on every serving task. A probe thread asks
`ESTEIRA_SHADOW_URL/health` every ESTEIRA_SHADOW_PROBE_S and copies only while a process there answers
with role "shadow" (its task definition has ESTEIRA_SERVING_ROLE=shadow, set by the shadow release). So
no redeploy of the stable fleet starts or stops a shadow release, and a canary candidate (role
"serving") gets no copies that would skew the live checks. Settings (model/serving/settings.py):
ESTEIRA_SHADOW_URL (unset = off), ESTEIRA_SHADOW_SAMPLE_RATE, ESTEIRA_SHADOW_TIMEOUT_S,
ESTEIRA_SHADOW_MAX_PENDING, ESTEIRA_SHADOW_PROBE_S; the EMF interval is
ESTEIRA_SERVING_METRICS_INTERVAL_S.
"""

from __future__ import annotations

import json
import queue
import random
import sys
import threading
import time
from typing import Any, TextIO

import httpx

from model.contract import contract
from model.serving.contract import MODEL_VERSION_HEADER, SHADOW_HEADER
from model.serving.settings import ServingSettings

NAMESPACE = contract().metrics_namespace
_M = contract().metrics
_D = contract().dimensions


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
        probe_s: float = 10.0,
        out: TextIO | None = None,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"ESTEIRA_SHADOW_SAMPLE_RATE must be in 0..1, got {sample_rate}")
        self.url = url.rstrip("/")
        self.service = service
        self.sample_rate = sample_rate
        self.timeout_s = timeout_s
        self.flush_s = flush_s
        self.probe_s = probe_s
        self.active = False  # a shadow candidate answered the last probe
        self.out = out or sys.stdout
        self._queue: queue.Queue[tuple[list[str], list[str]] | None] = queue.Queue(maxsize=max_pending)
        self._counts: dict[str, list[int]] = {}  # candidate version -> [rows, agreements]
        self._errors = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @classmethod
    def from_settings(cls, settings: ServingSettings) -> ShadowMirror | None:
        """The mirror a serving process runs: None when ESTEIRA_SHADOW_URL is unset or this process is the shadow."""
        if not settings.shadow_url or settings.role == "shadow":
            return None
        return cls(
            settings.shadow_url,
            settings.service_name,
            sample_rate=settings.shadow_sample_rate,
            timeout_s=settings.shadow_timeout_s,
            max_pending=settings.shadow_max_pending,
            flush_s=settings.metrics_interval_s,
            probe_s=settings.shadow_probe_s,
        )

    def probe(self, client: httpx.Client) -> bool:
        """Is a shadow candidate behind the URL? Any error means no (no canary tasks: no DNS answer)."""
        try:
            resp = client.get(f"{self.url}/health")
            self.active = resp.status_code == 200 and resp.json().get("role") == "shadow"
        except (httpx.HTTPError, ValueError, AttributeError):
            self.active = False
        return self.active

    def _prober(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while True:
                self.probe(client)
                if self._stop.wait(self.probe_s):
                    return

    def offer(self, texts: list[str], intents: list[str]) -> None:
        """Queue a copy (never blocks); called after the client's answer is decided."""
        if not self.active:
            return
        if self.sample_rate < 1.0 and random.random() >= self.sample_rate:
            return
        try:
            self._queue.put_nowait((list(texts), list(intents)))
        except queue.Full:
            with self._lock:
                self.dropped += 1

    def _send(self, client: httpx.Client, texts: list[str], intents: list[str]) -> None:
        try:
            resp = client.post(f"{self.url}/predict", json={"texts": texts}, headers={SHADOW_HEADER.decode(): "1"})
            if resp.status_code != 200:
                raise ValueError(f"status {resp.status_code}")
            theirs = [str(p["intent"]) for p in resp.json()["predictions"]]
            version = resp.headers.get(MODEL_VERSION_HEADER.decode(), "unknown")
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
        self._threads.append(threading.Thread(target=self._prober, daemon=True, name="shadow-probe"))
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
            values = {_M.shadow_requests: rows, _M.shadow_agreements: agreed}
            docs.append(self._doc(ts, version, values))
        if dropped or errors:
            docs.append(self._doc(ts, "unknown", {_M.shadow_dropped: dropped, _M.shadow_errors: errors}))
        return docs

    def _doc(self, ts: int, version: str, values: dict[str, int]) -> dict[str, Any]:
        return {
            "_aws": {
                "Timestamp": ts,
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": [[_D.service, _D.model_version]],
                        "Metrics": [{"Name": k, "Unit": "Count"} for k in values],
                    }
                ],
            },
            _D.service: self.service,
            _D.model_version: version,
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
