"""Run a real `mlflow server` (sqlite + proxied local artifacts) as a child process and wait until healthy."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# The MLflow task's entry (docker/mlflow_start.py): basic-auth with its users set from the task's secrets.
START_SCRIPT = Path(__file__).resolve().parents[1] / "docker" / "mlflow_start.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MlflowServer:
    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    # With credentials (docker/mlflow_start.py's variables), the server runs as the MLflow task runs it:
    # MLflow's basic-auth app, its users synced from these values. Without, an open server.
    auth_env: dict[str, str] | None = None

    @classmethod
    def as_task(cls, root: Path, port: int) -> MlflowServer:
        """A server run as the stack's MLflow task runs it (docker/mlflow_start.py, basic-auth), before
        the stack exists: its users start with passwords of its own and take the stack's secrets when
        the stack's MLflow service starts (`take_secrets`, given to localaws's bind_external)."""
        boot = {
            # modules/mlflow's user names; the passwords are replaced by the secrets' at the service's start.
            "MLFLOW_AUTH_ADMIN_USERNAME": "esteira-workflow",
            "MLFLOW_AUTH_ADMIN_PASSWORD": secrets.token_urlsafe(24),
            "ESTEIRA_MLFLOW_READER_USERNAME": "esteira-reader",
            "ESTEIRA_MLFLOW_READER_PASSWORD": secrets.token_urlsafe(24),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(32),
        }
        return cls(root, port, auth_env=boot)

    def take_secrets(self, injected: dict[str, str]) -> None:
        """Set the users from a task's injected secrets (what the MLflow task does at each start), on the
        running server: basic-auth reads its users' table on every request."""
        assert self.auth_env is not None, "take_secrets needs a server started with as_task()"
        env = {**os.environ, **self.auth_env, **injected}
        done = subprocess.run(
            [sys.executable, str(START_SCRIPT), "--sync-users", "--backend-store-uri", self.backend_store_uri],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        with (self.root / "mlflow-server.log").open("a") as log:
            log.write(done.stdout + done.stderr)
        if done.returncode != 0:
            raise RuntimeError(f"mlflow_start --sync-users failed ({done.returncode}): {done.stderr[-2000:]}")

    @property
    def backend_store_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> MlflowServer:
        return self.launch().wait_healthy(timeout)

    def launch(self) -> MlflowServer:
        """Start the process without waiting, so a caller can do other work while it boots (~10 s)."""
        self.root.mkdir(parents=True, exist_ok=True)
        mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        log = (self.root / "mlflow-server.log").open("ab")
        entry = [mlflow_bin, "server"]
        if self.auth_env is not None:
            env.update(self.auth_env)
            entry = [sys.executable, str(START_SCRIPT)]
        self.process = subprocess.Popen(
            [
                *entry,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--backend-store-uri",
                self.backend_store_uri,
                "--artifacts-destination",
                str(self.root / "artifacts"),
                "--workers",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        return self

    def wait_healthy(self, timeout: float = 90.0) -> MlflowServer:
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with {self.process.returncode}; see {self.root}/mlflow-server.log"
                )
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"mlflow server not healthy after {timeout:.0f}s; see {self.root}/mlflow-server.log")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
