"""Time the whole loop (`make demo`) and record it in docs/benchmarks.md.

Runs the demo as `make demo` does, in a fresh work folder, then reads its results.json. Goals
(issue 16): the whole demo (loop and canary act, the apply included) <= 8 min wall on the 2-core
machine, alarm -> new model serving <= 3 min, zero failed requests; (issue 23) the canary act <= 3 min.
Usage: python -m benchmarks.loop [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.report import write_section

ROOT = Path(__file__).resolve().parents[1]


def run_once(workdir: Path) -> dict[str, Any]:
    load = os.getloadavg()[0]
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "demo.run", "--workdir", str(workdir / "demo"), "--reports", str(workdir / "reports")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    wall = time.monotonic() - started
    results = json.loads((workdir / "demo" / "results.json").read_text())
    if proc.returncode != 0:
        raise SystemExit(f"demo failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    phases = {p["name"]: round(p["end"] - p["start"], 1) for p in results["phases"]}
    return {
        "wall": round(wall, 1),
        "loop": results["loop"]["loop_seconds"],
        "alarm_to_new": results["loop"]["alarm_to_new_model_s"],
        "requests": results["traffic"]["requests"],
        "failed": results["traffic"]["failed"],
        "compare": results["compare"]["models"],
        "phases": phases,
        "load": round(load, 2),
        "bootstrap": results["infrastructure"]["bootstrap"],
        # Seconds per state of the two workflow runs and the two canary releases (the release's states
        # included): where a run's time goes.
        "states": {
            **{k: results[k].get("seconds", {}) for k in ("first_model", "retraining")},
            **{f"canary {k}": v.get("states", {}) for k, v in results.get("canary", {}).items() if isinstance(v, dict)},
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="esteira-loop-") as tmp:
            runs.append(run_once(Path(tmp)))
    lines = [
        "`make demo` end to end. The loop: emulator + `tofu apply` of infra/terraform (envs/dev.tfvars, the "
        "whole stack) + MLflow, the launch workflow on what the apply created, "
        "steady and campaign traffic, labelling, the scheduled drift check, the alarm, the alarm-started "
        "retraining and the swap under load, traffic on the new model until its drift checks are quiet again "
        "(no drift, the retrain absorbed, alarm OK). After the loop the demo runs "
        "the canary act (a healthy and a degraded canary release, issue 10), the comparison and the report.",
        "",
        "| run | the loop s | alarm -> new model serving s | requests | failed | campaign accuracy old -> new "
        "| new intents old -> new | whole demo s (with the canary act) | load1 at start |",
        "|---:|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for i, r in enumerate(runs, 1):
        old, new = r["compare"]
        lines.append(
            f"| {i} | {r['loop']} | {r['alarm_to_new']} | {r['requests']} | {r['failed']} "
            f"| {old['accuracy']:.3f} -> {new['accuracy']:.3f} "
            f"| {old['new_intents_accuracy']:.3f} -> {new['new_intents_accuracy']:.3f} | {r['wall']} | {r['load']} |"
        )
    worst = max(float(r["loop"]) for r in runs)
    worst_alarm = max(float(r["alarm_to_new"]) for r in runs)
    lines += [
        "",
        "Phases of run 1 (s): " + ", ".join(f"{k} {v}" for k, v in runs[0]["phases"].items()) + ".",
        f"Infrastructure: {runs[0]['bootstrap']}.",
        *(
            f"Workflow run `{run}` of run 1, seconds per state (the release's included; `Release` is the whole "
            "child execution): " + ", ".join(f"{k} {v}" for k, v in seconds.items() if v >= 0.5) + "."
            for run, seconds in runs[0]["states"].items()
            if seconds
        ),
        "",
        f"Goals: whole demo <= 480 s (**{max(float(r['wall']) for r in runs):.0f} s**, worst run; the loop "
        f"**{worst:.0f} s**), alarm -> new model serving <= 180 s (**{worst_alarm:.0f} s**), 0 failed requests "
        f"(**{sum(int(r['failed']) for r in runs)}**), the canary act <= 180 s "
        f"(**{max(float(r['phases'].get('canary', 0)) for r in runs):.0f} s**, worst run; issue 23).",
    ]
    write_section("loop", "\n".join(lines), command=f"python -m benchmarks.loop --runs {args.runs}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
