"""Serving benchmark: this service vs `mlflow models serve` vs in-process batched predict, in one run.

Same model (the shipped IntentClassifier packaged as the pipeline registers it, trained once and cached
under .esteira/bench), same machine, one worker each; load from a separate process (benchmarks/loadgen.py)
at several concurrencies, one text per request. Then open-loop runs at 50 % and 70 % of this service's best
rate to read the p99 a user would see below saturation. Results go to docs/benchmarks.md (section `serve`)
with ratios against the peers, each point with the server's and the client's CPU and the machine's load.

    python benchmarks/serve.py [--seconds 10] [--concurrency 1,16,64,128,256] [--skip-mlflow] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.loadgen import ServiceProcess, free_port  # noqa: E402
from benchmarks.report import write_section  # noqa: E402

BENCH_DIR = ROOT / ".esteira" / "bench"


def ensure_model(folder: Path = BENCH_DIR) -> Path:
    """The shipped model, packaged as the pipeline registers it; trained once (~35 s), then reused.

    Same classifier (model/classifier.py IntentClassifier with the default ModelParams: SVM + LogReg logit
    average, temperature-calibrated), same training rows (pipelines' validated BANKING77 train split) and
    the same MLflow pyfunc packaging as pipelines/train.py (IntentPyfunc, signature, input example, pinned
    requirements), so all three contenders serve the model the product ships. The folder name carries the
    parameters' and the data's hashes, so a changed model or dataset trains again instead of reusing a
    stale one.
    """
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import infer_signature

    from model.classifier import IntentClassifier, ModelParams
    from model.config import Settings
    from model.pyfunc import IntentPyfunc
    from pipelines.train import _requirements, params_hash
    from pipelines.validate_data import load_validated

    settings = Settings.from_env()
    params = ModelParams()
    data = load_validated("banking77:train", settings=settings)
    key = f"{params_hash(params)[:8]}-{data.dataset_hash.split(':')[-1][:8]}"
    target = folder / f"model-intent-classifier-{key}"
    if (target / "MLmodel").is_file():
        return target
    print(f"training the benchmark model ({len(data.texts)} rows; cached in {target})", flush=True)
    clf = IntentClassifier(params).fit(data.texts, data.labels)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pkl = Path(tmp) / "classifier.pkl"
        pkl.write_bytes(pickle.dumps(clf, protocol=pickle.HIGHEST_PROTOCOL))
        example = pd.DataFrame({"text": data.texts[:3]})
        partial = folder / f"{target.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        mlflow.pyfunc.save_model(
            str(partial),
            python_model=IntentPyfunc(),
            artifacts={"classifier": str(pkl)},
            signature=infer_signature(example, IntentPyfunc._predict_frame(clf, example)),
            input_example=example,
            pip_requirements=_requirements(),
        )
        (partial / "esteira-bench.json").write_text(
            json.dumps({"params": params.as_dict(), "dataset_hash": data.dataset_hash, "fit_s": clf.fit_seconds})
        )
        partial.rename(target)
    return target


def texts_file(folder: Path = BENCH_DIR) -> Path:
    """The BANKING77 test texts, one per line: what the load generator sends, in rotation."""
    import pandas as pd

    from model.config import Settings
    from model.data import banking77_dir

    path = folder / "test-texts.txt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = pd.read_csv(banking77_dir(Settings.from_env()) / "test.csv", dtype=str, keep_default_na=False)
        path.write_text("\n".join(t.replace("\n", " ") for t in frame["text"]))
    return path


def cpu_pressure() -> float | None:
    """Linux PSI: the share of the last 10 s in which some runnable task waited for a CPU (None if absent).

    Why: the 1-minute load average lags; PSI says whether *this* point ran on a contended machine.
    """
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(dict(kv.split("=") for kv in first.split()[1:])["avg10"])
    except (OSError, KeyError, ValueError, IndexError):
        return None


def runqueue_wait_s(pid: int) -> float:
    """Seconds the process's threads have spent runnable but waiting for a CPU (/proc/<pid>/task/*/schedstat).

    Why: on a shared machine this is the direct measure of how long the server could not run; divided by
    a point's duration it says how much of that point's latency was the machine's, not the service's.
    """
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


QUIET = {"psi10": 25.0, "load1": 2.5, "max_wait_s": 30.0}


def wait_quiet() -> dict[str, float | None]:
    """Before a point: wait (bounded) until other jobs leave the CPUs alone; return what the point started on.

    Quiet = CPU pressure (PSI some avg10) at most 25 % or the 1-minute load average at most 2.5. The load
    average also counts this benchmark's own server and client (~1.2), so PSI is the better signal; after
    `max_wait_s` the point runs anyway and its start figures say how busy the machine was.
    """
    start = time.monotonic()
    while time.monotonic() - start < QUIET["max_wait_s"]:
        psi, load1 = cpu_pressure(), os.getloadavg()[0]
        if (psi is not None and psi <= QUIET["psi10"]) or load1 <= QUIET["load1"]:
            break
        time.sleep(2.0)
    return {
        "start_psi10": cpu_pressure(),
        "start_load1": round(os.getloadavg()[0], 2),
        "waited_s": round(time.monotonic() - start, 1),
    }


def load(port: int, concurrency: int, seconds: float, texts: Path, fmt: str = "esteira", rate: float = 0.0,
         path: str = "/predict", server_pid: int | None = None, warmup: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """One load-generator run in its own process; adds the server's CPU use and the machine's load."""
    import psutil

    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "loadgen.py"), "--port", str(port), "--concurrency",
        str(concurrency), "--seconds", str(seconds), "--texts", str(texts), "--format", fmt, "--path", path,
    ]  # fmt: skip
    if rate:
        cmd += ["--rate", str(rate)]
    if warmup:
        cmd += ["--warmup", str(warmup)]
    procs = []
    if server_pid:
        top = psutil.Process(server_pid)
        procs = [top, *top.children(recursive=True)]
    quiet = wait_quiet() if server_pid else {}
    before = sum(sum(p.cpu_times()[:2]) for p in procs)
    waited = runqueue_wait_s(server_pid) if server_pid else 0.0
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    elapsed = time.perf_counter() - start
    result = dict(json.loads(out))
    if procs:
        # Includes the client's connection set-up (~0.1 s), so a slight underestimate of the busy share.
        result["server_cpu"] = round((sum(sum(p.cpu_times()[:2]) for p in procs) - before) / elapsed, 2)
        # ms per second the server was runnable but had no CPU (other processes, including the client).
        result["server_cpu_wait_ms_per_s"] = round(1000 * (runqueue_wait_s(server_pid or 0) - waited) / elapsed)
    result["load1"] = round(os.getloadavg()[0], 2)
    result["cpu_psi10"] = cpu_pressure()  # the last 10 s: this point's own run
    return {**result, **quiet}


def in_process(model_dir: Path, texts: Path, batch: int = 64, seconds: float = 5.0) -> dict[str, Any]:
    """The limit: the classifier's own vectorised predict on batches of `batch`, no HTTP."""
    from model.pyfunc import load_classifier

    clf = load_classifier(str(model_dir))
    rows = texts.read_text().splitlines()
    clf.predict(rows[:batch], 3)
    done, start, i = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        chunk = rows[i : i + batch] or rows[:batch]
        i = (i + batch) % len(rows)
        clf.predict(chunk, 3)
        done += len(chunk)
    elapsed = time.perf_counter() - start
    return {"rows_per_s": round(done / elapsed, 1), "batch": batch, "seconds": round(elapsed, 1)}


class MlflowServe:
    """`mlflow models serve --env-manager local`, with the venv's bin on PATH (it execs uvicorn)."""

    def __init__(self, model_dir: Path, workdir: Path):
        self.port = free_port()
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        mlflow = str(Path(sys.executable).parent / "mlflow")
        self.log = (workdir / "mlflow-serve.log").open("ab")
        self.process = subprocess.Popen(
            [mlflow, "models", "serve", "-m", str(model_dir), "--env-manager", "local", "-h", "127.0.0.1",
             "-p", str(self.port), "-w", "1"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("mlflow models serve exited; see mlflow-serve.log")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError("mlflow models serve not ready")

    def stop(self) -> None:
        import signal

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def rss_mb(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return round(sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20, 1)


def errors_of(v: dict[str, Any]) -> int:
    return int(v["non_200"] + sum(v["errors"].values()))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", default="1,16,64,128,256")
    ap.add_argument("--mlflow-concurrency", default="8,64")
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--repeat", type=int, default=2, help="closed-loop runs per point; the best is kept")
    ap.add_argument("--open-repeat", type=int, default=5, help="open-loop runs per load level; all are reported")
    ap.add_argument("--open-connections", type=int, default=512, help="open loop: connection pool size")
    ap.add_argument(
        "--open-warmup", type=float, default=1.0, help="open loop: seconds of load before latencies are recorded"
    )
    ap.add_argument(
        "--no-recent-max",
        dest="recent_max",
        action="store_false",
        help="skip the extra open-loop runs at 70 %% of a closed-loop rate measured just before each",
    )
    ap.add_argument("--recent-seconds", type=float, default=5.0, help="length of that closed-loop measurement")
    ap.add_argument("--thread-variant", action="store_true", help="also measure ESTEIRA_SERVING_BATCH_THREAD=1")
    ap.add_argument(
        "--no-plain-variant",
        dest="plain_variant",
        action="store_false",
        help="skip the service with its fast path off (ESTEIRA_SERVING_FAST_PATH=0, plain uvicorn)",
    )
    ap.add_argument("--no-write", action="store_true", help="print only; do not touch docs/benchmarks.md")
    ap.add_argument(
        "--from-results", help="write the section from a saved results.json of an earlier run (its own command)"
    )
    args = ap.parse_args(argv)
    if args.from_results:
        saved = json.loads(Path(args.from_results).read_text())
        saved["esteira"] = {int(k): v for k, v in saved["esteira"].items()}
        saved["mlflow"] = {int(k): v for k, v in saved["mlflow"].items()}
        saved["esteira_open"] = {float(k): v for k, v in saved["esteira_open"].items()}
        run_args = argparse.Namespace(**{**vars(args), **saved.get("args", {})})
        body = report(saved, run_args)
        print(body)
        if not args.no_write:
            write_section("serve", body, command=saved.get("command"))
        return
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    load_start = os.getloadavg()
    model_dir = ensure_model()
    texts = texts_file()
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    results: dict[str, Any] = {
        "esteira": {},
        "mlflow": {},
        "variants": {},
        "load_avg_start": [round(x, 2) for x in load_start],
        "psi_start": cpu_pressure(),
        "model": json.loads((model_dir / "esteira-bench.json").read_text()),
        "command": " ".join(["python", "benchmarks/serve.py", *(argv if argv is not None else sys.argv[1:])]),
        "args": {k: getattr(args, k) for k in ("seconds", "repeat", "open_repeat", "open_connections", "open_warmup")},
    }

    # Other jobs share this machine: every closed-loop point runs `--repeat` times, interleaved with the
    # in-process limit, and the best run of each is kept (the least disturbed), with the load it saw.
    svc = ServiceProcess({"ESTEIRA_MODEL_URI": str(model_dir), "ESTEIRA_MODEL_VERSION": "bench"}, work).start()
    try:
        svc.wait_ready()
        pid = svc.process.pid
        load(svc.port, 8, 2, texts)  # warm-up
        for _ in range(args.repeat):
            quiet = wait_quiet()
            ip = {**in_process(model_dir, texts), "load1": round(os.getloadavg()[0], 2), "cpu_psi10": cpu_pressure()}
            ip.update(quiet)
            if ip["rows_per_s"] > results.get("in_process", {}).get("rows_per_s", 0):
                results["in_process"] = ip
            print("in-process", ip, flush=True)
            for c in concurrencies:
                res = load(svc.port, c, args.seconds, texts, server_pid=pid)
                if res["rps"] > results["esteira"].get(c, {}).get("rps", 0):
                    results["esteira"][c] = res
                print("esteira", c, res, flush=True)
        best = max(r["rps"] for r in results["esteira"].values())

        # Open loop: arrivals on a fixed schedule whatever the answers, latency from the scheduled send
        # time, a pool large enough never to cap the rate (Little: rate x latency << pool).
        def open_loop(rate: float) -> dict[str, Any]:
            return load(
                svc.port, args.open_connections, args.seconds, texts, rate=rate, server_pid=pid,
                warmup=args.open_warmup,
            )  # fmt: skip

        results["esteira_open"] = {}
        for share in (0.5, 0.7):
            runs = []
            for _ in range(args.open_repeat):
                r = open_loop(round(share * best))
                runs.append(r)
                print(f"esteira open loop @{share:.0%}", r, flush=True)
            results["esteira_open"][share] = runs
        # The machine's speed drifts minute to minute (docs/benchmarks.md), so 70 % of the *best* run can be
        # more than the server sustains a few minutes later. Reported beside the goal's rows, not instead of
        # them: 70 % of a closed-loop rate measured just before each run, at the best concurrency.
        best_c = max(results["esteira"], key=lambda c: results["esteira"][c]["rps"])
        results["esteira_open_recent"] = []
        for _ in range(args.open_repeat if args.recent_max else 0):
            recent = load(svc.port, best_c, args.recent_seconds, texts, server_pid=pid)
            r = open_loop(round(0.7 * recent["rps"]))
            r["recent_max_rps"] = recent["rps"]
            results["esteira_open_recent"].append(r)
            print("esteira open loop @70% of the max just before", r, flush=True)
        results["esteira_rss_mb"] = rss_mb(pid)
    finally:
        svc.stop()

    # Variants of the same service, closed loop at the best concurrency (best of --repeat runs). The fast
    # path off is plain uvicorn (model/serving/fast_path.py): what runs whenever its guard falls back.
    variants: dict[str, dict[str, str]] = {}
    if args.plain_variant:
        variants[PLAIN_VARIANT] = {"ESTEIRA_SERVING_FAST_PATH": "0"}
    if args.thread_variant:
        variants["predict in a worker thread"] = {"ESTEIRA_SERVING_BATCH_THREAD": "1"}
    best_c = max(results["esteira"], key=lambda c: results["esteira"][c]["rps"])
    for vname, venv in variants.items():
        slug = "-".join(vname.split()[:3])
        svc = ServiceProcess(
            {"ESTEIRA_MODEL_URI": str(model_dir), "ESTEIRA_MODEL_VERSION": "bench", **venv}, work, name=slug
        ).start()
        try:
            svc.wait_ready()
            load(svc.port, 8, 2, texts)
            v: dict[str, Any] = {"closed": {"rps": 0.0}}
            for _ in range(args.repeat):
                wait_quiet()
                res = load(svc.port, best_c, args.seconds, texts, server_pid=svc.process.pid)
                if res["rps"] > v["closed"]["rps"]:
                    v["closed"] = res
            v["open70"] = load(
                svc.port, args.open_connections, args.seconds, texts, rate=round(0.7 * best), server_pid=svc.process.pid
            )
            results["variants"][vname] = v
            print("variant", vname, v, flush=True)
        finally:
            svc.stop()

    if not args.skip_mlflow:
        ml = MlflowServe(model_dir, work)
        try:
            ml.wait_ready()
            load(ml.port, 4, 2, texts, fmt="mlflow", path="/invocations")
            for c in [int(x) for x in args.mlflow_concurrency.split(",")]:
                results["mlflow"][c] = load(
                    ml.port, c, args.seconds, texts, fmt="mlflow", path="/invocations", server_pid=ml.process.pid
                )
                print("mlflow", c, results["mlflow"][c], flush=True)
            results["mlflow_rss_mb"] = rss_mb(ml.process.pid)
        finally:
            ml.stop()
    results["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print("results:", work / "results.json")
    body = report(results, args)
    print(body)
    if not args.no_write:
        write_section("serve", body)


PLAIN_VARIANT = "fast path off (ESTEIRA_SERVING_FAST_PATH=0, plain uvicorn)"


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _machine(v: dict[str, Any]) -> str:
    def pct(x: Any) -> str:
        return "?" if x is None else f"{x:.0f}"

    return f"{v.get('load1', '')} / {pct(v.get('start_psi10'))} → {pct(v.get('cpu_psi10'))} %"


def _row(name: str, conc: str, v: dict[str, Any]) -> str:
    return (
        f"| {name} | {conc} | {v['rps']:.0f} | {v['p50_ms']} | {v['p99_ms']} | {v['max_ms']} | {errors_of(v)} | "
        f"{v.get('server_cpu', '')} | {v.get('server_cpu_wait_ms_per_s', '')} | {v.get('client_cpu', '')} | "
        f"{_machine(v)} |"
    )


def report(r: dict[str, Any], args: argparse.Namespace) -> str:
    est = r["esteira"]
    best_c = max(est, key=lambda c: est[c]["rps"])
    best = est[best_c]["rps"]
    ml_best = max((v["rps"] for v in r["mlflow"].values()), default=0.0)
    inproc = r["in_process"]["rows_per_s"]
    open70 = r["esteira_open"][0.7]
    p99_70 = _median([v["p99_ms"] for v in open70])
    open_runs = [x for runs in r["esteira_open"].values() for x in runs] + r.get("esteira_open_recent", [])
    errors = sum(errors_of(v) for v in [*est.values(), *open_runs])
    m = r["model"]["params"]
    lines = [
        f"Model: the shipped IntentClassifier (model/classifier.py: {m['estimator']}, logit average, "
        "temperature-calibrated; TF-IDF word 1-3 + char_wb 2-5 grams, 77 intents) fitted on the validated "
        "BANKING77 train split and packaged as pipelines/train.py registers it (MLflow pyfunc with signature); "
        "all three contenders load that one directory. One text per request, "
        f"{args.seconds:.0f} s per point, one server worker, load from benchmarks/loadgen.py in its own process "
        "on the same 2 cores (its CPU is the `client CPU` column). Closed loop: best of "
        f"{args.repeat} interleaved runs. Open loop: requests sent on a fixed schedule whatever the answers, "
        f"over {args.open_connections} pre-opened keep-alive connections; latency is measured from the "
        f"*scheduled* send time (queueing included); each run first loads the server for "
        f"{getattr(args, 'open_warmup', 0):g} s without recording latencies (512 client workers and connections "
        "starting at once; their statuses and errors still count), as wrk2 calibrates before measuring; "
        f"{args.open_repeat} runs per level, all shown. Machine: "
        f"load average (1/5/15 min) {r['load_avg_start']} at start, {r['load_avg_end']} at end; CPU pressure "
        f"(PSI some avg10) {r.get('psi_start')} % at start. Last column: the 1-min load average after the point, "
        "and the share of time a runnable task waited for a CPU (PSI some avg10) before the point and over "
        "its last 10 s; each point first waits up to 30 s for PSI ≤ 25 % or load1 ≤ 2.5. `server waited for a "
        "CPU`: from the kernel's scheduler statistics, the time per second the server was ready to run but "
        "another process had its core; at 70 % load a single 100 ms wait becomes ~330 ms of queueing (the "
        "backlog drains at the 30 % spare capacity), so this column explains most of the tail.",
        "",
        "| server | concurrency | req/s | p50 ms | p99 ms | max ms | errors | server CPU (cores) | "
        "server waited for a CPU (ms/s) | client CPU | load1 / CPU PSI start → run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, v in sorted(est.items()):
        lines.append(_row("esteira (this service), closed loop", str(c), v))
    for share, runs in sorted(r["esteira_open"].items()):
        for v in runs:
            lines.append(_row(f"esteira, open loop at {100 * float(share):.0f} % of best ({v['rate']:.0f} req/s)",
                              f"≤{args.open_connections}", v))  # fmt: skip
    for v in r.get("esteira_open_recent", []):
        lines.append(_row(f"esteira, open loop at 70 % of the max measured just before ({v['recent_max_rps']:.0f} "
                          f"→ {v['rate']:.0f} req/s)", f"≤{args.open_connections}", v))  # fmt: skip
    for name, v in r.get("variants", {}).items():
        lines.append(_row(f"variant: {name}, closed loop", str(best_c), v["closed"]))
        lines.append(_row(f"variant: {name}, open loop at 70 % ({v['open70']['rate']:.0f} req/s)",
                          f"≤{args.open_connections}", v["open70"]))  # fmt: skip
    for c, v in sorted(r["mlflow"].items()):
        lines.append(_row("mlflow models serve --env-manager local", str(c), v))
    ip = r["in_process"]
    lines.append(
        f"| in-process batched predict (batch 64, no HTTP) | - | {inproc:.0f} rows/s | | | | | 1 | | | {_machine(ip)} |"
    )
    lines += [
        "",
        f"- Max throughput (best closed loop): {best:.0f} req/s at c={best_c}. "
        + (f"vs mlflow best {ml_best:.0f} req/s: **{best / ml_best:.1f}x** (goal ≥ 25x). " if ml_best else "")
        + f"vs in-process: **{100 * best / inproc:.0f} %** (goal ≥ 40 %).",
        f"- p99 at 70 % of max throughput (open loop, median of {len(open70)} runs: "
        f"{', '.join(str(v['p99_ms']) for v in open70)}): **{p99_70:.1f} ms** (goal ≤ 25 ms); "
        f"errors over all esteira runs: **{errors}** (goal 0).",
        f"- RSS: esteira {r.get('esteira_rss_mb', '?')} MB, mlflow serve {r.get('mlflow_rss_mb', '?')} MB "
        "(process tree).",
    ]
    plain = r.get("variants", {}).get(PLAIN_VARIANT)
    if plain:
        rps = plain["closed"]["rps"]
        lines.append(
            f"- Fast path off (plain uvicorn, what the service runs when its guard falls back): {rps:.0f} req/s "
            f"at c={best_c}"
            + (f", **{rps / ml_best:.1f}x** mlflow (goal ≥ 15x)" if ml_best else "")
            + f"; the fast path is **{best / rps:.2f}x** that."
        )
    recent = r.get("esteira_open_recent", [])
    if recent:
        maxes = ", ".join(f"{v['recent_max_rps']:.0f}" for v in recent)
        lines.append(
            f"- Beside the goal (not instead of it): at 70 % of a closed-loop rate measured just before each run "
            f"({maxes} req/s; the best above was {best:.0f}), "
            f"p99 median of {len(recent)} runs ({', '.join(str(v['p99_ms']) for v in recent)}): "
            f"**{_median([v['p99_ms'] for v in recent]):.1f} ms**. The gap between this and the goal's row is "
            "the machine's drift between the best minute and the measured one."
        )
    lags = [v.get("client_wake_lag_max_ms") for v in open70 if v.get("client_wake_lag_max_ms") is not None]
    if lags:
        lines.append(
            f"- The client's own share of the open-loop tail: at 70 %, it woke for a scheduled request at most "
            f"{max(lags):.1f} ms late (p99 {max(v.get('client_wake_lag_p99_ms', 0) for v in open70):.1f} ms; "
            "uvloop, one process), so the p99 above is the server's and the machine's."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
