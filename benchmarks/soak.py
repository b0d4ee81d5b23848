"""Soak: steady load on one service process for a long time, with a model swap in the middle.

Reports errors (any non-200 or transport error) and RSS growth of the service process between the end of
warm-up and the end of the run (goals: 0 errors, < 10 % growth). The swap is SIGHUP: the service
re-resolves ESTEIRA_MODEL_URI, loads the model beside the current one and swaps it atomically.

    python benchmarks/soak.py [--seconds 600] [--concurrency 16] [--rate 0] [--model-uri URI] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.loadgen import ServiceProcess  # noqa: E402
from benchmarks.report import write_section  # noqa: E402
from benchmarks.serve import ensure_model, texts_file  # noqa: E402


def swap_window(log: np.ndarray, swap: dict[str, Any]) -> dict[str, Any]:
    """Latency in the seconds around the model swap vs the rest of the run.

    The window runs from 2 s before the SIGHUP to 5 s after the reload finished (generous: the load
    generator's clock starts a fraction of a second after ours). `log` rows: (send time s, latency ms).
    """
    if "at_s" not in swap or not len(log):
        return {}
    start = swap["at_s"] - 2.0
    end = swap["at_s"] + float(swap.get("reload_s") or 0.0) + 5.0
    inside = (log[:, 0] >= start) & (log[:, 0] < end)
    out: dict[str, Any] = {"window_s": [round(start, 1), round(end, 1)]}
    for name, mask in (("during_swap", inside), ("rest", ~inside)):
        lat = log[mask, 1]
        if len(lat):
            out[name] = {
                "requests": len(lat),
                "p50_ms": round(float(np.percentile(lat, 50)), 2),
                "p99_ms": round(float(np.percentile(lat, 99)), 2),
                "max_ms": round(float(lat.max()), 2),
            }
    return out


def soak(seconds: float, concurrency: int, rate: float, model_uri: str, env: dict[str, str]) -> dict[str, Any]:
    import psutil

    work = Path(tempfile.mkdtemp(prefix="soak-"))
    texts = texts_file()
    svc = ServiceProcess({"ESTEIRA_MODEL_URI": model_uri, **env}, work).start()
    svc.wait_ready()
    proc = psutil.Process(svc.process.pid)
    latency_log = work / "latencies.npy"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "loadgen.py"), "--port", str(svc.port), "--seconds",
           str(seconds), "--concurrency", str(concurrency), "--texts", str(texts),
           "--latency-log", str(latency_log)]  # fmt: skip
    if rate:
        cmd += ["--rate", str(rate)]
    start = time.monotonic()
    load = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    samples: list[tuple[float, float]] = []
    warm_at = max(5.0, 0.1 * seconds)
    swap_at = 0.5 * seconds
    swapped: dict[str, Any] = {}
    try:
        while load.poll() is None:
            t = time.monotonic() - start
            samples.append((round(t, 1), proc.memory_info().rss / 2**20))
            if not swapped and t >= swap_at:
                svc.process.send_signal(signal.SIGHUP)
                swapped = {"at_s": round(t, 1)}
            time.sleep(1.0)
        out, _ = load.communicate()
        with urllib.request.urlopen(f"{svc.url}/ready", timeout=5) as r:
            swapped["ready_after"] = json.loads(r.read())
        logs = [json.loads(x) for x in svc.stderr_path.read_text().splitlines() if x.startswith("{")]
        swaps = [rec for rec in logs if rec.get("message") == "model swapped"]
        swapped["swap_logged"] = bool(swaps)
        if swaps:
            swapped["reload_s"] = swaps[0].get("seconds")
    finally:
        code = svc.stop()
    result = json.loads(out)
    swapped.update(swap_window(np.load(latency_log), swapped))
    warm = [rss for t, rss in samples if t >= warm_at]
    rss_warm, rss_end = (warm[0], warm[-1]) if warm else (samples[0][1], samples[-1][1])
    return {
        "seconds": seconds,
        "concurrency": concurrency,
        "rate": rate,
        "load": result,
        "errors": result["non_200"] + sum(result["errors"].values()),
        "rss_warm_mb": round(rss_warm, 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_max_mb": round(max(r for _, r in samples), 1),
        "rss_growth_pct": round(100 * (rss_end - rss_warm) / rss_warm, 2),
        "swap": swapped,
        "exit_code": code,
        "workdir": str(work),
    }


def swap_lines(swap: dict[str, Any]) -> list[str]:
    if "during_swap" not in swap:
        return []
    lines = [
        f"The swap: SIGHUP at {swap['at_s']} s; loading, self-test and swap took {swap.get('reload_s')} s in a "
        f"worker thread while the old model answered. Latency in the window {swap['window_s']} s vs the rest:",
        "",
        "| part of the run | requests | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in (("during_swap", "around the swap"), ("rest", "the rest")):
        v = swap.get(name)
        if v:
            lines.append(f"| {label} | {v['requests']} | {v['p50_ms']} | {v['p99_ms']} | {v['max_ms']} |")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rate", type=float, default=0.0, help="open-loop req/s (0 = closed loop)")
    ap.add_argument("--model-uri", default="", help="default: the cached full BANKING77 benchmark model")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    load_start = [round(x, 2) for x in os.getloadavg()]
    model_uri = args.model_uri or str(ensure_model())
    r = soak(args.seconds, args.concurrency, args.rate, model_uri, {"ESTEIRA_MODEL_VERSION": "soak"})
    print(json.dumps(r))
    if args.no_write:
        return
    load = r["load"]
    body = "\n".join(
        [
            f"One service process, full BANKING77 model, {args.seconds:.0f} s of load from benchmarks/loadgen.py "
            f"(concurrency {args.concurrency}{f', {args.rate:.0f} req/s open loop' if args.rate else ', closed loop'}"
            f"), a SIGHUP model reload at {r['swap'].get('at_s')} s. Load average at start {load_start}, "
            f"at end {[round(x, 2) for x in os.getloadavg()]}.",
            "",
            "| requests | req/s | p50 ms | p99 ms | max ms | errors | RSS after warm-up | RSS at end | growth |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {load['requests']} | {load['rps']:.0f} | {load['p50_ms']} | {load['p99_ms']} | {load['max_ms']} | "
            f"{r['errors']} | {r['rss_warm_mb']} MB | {r['rss_end_mb']} MB | {r['rss_growth_pct']} % |",
            "",
            *swap_lines(r["swap"]),
            f"Goals: 0 errors (**{r['errors']}**), RSS growth < 10 % (**{r['rss_growth_pct']} %**); "
            f"swap logged: {r['swap'].get('swap_logged')}; service exit code after SIGTERM: {r['exit_code']}.",
        ]
    )
    write_section("soak", body)


if __name__ == "__main__":
    main()
