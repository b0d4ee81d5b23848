"""Image benchmark: size of every image, and how fast the serving image becomes ready, in one run.

    python -m benchmarks.images [--no-write]

Each image is built (or reused) by oci.build; its size is what `podman image inspect` reports. The serving
image is started as its task definition runs it (read-only root, /tmp volume, own network namespace,
oci.run) with the benchmark model mounted (benchmarks/serve.py ensure_model), and timed from start to its
first 200 on /ready; the peer is the same service and model started as a local process (the way the
embedded ECS ran tasks before images existed). Median of --runs starts each. The Lambda image's cold
start (container start -> first invocation answered through the runtime interface) is timed against
a second invocation of the same container (warm). Results: docs/benchmarks.md, section `images`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.loadgen import ServiceProcess, free_port
from benchmarks.report import write_section
from benchmarks.serve import ensure_model
from oci import build, run


def wait_ready(url: str, timeout: float = 180.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s")


def serving_container_ready(image: str, model_dir: Path, log: Path) -> float:
    port = free_port()
    spec = run.ContainerRun(
        name=f"bench-serving-{port}",
        image=image,
        env={
            "ESTEIRA_MODEL_URI": "/model",
            "ESTEIRA_MODEL_VERSION": "bench",
            "ESTEIRA_SERVING_PORT": "8080",
            "ESTEIRA_SERVICE_NAME": "bench",
        },
        ports={8080: port},
        read_only=True,
        writable=["/tmp"],
        mounts={str(model_dir): "/model"},
    )
    started = time.monotonic()
    proc = run.start(spec, log)
    try:
        wait_ready(f"http://127.0.0.1:{port}/ready")
        return time.monotonic() - started
    finally:
        run.stop(spec.name)
        proc.wait(30)


def serving_process_ready(model_dir: Path, workdir: Path) -> float:
    service = ServiceProcess({"ESTEIRA_MODEL_URI": str(model_dir), "ESTEIRA_MODEL_VERSION": "bench"}, workdir)
    started = time.monotonic()
    service.start()
    try:
        wait_ready(f"{service.url}/ready")
        return time.monotonic() - started
    finally:
        service.process.terminate()
        service.process.wait(30)


def lambda_cold_start() -> dict[str, float] | None:
    try:
        from oci import function
    except ImportError:
        return None
    measure = getattr(function, "measure_cold_start", None)
    return measure(build.ensure("lambdas").ref) if measure else None


def measure(runs: int) -> dict[str, Any]:
    images = {name: build.ensure(name) for name in build.IMAGES}
    model_dir = ensure_model()
    with tempfile.TemporaryDirectory() as tmp:
        container = [
            serving_container_ready(images["serving"].ref, model_dir, Path(tmp) / f"c{i}.log") for i in range(runs)
        ]
        process = [serving_process_ready(model_dir, Path(tmp) / f"p{i}") for i in range(runs)]
    return {
        "images": {
            name: {
                "ref": i.ref,
                "mb": round(i.size_bytes / 1e6),
                "base": i.base,
                "standin": i.standin,
                "build_s": i.seconds,
            }
            for name, i in images.items()
        },
        "serving_ready_container_s": round(statistics.median(container), 2),
        "serving_ready_process_s": round(statistics.median(process), 2),
        "serving_ready_runs": runs,
        "lambda": lambda_cold_start(),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    r = measure(args.runs)
    print(json.dumps(r, indent=1))
    if args.no_write:
        return
    rows = [
        f"| {name} | {i['mb']} MB | {i['base']}{' (stand-in)' if i['standin'] else ''} |"
        for name, i in r["images"].items()
    ]
    c, p = r["serving_ready_container_s"], r["serving_ready_process_s"]
    lines = [
        "Sizes as `podman image inspect` reports them (uncompressed; a registry stores them compressed).",
        "",
        "| image | size | base |",
        "|---|---:|---|",
        *rows,
        "",
        f"Serving, start to first 200 on `/ready` (benchmark model, median of {r['serving_ready_runs']}): "
        f"container {c} s (read-only root, own network namespace) vs local process {p} s: "
        f"ratio {c / p:.2f}.",
    ]
    lam = r["lambda"]
    if lam:
        lines += [
            "",
            f"Lambda image, cold start (container start to the first invocation answered through the runtime "
            f"interface): {lam['cold_s']} s; a warm invocation of the same container {lam['warm_s']} s: "
            f"ratio {lam['cold_s'] / max(lam['warm_s'], 1e-6):.0f}.",
        ]
    write_section("images", "\n".join(lines))


if __name__ == "__main__":
    main()
