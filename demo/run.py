"""`make demo`: run the production line locally, phase by phase, and stop at the first failure.

Each phase is a function taking the shared context and returning a short line for the progress log.
Later phases (the emulator, serving, traffic, drift, retraining) are added to PHASES in order.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo.mlflow_server import MlflowServer, free_port


@dataclass
class Context:
    workdir: Path
    results: dict[str, Any] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)


class PhaseFailed(RuntimeError):
    pass


def phase_mlflow(ctx: Context) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return f"using remote MLflow at {uri}"
    server = MlflowServer(ctx.workdir / "mlflow", free_port()).start()
    ctx.cleanups.append(server.stop)
    os.environ["MLFLOW_TRACKING_URI"] = server.uri
    return f"mlflow server healthy at {server.uri} (sqlite, artifacts in {server.root})"


def phase_validate(ctx: Context) -> str:
    from pipelines.validate_data import validate_data

    res = validate_data("banking77:train")
    ctx.results["validate"] = res
    return f"{res['rows']} rows, {res['labels']} intents, dataset {res['dataset_hash'][:19]}"


def phase_train(ctx: Context) -> str:
    from pipelines.train import train

    res = train("banking77:train", "banking77:test")
    ctx.results["train"] = res
    m = res["metrics"]
    acc, f1 = m.get("accuracy", 0.0), m.get("macro_f1", 0.0)
    return f"model version {res['model_version']} ({res['status']}): accuracy {acc:.4f}, macro-F1 {f1:.4f}"


def phase_evaluate(ctx: Context) -> str:
    from pipelines.evaluate import evaluate

    res = evaluate(ctx.results["train"]["model_version"])
    ctx.results["evaluate"] = res
    return f"gate {'passed' if res['gate']['passed'] else 'REJECTED'}: {'; '.join(res['gate']['reasons'])}"


def phase_promote(ctx: Context) -> str:
    from pipelines.promote import promote

    res = promote(ctx.results["train"]["model_version"], evaluation=ctx.results["evaluate"])
    ctx.results["promote"] = res
    if res["status"] == "rejected":
        raise PhaseFailed(f"the first model was rejected by the gate: {res['reasons']}")
    return f"{res['status']}: champion is version {res['champion']}"


PHASES: list[tuple[str, Callable[[Context], str]]] = [
    ("mlflow", phase_mlflow),
    ("validate", phase_validate),
    ("train", phase_train),
    ("evaluate", phase_evaluate),
    ("promote", phase_promote),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workdir", default=".esteira/demo")
    args = parser.parse_args(argv)
    ctx = Context(Path(args.workdir).resolve())
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    failed: str | None = None
    try:
        for i, (name, phase) in enumerate(PHASES, 1):
            t0 = time.monotonic()
            print(f"[{i}/{len(PHASES)}] {name} ...", flush=True)
            try:
                line = phase(ctx)
            except Exception as exc:  # any phase failure ends the demo with a clear message
                failed = f"phase '{name}' failed: {exc}"
                break
            print(f"      {line}  ({time.monotonic() - t0:.1f}s)", flush=True)
    except KeyboardInterrupt:
        failed = "interrupted"
    finally:
        for cleanup in reversed(ctx.cleanups):
            cleanup()
    (ctx.workdir / "results.json").write_text(json.dumps(ctx.results, indent=1, default=str))
    if failed:
        print(f"demo FAILED after {time.monotonic() - started:.0f}s: {failed}", file=sys.stderr)
        return 1
    print(f"demo finished in {time.monotonic() - started:.0f}s; results in {ctx.workdir / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
