"""LocalStack community on the host (Python 3.13 venv from scripts/localstack.sh), or LOCALSTACK_ENDPOINT.

Skips when no Python 3.13 exists. With CI=true, a Python 3.13 that exists but cannot run LocalStack
is a failure, not a skip, so CI cannot silently stop running this suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from localaws.ecs import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "localstack.sh"
MOCK = Path(__file__).with_name("sfn-mock.json")
CI = os.environ.get("CI", "").lower() == "true"


def _give_up(reason: str) -> None:
    if CI:
        pytest.fail(f"LocalStack suite cannot run on CI: {reason}")
    pytest.skip(reason)


def _python() -> str:
    found = subprocess.run([str(SCRIPT), "python"], capture_output=True, text=True, check=False)
    if found.returncode == 0:
        return found.stdout.strip()
    has313 = subprocess.run(
        ["bash", "-c", f"source <(sed -n '/^find_python313()/,/^}}/p' {SCRIPT}); PY313= find_python313"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if has313.returncode != 0:
        pytest.skip("no Python 3.13 on this machine: LocalStack community needs it on the host")
    if not CI:
        pytest.skip("LocalStack venv missing: run `make localstack-venv` (or scripts/localstack.sh venv)")
    made = subprocess.run([str(SCRIPT), "venv"], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        _give_up(f"scripts/localstack.sh venv failed: {made.stderr[-2000:]}")
    return subprocess.run([str(SCRIPT), "python"], capture_output=True, text=True, check=True).stdout.strip()


def _healthy(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def localstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("LOCALSTACK_ENDPOINT")
    if given:
        if not _healthy(given):
            _give_up(f"LOCALSTACK_ENDPOINT={given} does not answer")
        yield given
        return
    python = _python()
    port = free_port()
    state = tmp_path_factory.mktemp("localstack")
    env = {
        **os.environ,
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "GATEWAY_SERVER": "hypercorn",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "LOCALSTACK_VOLUME_DIR": str(state / "volume"),
        "SFN_MOCK_CONFIG": str(MOCK),
        "SERVICES": "stepfunctions,sns,sqs,dynamodb,cloudwatch,events,iam,sts,logs",
    }
    log = (state / "localstack.log").open("wb")
    proc = subprocess.Popen(
        [python, "-m", "localstack.runtime.main"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=state,
        start_new_session=True,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not _healthy(endpoint):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _give_up(f"LocalStack did not start; log: {(state / 'localstack.log').read_text(errors='replace')[-3000:]}")
        time.sleep(1)
    yield endpoint
    # It logs "Completed, bye!" on SIGTERM but may not exit: SIGKILL after a grace period.
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    log.close()
