"""Property-based API tests: schemathesis generates valid and invalid requests from /openapi.json and runs
every check (no server error, documented status codes, content types, headers and response schemas, and
that schema-violating data is rejected) against a real server process.

The default suite runs a few hundred cases; the slow suite runs >= 1,000.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.loadgen import ServiceProcess


def _run(service: tuple[ServiceProcess, str], tmp_path: Path, per_operation: int) -> int:
    proc, _ = service
    cassette = tmp_path / "cassette.yaml"
    cmd = [
        str(Path(sys.executable).parent / "schemathesis"), "run", f"{proc.url}/openapi.json",
        "--experimental=openapi-3.1", "--checks", "all", "--data-generation-method", "all",
        "--hypothesis-max-examples", str(per_operation), "--hypothesis-derandomize",
        "--cassette-path", str(cassette), "--show-trace",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "not_a_server_error" in done.stdout
    cases = sum(1 for line in cassette.read_text().splitlines() if line.startswith("- id:"))
    # Every interaction got an answer below 500 (the checks above say so too; this reads the wire log).
    statuses = [line.split(":", 1)[1].strip().strip("'\"") for line in cassette.read_text().splitlines()
                if line.strip().startswith("code:")]  # fmt: skip
    assert statuses and all(int(s) < 500 for s in statuses)
    return cases


def test_schemathesis_quick(service: tuple[ServiceProcess, str], tmp_path: Path) -> None:
    assert _run(service, tmp_path, 120) >= 200


@pytest.mark.slow
def test_schemathesis_thousand_cases(service: tuple[ServiceProcess, str], tmp_path: Path, request: Any) -> None:
    assert _run(service, tmp_path, 600) >= 1000
