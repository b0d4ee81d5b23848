"""`.ci/run` end to end on a clean clone with an EMPTY toolchain cache: what CI costs on a fresh machine.

CI runs on a clean checkout right after a session, often on a machine whose tools cache is empty; it
must finish well inside 90 minutes. This runs `.ci/run` in a fresh clone of HEAD with
ESTEIRA_TOOLS_DIR/TOOLS_DIR pointing at an empty directory, and writes the wall time and each step's
start (the `=== step (Ns)` lines .ci/run prints) into docs/infra-notes.md between the
`<!-- ci-cold:begin -->` and `<!-- ci-cold:end -->` markers.

    python -m benchmarks.ci_run [--work /tmp/esteira-ci-cold]
    python -m benchmarks.ci_run --log L   # record a cold run already made (.ci/run output in L)
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from benchmarks.toolchain import NOTES, REPO, mmss, write_block

_STEP = re.compile(r"^=== (.*) \((\d+)s\)$")


def run(work: Path, log: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(REPO), str(work / "repo")], check=True)
    tools = work / "tools"
    env = {**os.environ, "ESTEIRA_TOOLS_DIR": str(tools), "TOOLS_DIR": str(tools)}
    with log.open("w") as out:
        subprocess.run([str(work / "repo" / ".ci" / "run")], cwd=work / "repo", env=env, stdout=out,
                       stderr=subprocess.STDOUT, check=True)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/esteira-ci-cold"))
    parser.add_argument("--log", type=Path, help=".ci/run output of a cold run already made")
    args = parser.parse_args()
    log = args.log or args.work / "ci.log"
    if args.log is None:
        args.work.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        run(args.work, log)
        print(f"cold .ci/run: {time.monotonic() - start:.0f} s")
    steps = [(m.group(1), int(m.group(2))) for m in map(_STEP.match, log.read_text().splitlines()) if m]
    if not steps or steps[-1][0] != "CI finished":
        raise SystemExit(f"{log}: .ci/run did not finish")
    total = steps[-1][1]
    rows = [f"| {name} | {mmss(at)} | {mmss(nxt - at)} |" for (name, at), (_, nxt) in itertools.pairwise(steps)]
    block = "\n".join(
        [
            "<!-- ci-cold:begin (written by benchmarks/ci_run.py; do not edit by hand) -->",
            f"Measured {dt.date.today().isoformat()} on this {os.cpu_count()}-core machine: `.ci/run` on a clean",
            f"clone with an empty toolchain cache took **{mmss(total)} ({total} s)** end to end"
            f" (`python -m benchmarks.ci_run`).",
            "",
            "| Step | Starts at | Takes |",
            "|---|---|---|",
            *rows,
            "<!-- ci-cold:end -->",
        ]
    )
    write_block(NOTES, "ci-cold", block)
    print(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
