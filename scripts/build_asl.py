"""Build the state machines Terraform deploys (stepfunctions/*.asl.json) from stepfunctions/src/.

Why a build step: Amazon States Language has no way to name a retry policy, so the same Lambda
retrier was copied into every Task. In the sources a Task's "Retry" is a list of retrier NAMES from
stepfunctions/src/retriers.json; this script writes each name out in full. The output is committed
and is the artefact a reviewer reads and Terraform renders; tests/unit/test_asl_build.py fails when
it is stale (`make asl` rebuilds it).

Sources and output are both valid JSON as they are: Terraform's placeholders (`${name}`) appear only
inside strings, so editors, linters and `json.load` read the templates before rendering.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "stepfunctions" / "src"
OUTPUT = ROOT / "stepfunctions"
MACHINES = ("train_evaluate_deploy", "release")


def _expand(states: dict[str, Any], retriers: dict[str, Any], machine: str) -> None:
    for name, state in states.items():
        retry = state.get("Retry")
        if retry is not None:
            unknown = [r for r in retry if not isinstance(r, str) or r not in retriers]
            if unknown:
                raise SystemExit(f"{machine}: state {name!r} names unknown retriers {unknown} (see retriers.json)")
            state["Retry"] = [{k: v for k, v in retriers[r].items() if k != "Comment"} for r in retry]
        for branch in state.get("Branches", []):
            _expand(branch["States"], retriers, machine)
        if "ItemProcessor" in state:
            _expand(state["ItemProcessor"]["States"], retriers, machine)


def build(machine: str) -> str:
    """The committed text of `stepfunctions/<machine>.asl.json`."""
    retriers = json.loads((SOURCES / "retriers.json").read_text())
    doc = json.loads((SOURCES / f"{machine}.json").read_text())
    _expand(doc["States"], retriers, machine)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed state machine is stale")
    args = parser.parse_args(argv)
    stale = []
    for machine in MACHINES:
        target = OUTPUT / f"{machine}.asl.json"
        text = build(machine)
        if target.exists() and target.read_text() == text:
            continue
        if args.check:
            stale.append(str(target.relative_to(ROOT)))
        else:
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print(f"stale: {', '.join(stale)}; run `make asl`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
