"""Group concurrent requests into one vectorised predict.

Why batch: one predict call on this model has a fixed cost (~0.7 ms: the feature union, the sparse
product's setup) and a small per-row cost (~0.09 ms), so 64 rows cost about as much as 7 single calls.

Why no fixed wait once busy ("continuous" batching): requests that arrive while a batch runs have already
waited for it; making them wait again only adds latency and leaves the CPU idle. The batch that follows
takes whatever is queued (up to `max_rows`) at once, so batches grow with load by themselves and stay small
(short) at low load. `max_wait_s` is only spent when the batcher was idle: the first request after a quiet
spell may wait that long for company (0 = never wait; the default).

Where the predict runs (`in_thread`): inline on the event loop by default. The model is CPU-bound and
holds the GIL for most of a batch (tokenising is Python), so a worker thread cannot run beside the loop
anyway; the hop and the GIL hand-offs (every 5 ms switch interval) cost throughput and p99 in our
measurements (docs/serving.md). Inline, the loop is blocked for one batch (a few ms), and the requests
arriving meanwhile wait in the socket buffers and form the next batch.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# The predict function: (texts, top_k) -> one result per text. The batcher is generic over the model.
PredictFn = Callable[[list[str], int], Sequence[Any]]


@dataclass
class _Job:
    texts: list[str]
    top_k: int
    future: asyncio.Future[tuple[Any, list[Any]]]


@dataclass
class BatchStats:
    batches: int = 0
    rows: int = 0
    max_rows_seen: int = 0
    sizes: collections.Counter[int] = field(default_factory=collections.Counter)


class MicroBatcher:
    """Predict queued jobs together: at most `max_rows` rows per batch, no idle wait while busy.

    `model_ref` is called once per batch and returns (model_tag, predict_fn): swapping the model is an
    atomic reference change, and every job of a batch is answered by the same model version.
    """

    def __init__(
        self,
        model_ref: Callable[[], tuple[Any, PredictFn]],
        max_rows: int = 64,
        max_wait_s: float = 0.0,
        in_thread: bool = False,
    ):
        self._model_ref = model_ref
        self.max_rows = max(1, max_rows)
        self.max_wait_s = max(0.0, max_wait_s)
        self._jobs: collections.deque[_Job] = collections.deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="predict") if in_thread else None
        self.stats = BatchStats()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def submit(self, texts: list[str], top_k: int) -> tuple[Any, list[Any]]:
        """Queue texts; return (model_tag, results) once their batch has run."""
        if self._closing:
            raise RuntimeError("the batcher is shut down")
        fut: asyncio.Future[tuple[Any, list[Any]]] = asyncio.get_running_loop().create_future()
        self._jobs.append(_Job(texts, top_k, fut))
        if not self._wakeup.is_set():
            self._wakeup.set()
        return await fut

    async def close(self) -> None:
        """Answer every queued job, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        busy = False  # did a batch just run? then whatever is queued has waited long enough
        while True:
            if not self._jobs:
                if self._closing:
                    return
                busy = False
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if not busy and self.max_wait_s > 0 and not self._closing:
                rows = sum(len(j.texts) for j in self._jobs)
                if rows < self.max_rows:
                    # After a quiet spell: give concurrent requests a bounded moment to join.
                    await asyncio.sleep(self.max_wait_s)
            batch: list[_Job] = []
            rows = 0
            while self._jobs and (not batch or rows + len(self._jobs[0].texts) <= self.max_rows):
                job = self._jobs.popleft()
                batch.append(job)
                rows += len(job.texts)
            await self._predict(batch, rows)
            busy = True
            # Let the answered handlers (and newly read requests) run before the next batch forms.
            await asyncio.sleep(0)

    async def _predict(self, batch: list[_Job], rows: int) -> None:
        texts = [t for job in batch for t in job.texts]
        top_k = max(job.top_k for job in batch)
        try:
            tag, predict = self._model_ref()
            if self._executor is None:
                results = list(predict(texts, top_k))
            else:
                loop = asyncio.get_running_loop()
                results = await loop.run_in_executor(self._executor, lambda: list(predict(texts, top_k)))
            if len(results) != len(texts):
                raise RuntimeError(f"model returned {len(results)} results for {len(texts)} texts")
        except Exception as exc:  # a model failure fails its batch, never the batcher
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        self.stats.batches += 1
        self.stats.rows += rows
        self.stats.max_rows_seen = max(self.stats.max_rows_seen, rows)
        self.stats.sizes[rows] += 1
        start = 0
        for job in batch:
            part = results[start : start + len(job.texts)]
            start += len(job.texts)
            if not job.future.done():  # the client may have gone away
                job.future.set_result((tag, part))


def now_ms() -> float:
    return time.perf_counter() * 1000.0
