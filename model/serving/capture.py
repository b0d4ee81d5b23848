"""Inference capture: sampled predictions, buffered in memory and written to S3 as JSON lines in batches.

Why a thread: S3 calls block, and the event loop must keep serving while they run (or fail). Why a
bounded buffer: when S3 is down the service keeps answering; records wait and are retried, and once the
buffer is full the oldest are dropped and counted (EMF `CaptureDropped`) instead of exhausting memory.
A failed object keeps its key when retried, so a write that succeeded but timed out is not duplicated.
Customer data: every record's text goes through model/redact.py (ESTEIRA_CAPTURE_REDACTION: redact, hash or
drop) when its object is encoded, on the writer thread, so the request path never pays for it and the
prediction was already made on the original text. Each record says what was applied (`"redaction":
"redact/v1"`), and so does each object's S3 metadata (`x-amz-meta-redaction`).
Layout (contract.yaml `capture`): <prefix>/model_version=<v>/dt=YYYY-MM-DD/hour=HH/<uuid>.jsonl.
"""

from __future__ import annotations

import collections
import json
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from model.contract import contract
from model.redact import Redactor

log = logging.getLogger("esteira.serving.capture")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or len(uri) <= 5:
        raise ValueError(f"ESTEIRA_CAPTURE_S3_URI must look like s3://bucket/prefix, got {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"ESTEIRA_CAPTURE_S3_URI has no bucket: {uri!r}")
    return bucket, prefix.strip("/")


@dataclass
class _Chunk:
    key: str
    body: bytes
    rows: int
    attempts: int = 0


class CaptureWriter:
    """Buffer capture records and write them to S3 from a background thread."""

    def __init__(
        self,
        s3_uri: str,
        sample_rate: float = 1.0,
        flush_s: float = 5.0,
        flush_records: int = 1000,
        max_buffer: int = 50_000,
        retries: int = 5,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        client: Any | None = None,
        redaction: str = "redact",
        redaction_key: str | None = None,
    ):
        self.bucket, self.prefix = parse_s3_uri(s3_uri)
        self.redactor = Redactor(redaction, redaction_key)  # fails here, at startup, on a bad mode or key
        self.sample_rate = sample_rate
        self.flush_s = flush_s
        self.flush_records = flush_records
        self.max_buffer = max_buffer
        self.retries = retries
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=2, read_timeout=10),
            )
        self._s3 = client
        self._records: collections.deque[dict[str, Any]] = collections.deque()
        self._pending: collections.deque[_Chunk] = collections.deque()  # failed objects, retried first
        self._pending_rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.written = 0
        self.objects = 0
        self.failures = 0

    # -- producer side (event loop) ------------------------------------------------------------------
    def add(self, records: list[dict[str, Any]]) -> None:
        """Sample and buffer records; never blocks on S3."""
        if self.sample_rate < 1.0:
            records = [r for r in records if random.random() < self.sample_rate]
        if not records:
            return
        with self._lock:
            self._records.extend(records)
            overflow = len(self._records) + self._pending_rows - self.max_buffer
            if overflow > 0:  # drop the oldest waiting records, count them
                drop = min(overflow, len(self._records))
                for _ in range(drop):
                    self._records.popleft()
                self.dropped += drop
            size = len(self._records)
        if size >= self.flush_records:
            self._wake.set()

    @property
    def buffered(self) -> int:
        with self._lock:
            return len(self._records) + self._pending_rows

    # -- writer side (thread) ------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="capture-writer", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 15.0) -> None:
        """Stop the thread, then flush everything left, retrying until `timeout`; count what still fails."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        deadline = time.monotonic() + timeout
        while self.buffered and time.monotonic() < deadline:
            if not self.flush_once(final=True):
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        left = self.buffered
        if left:
            with self._lock:
                self.dropped += left
                self._records.clear()
                self._pending.clear()
                self._pending_rows = 0
            log.error("capture: %d records could not be written at shutdown", left)
        log.info("capture: closed; %d records in %d objects, %d dropped", self.written, self.objects, self.dropped)

    def _loop(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            self._wake.wait(self.flush_s if backoff == 0 else backoff)
            self._wake.clear()
            if self._stop.is_set():
                return
            ok = self.flush_once()
            backoff = 0.0 if ok else min(30.0, max(0.5, backoff * 2))

    def _chunks(self, records: collections.deque[dict[str, Any]]) -> list[_Chunk]:
        """Group records by partition into new objects (outside the lock: see flush_once)."""
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        apply, label = self.redactor.apply, self.redactor.label
        for rec in records:
            text = rec.get("text")
            rec["text"] = apply(text) if isinstance(text, str) else None
            rec["redaction"] = label
            ts = str(rec.get("ts", ""))
            groups.setdefault((str(rec.get("model_version", "unknown")), ts[:10], ts[11:13]), []).append(rec)
        chunks = []
        for (version, day, hour), recs in groups.items():
            key = f"{contract().capture.partition_key(version, day, hour)}{uuid.uuid4().hex}.jsonl"
            if self.prefix:
                key = f"{self.prefix}/{key}"
            body = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in recs).encode()
            chunks.append(_Chunk(key, body, len(recs)))
        return chunks

    def flush_once(self, final: bool = False) -> bool:
        """Write everything buffered now; return False if any object failed (it stays queued)."""
        # Take the buffer in O(1) under the lock and encode it outside: the event loop's add() shares this
        # lock, and JSON-encoding a few thousand records under it stalled requests for milliseconds.
        with self._lock:
            taken, self._records = self._records, collections.deque()
            self._pending_rows += len(taken)  # still counted against the bound while being encoded
        chunks = self._chunks(taken)
        with self._lock:
            self._pending_rows -= len(taken)
            for chunk in chunks:
                self._pending.append(chunk)
                self._pending_rows += chunk.rows
            work = list(self._pending)
        ok = True
        for chunk in work:
            try:
                self._s3.put_object(
                    Bucket=self.bucket,
                    Key=chunk.key,
                    Body=chunk.body,
                    ContentType="application/x-ndjson",
                    Metadata={"redaction": self.redactor.label},
                )
            except Exception as exc:  # S3 down or throttling: keep serving, keep the object, retry later
                chunk.attempts += 1
                self.failures += 1
                ok = False
                log.warning("capture: put %s failed (attempt %d): %s", chunk.key, chunk.attempts, exc)
                if chunk.attempts > self.retries and not final:
                    # Given up on this object: it becomes drop-eligible so the buffer stays bounded.
                    with self._lock:
                        self._pending.remove(chunk)
                        self._pending_rows -= chunk.rows
                        self.dropped += chunk.rows
                    log.error("capture: dropped %d records after %d attempts", chunk.rows, chunk.attempts)
                break  # S3 is failing: do not hammer it with the rest now
            with self._lock:
                self._pending.remove(chunk)
                self._pending_rows -= chunk.rows
                self.written += chunk.rows
                self.objects += 1
        return ok
