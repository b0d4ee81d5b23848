"""Open-loop traffic at a steady rate against the service's load-balancer URL, every request recorded.

Open loop (requests leave on a schedule, whatever the server does) because a closed loop slows down
when the server does and hides exactly the stalls a model swap could cause. Latency is measured from
the scheduled send time. Each record keeps what the report needs: when, how long, the HTTP status,
the model version that answered, the predicted and the true intent, and which pool it came from.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from demo.scenario import Pool


@dataclass
class Record:
    t: float  # seconds since the generator started (scheduled send time)
    latency_ms: float
    status: int  # HTTP status, 0 for a connection error
    version: str
    predicted: str
    truth: str
    pool: str
    error: str = ""


class Traffic:
    def __init__(self, url: str, rate: float, pool: Pool, *, workers: int = 8, seed: int = 11) -> None:
        self.url = url.rstrip("/")
        self.rate = rate
        self.pool = pool
        self.records: list[Record] = []
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pool_exec = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="traffic")
        self._local = threading.local()
        self._thread = threading.Thread(target=self._schedule, daemon=True, name="traffic")
        self.t0 = 0.0

    def start(self) -> Traffic:
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def switch(self, pool: Pool, rate: float | None = None) -> None:
        with self._lock:
            self.pool = pool
            if rate is not None:
                self.rate = rate

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._pool_exec.shutdown(wait=True)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(base_url=self.url, timeout=30)
        return client

    def _schedule(self) -> None:
        rate, base, n = self.rate, self.t0, 0
        while not self._stop.is_set():
            if self.rate != rate:  # a new rate: the schedule restarts from now
                rate, base, n = self.rate, time.monotonic(), 0
            due = base + n / rate
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            with self._lock:
                text, truth = self.pool.draw(self._rng)
                pool = self.pool.name
            self._pool_exec.submit(self._send, due, text, truth, pool)
            n += 1

    def _send(self, due: float, text: str, truth: str, pool: str) -> None:
        status, version, predicted, error = 0, "", "", ""
        try:
            resp = self._client().post("/predict", json={"text": text})
            status = resp.status_code
            version = resp.headers.get("x-model-version", "")
            if status == 200:
                predicted = resp.json()["intent"]
            else:
                error = resp.text[:200]
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            error = repr(exc)[:200]
        latency = (time.monotonic() - due) * 1000
        self.records.append(Record(due - self.t0, latency, status, version, predicted, truth, pool, error))

    # ---- summaries the live status and the report read
    def window(self, seconds: float) -> list[Record]:
        since = self.now() - seconds
        return [r for r in list(self.records) if r.t >= since]

    def failed(self) -> list[Record]:
        return [r for r in list(self.records) if r.status != 200]

    def summary(self) -> dict[str, Any]:
        records = list(self.records)
        ok = [r for r in records if r.status == 200]
        return {
            "requests": len(records),
            "failed": len(records) - len(ok),
            "rate": self.rate,
            "versions": sorted({r.version for r in ok}),
            "accuracy": sum(r.predicted == r.truth for r in ok) / len(ok) if ok else 0.0,
        }
