"""A small HTTP/1.1 load generator on raw asyncio streams, run in its own process.

Why not httpx or aiohttp: on a 2-core machine the client competes with the server for CPU, and a
general client spends several times more CPU per request than this one, which would understate the
server. Keep-alive connections, one request in flight per connection (no pipelining), a closed loop
(`--concurrency` connections as fast as they get answers) or an open loop (`--rate` requests/s,
latency measured from the scheduled send time, so a stalled server cannot hide its queueing).

Prints one JSON object: requests, ok, statuses, errors by kind, req/s, latency p50/p90/p99/max (ms), and
the client's own CPU use. All connections are opened before the clock starts (like a load balancer's
pool), unless --no-preconnect.
`--record FILE` writes the X-Request-Id of every 200 (used by the shutdown test to check the capture).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np


def _request(path: str, host: str, body: bytes, rid: str, fmt: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-Request-Id: {rid}\r\n\r\n"
    )
    return head.encode() + body


def make_body(text: str, fmt: str) -> bytes:
    if fmt == "mlflow":
        return json.dumps({"dataframe_split": {"columns": ["text"], "data": [[text]]}}).encode()
    return json.dumps({"text": text}).encode()


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.sent_at: list[float] = []  # scheduled send time of each answered request, s since t0
        # Open loop: how late the client itself woke for a request it had slept for (ms). This is the
        # client's own share of the latencies (its event loop on a shared core), not the server's.
        self.wake_lags: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.ok_ids: list[str] = []


async def _worker(
    args: argparse.Namespace,
    bodies: list[bytes],
    counter: itertools.count[int],
    stats: Stats,
    t0: float,
    end: float,
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None,
) -> None:
    reader, writer = conn if conn is not None else (None, None)
    prefix = uuid.uuid4().hex[:8]
    while True:
        i = next(counter)
        if args.rate:
            scheduled = t0 + i / args.rate
            if scheduled >= end:
                break
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
                stats.wake_lags.append((time.perf_counter() - scheduled) * 1000.0)
        else:
            scheduled = time.perf_counter()
            if scheduled >= end:
                break
        rid = f"{prefix}-{i}"
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(args.host, args.port), 5)
            assert reader is not None and writer is not None
            writer.write(_request(args.path, args.host, bodies[i % len(bodies)], rid, args.format))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), args.timeout)
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            length, close = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip())
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            await asyncio.wait_for(reader.readexactly(length), args.timeout)
        except (ConnectionRefusedError, OSError) as exc:
            kind = "refused" if isinstance(exc, ConnectionRefusedError) else f"os:{type(exc).__name__}"
            stats.errors[kind] += 1
            writer = _close(writer)  # type: ignore[func-returns-value]
            if args.stop_on_refused and isinstance(exc, ConnectionRefusedError):
                break
            await asyncio.sleep(0.05)
            continue
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            # The server closed the connection without answering: the request was not accepted.
            stats.errors["closed_before_response" if not getattr(exc, "partial", b"") else "truncated"] += 1
            writer = _close(writer)  # type: ignore[func-returns-value]
            continue
        except TimeoutError:
            stats.errors["timeout"] += 1
            writer = _close(writer)  # type: ignore[func-returns-value]
            continue
        if scheduled - t0 >= args.warmup:  # warm-up requests count (statuses, errors, rate), not their latency
            stats.latencies.append((time.perf_counter() - scheduled) * 1000.0)
            stats.sent_at.append(scheduled - t0)
        stats.statuses[status] += 1
        if status == 200 and args.record:
            stats.ok_ids.append(rid)
        if close:
            writer = _close(writer)  # type: ignore[func-returns-value]
    _close(writer)


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()
    return None


async def _connect(
    args: argparse.Namespace,
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]:
    """Open every keep-alive connection before the clock starts, a few at a time.

    Why: a load balancer holds its connections to a target open; opening hundreds at t=0 measures a SYN and
    accept storm (seconds of tail latency from connection setup), not the service.
    """
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = []
    for start in range(0, args.concurrency, 32):
        n = min(32, args.concurrency - start)
        opened = await asyncio.gather(
            *(asyncio.wait_for(asyncio.open_connection(args.host, args.port), 10) for _ in range(n)),
            return_exceptions=True,
        )
        conns += [c if isinstance(c, tuple) else None for c in opened]
    return conns


async def run(args: argparse.Namespace) -> dict[str, Any]:
    texts = [line for line in Path(args.texts).read_text().splitlines() if line.strip()] if args.texts else []
    texts = texts or ["I still have not received my new card"]
    bodies = [make_body(t, args.format) for t in texts]
    stats = Stats()
    counter = itertools.count()
    conns = await _connect(args) if args.preconnect else [None] * args.concurrency
    cpu0 = time.process_time()
    t0, t0_wall = time.perf_counter(), time.time()
    end = t0 + args.warmup + args.seconds
    await asyncio.gather(*(_worker(args, bodies, counter, stats, t0, end, conn) for conn in conns))
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    lat = np.asarray(stats.latencies) if stats.latencies else np.zeros(1)
    ok = stats.statuses.get(200, 0)
    result = {
        "concurrency": args.concurrency,
        "rate": args.rate,
        "started_at": round(t0_wall, 3),  # wall clock of t0, to line the latency log up with other traces
        "warmup_s": args.warmup,
        "seconds": round(elapsed, 2),
        "requests": int(sum(stats.statuses.values())),
        "ok": ok,
        "rps": round(ok / elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "errors": dict(stats.errors),
        "non_200": int(sum(v for k, v in stats.statuses.items() if k != 200)),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p90_ms": round(float(np.percentile(lat, 90)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "max_ms": round(float(lat.max()), 2),
        # The client's own CPU (share of one core): it runs on the same machine as the server.
        "client_cpu": round(cpu / elapsed, 2),
    }
    if stats.wake_lags:
        result["client_wake_lag_p99_ms"] = round(float(np.percentile(stats.wake_lags, 99)), 2)
        result["client_wake_lag_max_ms"] = round(float(max(stats.wake_lags)), 2)
    if args.latency_log:
        # (scheduled send time in s since start, latency in ms) per answered request: soak.py uses it to
        # compare the seconds around a model swap with the rest of the run.
        np.save(args.latency_log, np.column_stack([np.asarray(stats.sent_at), np.asarray(stats.latencies)]))
    if args.record:
        Path(args.record).write_text("\n".join(stats.ok_ids))
    return result


# -- processes under test (shared by benchmarks/serve.py, benchmarks/soak.py and tests/serving) -----------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcess:
    """`python -m model.serving` as a child process, with stdout (EMF) and stderr (logs) in files."""

    def __init__(self, env: dict[str, str], workdir: Path, port: int | None = None, name: str = "serving"):
        import os

        self.port = port or free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        from model.serving.settings import ServingSettings

        # The service's settings under their current names: a caller's deprecated ones (MODEL_URI, SERVING_*,
        # ...) are renamed, so the process reads one name per setting and logs no deprecation warning.
        self.env = {
            **os.environ,
            "ESTEIRA_SERVING_HOST": "127.0.0.1",
            "ESTEIRA_SERVING_PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",
            **ServingSettings.renamed(env),
        }
        self.process: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        import subprocess

        root = Path(__file__).resolve().parent.parent
        self.process = subprocess.Popen(
            [sys.executable, "-m", "model.serving"],
            cwd=root,
            env=self.env,
            stdout=self.stdout_path.open("ab"),
            stderr=self.stderr_path.open("ab"),
        )
        return self

    def wait_ready(self, timeout: float = 120.0, expect: int = 200) -> dict[str, Any]:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"service exited with {self.process.returncode}: {self.stderr_path.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/ready", timeout=2) as resp:
                    last = (resp.status, json.loads(resp.read()))
            except urllib.error.HTTPError as err:
                last = (err.code, json.loads(err.read() or b"{}"))
            except OSError:
                last = None
            if last is not None and last[0] == expect and (expect == 200 or last[1].get("status") == "failed"):
                return dict(last[1])
            time.sleep(0.2)
        raise TimeoutError(f"service not ready after {timeout}s (last: {last}); {self.stderr_path.read_text()[-3000:]}")

    def stop(self, timeout: float = 30.0) -> int | None:
        import signal
        import subprocess

        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return int(self.process.wait(timeout))
        except subprocess.TimeoutExpired:
            self.process.kill()
            return int(self.process.wait(5))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/predict")
    ap.add_argument("--format", choices=["esteira", "mlflow"], default="esteira")
    ap.add_argument("--texts", help="file with one text per line")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rate", type=float, default=0.0, help="open loop at this many req/s (0 = closed loop)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument(
        "--warmup",
        type=float,
        default=0.0,
        help="run this many seconds first whose latencies are not recorded (their statuses and errors are)",
    )
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument(
        "--no-preconnect", dest="preconnect", action="store_false", help="connect lazily, after the clock starts"
    )
    ap.add_argument("--record", help="write the request ids answered 200 here")
    ap.add_argument("--latency-log", help="write an .npy of (send time s, latency ms) per answered request")
    ap.add_argument("--stop-on-refused", action="store_true", help="a refused connection ends that worker")
    args = ap.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if os.environ.get("LOADGEN_GC", "tuned") == "tuned":
        # The client's own GC pauses would show up as server latency: collect young objects rarely.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 1000)
    try:  # the client's event loop is part of the measurement: the faster one (uvicorn[standard] has it)
        import uvloop

        result = uvloop.run(run(args))
    except ImportError:
        result = asyncio.run(run(args))
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
