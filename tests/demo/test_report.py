"""The loop report renders in a real browser: headless Chromium (Debian package) takes a screenshot,
and the screenshot must show the plots, not a blank page.

The report is rendered from stored loop data (demo/report.py keeps `collect` and `render` apart), so
this test needs no loop run; tests/slow/test_demo_loop.py renders the report of a real one.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from html import escape
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from demo.report import render, write_report
from pipelines.model_card import card_url

MLFLOW = "http://127.0.0.1:5000"

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def loop_data() -> dict[str, object]:
    rng = random.Random(1)
    records = []
    for i in range(2000):
        t = 60 + i * 0.05
        version = "1" if t < 130 else "2"
        records.append({"t": t, "ms": rng.uniform(3, 30), "status": 200, "version": version,
                        "ok": rng.random() < (0.9 if version == "2" else 0.6), "pool": "campaign"})  # fmt: skip
    phases = [{"name": n, "start": s, "end": e, "status": "ok"}
              for n, s, e in [("infrastructure", 0, 20), ("first model", 20, 60), ("campaign", 60, 100),
                              ("retraining", 100, 130), ("report", 130, 140)]]  # fmt: skip
    return {
        "generated": "2026-11-24 09:00:00 UTC",
        "phases": phases,
        "events": [
            {"t": 60, "kind": "shift", "text": ""},
            {"t": 95, "kind": "alarm", "text": ""},
            {"t": 130, "kind": "deploy", "text": ""},
        ],
        "records": records,
        "alarm_history": [
            {"t": t, "alarm": "esteira-model-drift", "state": "ALARM" if t > 95 else "OK"} for t in range(0, 140, 5)
        ],
        "drift": [{"version": "1", "score": 0.2 if t < 60 else 2.5, "t": t} for t in range(30, 130, 15)],
        "versions": [
            {"version": "1", "eval_accuracy": 0.93, "eval_f1": 0.92, "card_url": card_url(MLFLOW, "run1")},
            {"version": "2", "eval_accuracy": 0.92, "card_url": card_url(MLFLOW, "run2")},
        ],
        "compare": {
            "sample": 2000,
            "models": [
                {"version": "1", "accuracy": 0.6, "new_intents_accuracy": 0.0, "launch_intents_accuracy": 0.9},
                {"version": "2", "accuracy": 0.88, "new_intents_accuracy": 0.8, "launch_intents_accuracy": 0.9},
            ],
        },
        "loop": {"alarm_to_new_model_s": 35.0},
        "total_seconds": 140.0,
        "infrastructure": {"bootstrap": "tofu apply of module.storage"},
        "retraining": {"name": "retrain-drift-x", "labelled": {"train": 800, "eval": 200}},
    }


def test_report_is_self_contained_html_with_five_plots(tmp_path: Path) -> None:
    path = write_report(loop_data(), tmp_path)
    html = path.read_text()
    assert path.name.startswith("loop-") and path.suffix == ".html"
    assert html.count("data:image/png;base64,") == 5
    # Nothing to fetch: it opens offline. The only addresses are the links to the versions' model cards.
    assert 'src="http' not in html and "url(http" not in html
    assert html.count("http://") == 2 and "https://" not in html
    for run in ("run1", "run2"):
        assert f'href="{escape(card_url(MLFLOW, run))}"' in html
    assert (tmp_path / path.name.replace(".html", ".json")).exists()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/apt-packages-demo.txt)")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render(loop_data()))
    shot = tmp_path / "shot.png"
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--no-first-run", "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,2400", f"--screenshot={shot}", page.as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.exists(), f"no screenshot: {proc.stderr[-2000:]}"
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape[0] >= 2000 and pixels.shape[1] >= 1000
    # A blank (or error) page is one flat colour; plots have lines, bars and text all over the page.
    assert pixels.std() > 20, f"screenshot looks blank (std {pixels.std():.1f})"
    rows_with_ink = (pixels < 200).any(axis=1).mean()
    assert rows_with_ink > 0.5, f"only {rows_with_ink:.0%} of the rows have anything drawn"
