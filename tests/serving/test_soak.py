"""A short soak (the 10-minute one is `make soak`): no errors and bounded memory across a model swap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_short_soak_with_swap(registered_model: dict[str, Any]) -> None:
    uri = f"models:/{registered_model['name']}@champion"
    done = subprocess.run(
        [sys.executable, "benchmarks/soak.py", "--seconds", "45", "--concurrency", "8", "--model-uri", uri,
         "--no-write"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "MLFLOW_TRACKING_URI": registered_model["tracking_uri"]},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert r["load"]["ok"] > 100 and r["errors"] == 0, r
    assert r["swap"]["swap_logged"] and r["exit_code"] == 0, r
    assert r["swap"]["during_swap"]["requests"] > 0 and r["swap"]["reload_s"] < 30, r["swap"]
    assert r["rss_growth_pct"] < 25, r  # 10 % is the goal over 10 minutes; a short run is noisier
