"""Group concurrent requests into one vectorised predict.

Why batch: one predict call on this model has a fixed cost (~0.7 ms: the feature union, the sparse
product's setup) and a small per-row cost (~0.09 ms), so 64 rows cost about as much as 7 single calls.

When to wait for company: only when the batcher was idle. A request that finds the batcher idle waits
up to `max_wait_s` (from its arrival) for others to join it, which at light load turns many one-row
calls into a few bigger ones and saves CPU. While the server is busy it never waits: the requests that
arrived during a batch (read from the sockets right after it, since an inline batch blocks the loop)
form the next batch at once, so under load batches grow with the backlog and a backlog drains at the
model's batched speed. An earlier policy judged "busy" by timestamps (a request queued within 2 ms of the
last batch's end was credited with the batch's start); whenever answering a big batch took longer than
that, a backlogged server slept 2 ms per batch, and at 70 % of peak a burst could stretch into a second
of 100 ms latencies (docs/benchmarks.md, serve section). With `max_wait_s=0` no request ever waits
("continuous" batching: 1-3-row batches at moderate load, more CPU per request).

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
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("esteira.serving")

# Loop turns after a batch before deciding the server is idle: answers out, sockets read, new jobs queued.
_TURNS_AFTER_BATCH = 3

# The predict function: (texts, top_k) -> one result per text. The batcher is generic over the model.
PredictFn = Callable[[list[str], int], Sequence[Any]]
# A job's answer: done(model_tag, results, None) once its batch has run, or done(None, None, error).
Done = Callable[[Any, "list[Any] | None", "BaseException | None"], None]


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new work."""


@dataclass(slots=True)
class _Job:
    texts: list[str]
    top_k: int
    done: Done
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
    Two ways in: `submit` (await the answer) and `submit_nowait` (a callback gets it, called on the
    event loop when the batch has run; the HTTP fast path uses it, so a request costs no task and no
    future). `on_batch(model_tag, texts, results)` runs once per successful batch (the service counts its
    predictions there: one metrics update per batch instead of one per request); if it raises, the
    error is logged and the batch is answered anyway.
    """

    def __init__(
        self,
        model_ref: Callable[[], tuple[Any, PredictFn]],
        max_rows: int = 64,
        max_wait_s: float = 0.002,
        in_thread: bool = False,
        on_batch: Callable[[Any, list[str], list[Any]], None] | None = None,
    ):
        self._model_ref = model_ref
        self._on_batch = on_batch
        self.max_rows = max(1, max_rows)
        self.max_wait_s = max(0.0, max_wait_s)
        self._jobs: collections.deque[_Job] = collections.deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failed: RuntimeError | None = None
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
        self._failed = RuntimeError(f"the micro-batcher failed: {task.exception()!r}")
        while self._jobs:
            _answer(self._jobs.popleft(), None, None, self._failed)

    def submit_nowait(self, texts: list[str], top_k: int, done: Done) -> None:
        """Queue texts; `done` is called with the answer once their batch has run (see the class doc)."""
        if self._failed is not None:
            raise self._failed  # a crash is a server error (500), not a shutdown (503)
        if self._closing:
            raise BatcherClosed("the batcher is shut down")
        self._jobs.append(_Job(texts, top_k, done, time.perf_counter()))
        if not self._wakeup.is_set():
            self._wakeup.set()

    async def submit(self, texts: list[str], top_k: int) -> tuple[Any, list[Any]]:
        """Queue texts; return (model_tag, results) once their batch has run."""
        fut: asyncio.Future[tuple[Any, list[Any]]] = asyncio.get_running_loop().create_future()

        def done(tag: Any, results: list[Any] | None, error: BaseException | None) -> None:
            if fut.done():  # the awaiting request was cancelled (its client left)
                return
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result((tag, results or []))

        self.submit_nowait(texts, top_k, done)
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
                # The batcher was idle: gather company until the first request has waited max_wait_s.
                await self._gather()
                continue
            batch: list[_Job] = []
            rows = 0
            while self._jobs and (not batch or rows + len(self._jobs[0].texts) <= self.max_rows):
                job = self._jobs.popleft()
                batch.append(job)
                rows += len(job.texts)
            await self._predict(batch, rows)
            # A few loop turns: the answers are out, the requests that arrived while the batch blocked the
            # loop are read from the sockets and queued (at once on the protocol's fast path; on the ASGI
            # path their tasks need a turn or two to run). If any did, the next batch runs at once (a busy
            # server batches back to back); if none, the batcher goes idle and the next request starts a
            # gathering wait.
            for _ in range(_TURNS_AFTER_BATCH):
                await asyncio.sleep(0)

    async def _gather(self) -> None:
        """Wait (at most max_wait_s from the first queued request) for a batch's worth of company."""
        if self.max_wait_s <= 0 or self._closing or not self._jobs:
            return
        deadline = self._jobs[0].queued_at + self.max_wait_s
        delay = deadline - time.perf_counter()
        if delay > 0 and sum(len(j.texts) for j in self._jobs) < self.max_rows:
            await asyncio.sleep(delay)

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
                _answer(job, None, None, exc)
            return
        self.stats.batches += 1
        self.stats.rows += rows
        self.stats.max_rows_seen = max(self.stats.max_rows_seen, rows)
        self.stats.sizes[rows] += 1
        if self._on_batch is not None:
            try:
                self._on_batch(tag, texts, results)
            except Exception:  # bookkeeping must never fail the requests it describes
                log.exception("on_batch failed")
        start = 0
        for job in batch:
            part = results[start : start + len(job.texts)]
            start += len(job.texts)
            _answer(job, tag, part, None)


def _answer(job: _Job, tag: Any, results: list[Any] | None, error: BaseException | None) -> None:
    """Hand a job its answer; a callback that raises is logged and cannot stop the other answers."""
    try:
        job.done(tag, results, error)
    except Exception:
        log.exception("answering a batched request failed")


def now_ms() -> float:
    return time.perf_counter() * 1000.0
