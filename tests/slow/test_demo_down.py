"""`make demo-down` (and Ctrl-C) stop every process the demo started, mid-run.

The demo is stopped while the launch workflow's training task is running, the point with the most
processes alive (MLflow server and its workers, tofu, the training task); afterwards none of them
may be left, and the demo must say it was interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _as_in_a_terminal() -> None:
    """SIGINT as a foreground terminal job has it.

    A test suite started in the background (`cmd &` in a script, as a CI runner may) inherits SIGINT
    ignored, and Python then never raises KeyboardInterrupt: the Ctrl-C case would test nothing but the
    runner. A user's demo runs in a terminal's foreground, where Ctrl-C is delivered.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    log = tmp_path / "demo.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo.run", "--workdir", str(tmp_path / "demo"), "--reports", str(tmp_path / "r")],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True,
        preexec_fn=_as_in_a_terminal,
    )  # fmt: skip
    return proc, log


def _wait_for_training(proc: subprocess.Popen[str], log: Path, timeout: float = 240) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        family = psutil.Process(proc.pid).children(recursive=True)
        if "] first model ..." in log.read_text() and any("train" in _cmdline(p) for p in family):
            return family
        time.sleep(1)
    raise AssertionError(f"the training task never started:\n{log.read_text()[-3000:]}")


def _cmdline(process: psutil.Process) -> str:
    """The command line, or "" for a process that ended since it was listed (lambda workers, tofu come
    and go every second: reading one that just exited must not fail the test)."""
    try:
        return " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return ""


def _assert_all_gone(family: list[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(family, timeout=30)
    assert not alive, [" ".join(p.cmdline())[:120] for p in alive]


@pytest.mark.parametrize("how", ["demo-down", "ctrl-c"])
def test_stopping_the_demo_leaves_no_process(tmp_path: Path, how: str) -> None:
    proc, log = _start(tmp_path)
    try:
        _stop_and_check(proc, log, tmp_path, how)
    finally:  # a failed check must not leave a demo (and its MLflow, tasks) running under the next test
        if proc.poll() is None:
            subprocess.run(
                [sys.executable, "-m", "demo.down", "--workdir", str(tmp_path / "demo")],
                cwd=ROOT, capture_output=True, timeout=120, check=False,
            )  # fmt: skip
            proc.kill()
            proc.wait(30)


def _stop_and_check(proc: subprocess.Popen[str], log: Path, tmp_path: Path, how: str) -> None:
    family = _wait_for_training(proc, log)
    assert len(family) >= 3  # mlflow, its worker, the training task at least
    if how == "demo-down":
        down = subprocess.run(
            [sys.executable, "-m", "demo.down", "--workdir", str(tmp_path / "demo")],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
    else:
        proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 1
    assert "interrupted" in log.read_text()
    _assert_all_gone(family)
    assert not (tmp_path / "demo" / "demo.pid").exists()
