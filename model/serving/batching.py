"""Group concurrent requests into one vectorised predict.

Why batch: one predict call on this model has a fixed cost (~0.7 ms: the feature union, the sparse
product's setup) and a small per-row cost (~0.09 ms), so 64 rows cost about as much as 7 single calls.

Why the wait is measured from the oldest queued request, not slept before every batch: requests that
queued behind a running batch have already waited, so under a backlog the next batch runs at once (no
idle CPU while requests wait), while at moderate load a batch gathers up to `max_wait_s` of arrivals.
Without any wait ("continuous" batching, `max_wait_s=0`) batches at moderate load are 1-3 rows, the
fixed cost per batch keeps the server ~100 % busy at 50-70 % of its peak rate, and every scheduling
hiccup turns into queueing; 2 ms of gathering cut the server's CPU at 2,400 req/s by ~15 % in our runs.

Where the predict runs (`in_thread`): inline on the event loop by default. The model is CPU-bound and
holds the GIL for most of a batch (tokenising is Python), so a worker thread cannot run beside the loop
anyway, and the GIL hand-offs (5 ms switch interval) add their own waits; in our interleaved runs neither
was consistently faster on the shared 2-core machine (docs/benchmarks.md shows both), so the simpler one
is the default. Inline, the loop is blocked for one batch (a few ms), and the requests arriving meanwhile
wait in the socket buffers and form the next batch.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Jobs queued this soon after a batch ended were read from the sockets right after it (see _arrival_estimate).
_CARRY_S = 0.002

# The predict function: (texts, top_k) -> one result per text. The batcher is generic over the model.
PredictFn = Callable[[list[str], int], Sequence[Any]]


@dataclass
class _Job:
    texts: list[str]
    top_k: int
    future: asyncio.Future[tuple[Any, list[Any]]]
    queued_at: float = 0.0


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
        max_wait_s: float = 0.002,
        in_thread: bool = False,
    ):
        self._model_ref = model_ref
        self.max_rows = max(1, max_rows)
        self.max_wait_s = max(0.0, max_wait_s)
        self._jobs: collections.deque[_Job] = collections.deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._batch_start = self._batch_end = 0.0  # the last batch's predict, for _arrival_estimate
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="predict") if in_thread else None
        self.stats = BatchStats()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")
            self._task.add_done_callback(self._stopped)

    def _stopped(self, task: asyncio.Task[None]) -> None:
        """If the batcher itself ever fails, fail what is queued (a 500 each) instead of hanging it."""
        if task.cancelled() or task.exception() is None:
            return
        self._closing = True
        while self._jobs:
            job = self._jobs.popleft()
            if not job.future.done():
                job.future.set_exception(RuntimeError(f"the micro-batcher failed: {task.exception()!r}"))

    async def submit(self, texts: list[str], top_k: int) -> tuple[Any, list[Any]]:
        """Queue texts; return (model_tag, results) once their batch has run."""
        if self._closing:
            raise RuntimeError("the batcher is shut down")
        fut: asyncio.Future[tuple[Any, list[Any]]] = asyncio.get_running_loop().create_future()
        self._jobs.append(_Job(texts, top_k, fut, time.perf_counter()))
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
        while True:
            if not self._jobs:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.max_wait_s > 0 and not self._closing:
                # Wait for company until the OLDEST queued request has waited max_wait_s (not a fixed
                # sleep per batch): requests that queued behind a running batch have already aged, so
                # a backlog runs at once, while at moderate load batches gather a few ms of arrivals.
                age = time.perf_counter() - self._arrival_estimate(self._jobs[0])
                if age < self.max_wait_s and sum(len(j.texts) for j in self._jobs) < self.max_rows:
                    await asyncio.sleep(self.max_wait_s - age)
            batch: list[_Job] = []
            rows = 0
            while self._jobs and (not batch or rows + len(self._jobs[0].texts) <= self.max_rows):
                job = self._jobs.popleft()
                batch.append(job)
                rows += len(job.texts)
            self._batch_start = time.perf_counter()
            await self._predict(batch, rows)
            self._batch_end = time.perf_counter()
            # Let the answered handlers (and newly read requests) run before the next batch forms.
            await asyncio.sleep(0)

    def _arrival_estimate(self, job: _Job) -> float:
        """When the job's request most likely arrived.

        An inline batch blocks the loop, so requests that arrived while it ran are read and queued just
        after it ends: their queue time says nothing about how long they have waited. A job queued within
        a couple of milliseconds of a batch's end is credited with arriving when that batch started.
        """
        if self._batch_end <= job.queued_at <= self._batch_end + _CARRY_S:
            return min(job.queued_at, self._batch_start)
        return job.queued_at

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
