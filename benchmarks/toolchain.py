"""Cold and warm toolchain build (scripts/tools.sh), written into docs/infra-notes.md and README.md.

A fresh machine pays the cold build before any Terraform check can run, so its time is the figure a
newcomer and a fresh CI run care about. Cold means an empty tools directory (no Go module or build
cache, no binaries) and ESTEIRA_TOOLS_FORCE=1; warm is the rerun right after, which must find
everything stamped. The figures go between `<!-- toolchain:begin -->` and `<!-- toolchain:end -->`
in docs/infra-notes.md and the `toolchain-time` markers in README.md, so a doc never outlives
its measurement.

    python -m benchmarks.toolchain [--dir /tmp/esteira-tools-cold]
    python -m benchmarks.toolchain --dir D --log L   # record a cold run already made into D
    python -m benchmarks.toolchain --cdk             # the CDK path: cold venv + synth, no Go at all
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTES = REPO / "docs" / "infra-notes.md"
CDK_DOC = REPO / "docs" / "cdk.md"
README = REPO / "README.md"
_STEP = re.compile(r"^\[tools (\d+):(\d\d)\] (.*)$")


def run_build(tools_dir: Path, log: Path, force: bool) -> float:
    env = {**os.environ, "ESTEIRA_TOOLS_DIR": str(tools_dir), "ESTEIRA_TOOLS_FORCE": "1" if force else "0"}
    start = time.monotonic()
    with log.open("w") as out:
        subprocess.run([str(REPO / "scripts" / "tools.sh")], env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
    return time.monotonic() - start


def steps(log: Path) -> list[tuple[int, str]]:
    """(seconds since start, message) of every progress line tools.sh printed."""
    found = []
    for line in log.read_text().splitlines():
        match = _STEP.match(line)
        if match:
            found.append((int(match.group(1)) * 60 + int(match.group(2)), match.group(3)))
    return found


def du_gb(path: Path) -> float:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 1e9


def built_in(lines: list[tuple[int, str]], name: str) -> str:
    for _, message in lines:
        if message.startswith(f"{name}: built in "):
            return message.split("built in ", 1)[1]
    return "not built"


def write_block(doc: Path, name: str, block: str) -> None:
    """Replaces `<!-- NAME:begin ... -->` .. `<!-- NAME:end -->` in `doc` with `block` (which has both)."""
    text = doc.read_text()
    pattern = rf"<!-- {name}:begin.*?<!-- {name}:end -->"
    if not re.search(pattern, text, flags=re.DOTALL):
        raise SystemExit(f"{doc}: no <!-- {name}:begin --> ... <!-- {name}:end --> markers")
    doc.write_text(re.sub(pattern, lambda _: block, text, flags=re.DOTALL))


def mmss(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def measure_cdk(work: Path) -> int:
    """A clean clone, an empty uv cache, `make venv` and `make cdk-synth`: what the CDK path costs."""
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(REPO), str(work / "repo")], check=True)
    env = {**os.environ, "UV_CACHE_DIR": str(work / "uv-cache"), "PIP_NO_CACHE_DIR": "1"}
    times = {}
    for target in ("venv", "cdk-synth"):
        start = time.monotonic()
        subprocess.run(["make", "-C", str(work / "repo"), target], env=env, check=True, capture_output=True)
        times[target] = time.monotonic() - start
    go_free = "no Go, no Terraform engine, no provider build"
    block = (
        "<!-- cdk-install:begin (written by benchmarks/toolchain.py --cdk) -->\n"
        f"Cold install of the CDK path, measured {dt.date.today().isoformat()} on this {os.cpu_count()}-core machine "
        f"(clean clone, empty uv cache; {go_free}): `make venv` {times['venv']:.0f} s, "
        f"then `make cdk-synth` {times['cdk-synth']:.0f} s.\n<!-- cdk-install:end -->"
    )
    write_block(CDK_DOC, "cdk-install", block)
    print(block)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/esteira-tools-cold"))
    parser.add_argument("--log", type=Path, help="log of a cold run already made into --dir")
    parser.add_argument("--cdk", action="store_true", help="measure the CDK path's cold install instead")
    args = parser.parse_args()
    if args.cdk:
        return measure_cdk(Path("/tmp/esteira-cdk-cold"))
    cold_log = args.log or args.dir / "cold.log"
    if args.log is None:
        shutil.rmtree(args.dir, ignore_errors=True)
        args.dir.mkdir(parents=True)
        run_build(args.dir, cold_log, force=True)
    lines = steps(cold_log)
    done = [m for _, m in lines if m.startswith("done in ")]
    if not done:
        raise SystemExit(f"{cold_log}: the cold build did not finish")
    cold_s = int(re.search(r"\((\d+) s\)", done[-1]).group(1))  # type: ignore[union-attr]
    warm_s = run_build(args.dir, args.dir / "warm.log", force=False)
    provider = next((args.dir / "mirror").glob("registry.opentofu.org/hashicorp/aws/*/linux_amd64/terraform-*"))
    engine = next((m for _, m in lines if m.startswith("Terraform engine: ")), "?")
    cut = next((m for _, m in lines if m.startswith("AWS provider: ")), "?")
    machine = f"{os.cpu_count()} cores, {platform.machine()}, {platform.python_version()} Python, " + (
        subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    )
    today = dt.date.today().isoformat()
    block = "\n".join(
        [
            "<!-- toolchain:begin (written by benchmarks/toolchain.py; do not edit by hand) -->",
            f"Measured {today} on {machine}: `python -m benchmarks.toolchain`.",
            "",
            "| | Time |",
            "|---|---|",
            f"| **cold** (empty tools directory, `ESTEIRA_TOOLS_FORCE=1`) | **{mmss(cold_s)}** ({cold_s} s) |",
            f"| of which the AWS provider (`go build`, cut) | {built_in(lines, 'aws-provider')} |",
            f"| of which OpenTofu | {built_in(lines, 'tofu')} |",
            f"| warm (rerun, everything stamped) | {warm_s:.1f} s |",
            "",
            f"- {engine}.",
            f"- {cut}.",
            f"- Provider binary {provider.stat().st_size / 1e6:.0f} MB; tools directory {du_gb(args.dir):.1f} GB.",
            "<!-- toolchain:end -->",
        ]
    )
    write_block(NOTES, "toolchain", block)
    write_block(
        README,
        "toolchain-time",
        f"<!-- toolchain-time:begin -->{mmss(cold_s)} min cold on this 2-core machine ({today})"
        "<!-- toolchain-time:end -->",
    )
    print(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
