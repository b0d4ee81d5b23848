"""Stand the storage of infra/terraform up on the embedded AWS with `tofu apply`, when the toolchain is here.

What is applied: `module.storage` of the root module (KMS key, the data, artifacts, capture and log
buckets with versioning, encryption, public-access blocks, policies and lifecycle rules), with the
provider's endpoints pointed at the emulator. The rest of the stack (state machine, Lambdas, alarms,
ECS service) is created by localaws.stack, because moto cannot take it through the provider (see
docs/infra-notes.md: the CloudWatch CBOR protocol, ValidateStateMachineDefinition) and a full apply
takes ~2 min, more than the demo's whole budget for infrastructure. tests/infra applies everything.

The provider waits ~1 min for S3 lifecycle rules to settle (10 consecutive reads, by design for AWS's
eventual consistency), so the apply runs in the background: the buckets exist within seconds, and
the demo goes on once tofu has reported them created, then joins the apply before it finishes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def tools_dir() -> Path:
    return Path(os.environ.get("ESTEIRA_TOOLS_DIR") or Path.home() / ".cache" / "esteira" / "tools")


def toolchain() -> tuple[Path, Path] | None:
    """(Terraform engine bin/tf, CLI config with the provider mirror), or None if scripts/tools.sh has not run."""
    tofu, rc = tools_dir() / "bin" / "tf", tools_dir() / "tofurc"
    return (tofu, rc) if tofu.is_file() and rc.is_file() else None


@dataclass
class StorageApply:
    endpoint: str
    workdir: Path
    tofu: Path
    tofurc: Path
    buckets: dict[str, str] = field(default_factory=dict)
    resources: int = 0
    seconds: float = 0.0
    error: str = ""
    _proc: subprocess.Popen[str] | None = None
    _thread: threading.Thread | None = None
    _created: threading.Event = field(default_factory=threading.Event)

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "TF_CLI_CONFIG_FILE": str(self.tofurc),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def stage(self) -> Path:
        """A copy of the root module (and the ASL it reads) with a local backend: never touch the repo."""
        stage = self.workdir / "tf"
        shutil.rmtree(stage, ignore_errors=True)
        skip = shutil.ignore_patterns(".terraform*")
        shutil.copytree(ROOT / "infra" / "terraform", stage / "infra" / "terraform", ignore=skip)
        shutil.copytree(ROOT / "stepfunctions", stage / "stepfunctions")
        root = stage / "infra" / "terraform"
        (root / "backend_override.tf").write_text('terraform {\n  backend "local" {}\n}\n')
        return root

    def start(self) -> StorageApply:
        root = self.stage()
        started = time.monotonic()
        init_cmd = [str(self.tofu), "init", "-no-color", "-input=false"]
        init = subprocess.run(init_cmd, cwd=root, env=self.env(), capture_output=True, text=True)
        if init.returncode != 0:
            raise RuntimeError(f"tofu init failed:\n{init.stdout[-2000:]}{init.stderr[-2000:]}")
        args = [
            str(self.tofu), "apply", "-json", "-auto-approve", "-lock=false", "-input=false",
            "-var-file=envs/dev.tfvars", f"-var=aws_endpoint_url={self.endpoint}", "-target=module.storage",
        ]  # fmt: skip
        with (self.workdir / "tofu-apply.stderr").open("w") as err:  # a file: a full pipe would block tofu
            self._proc = subprocess.Popen(args, cwd=root, env=self.env(), stdout=subprocess.PIPE, stderr=err, text=True)
        self._thread = threading.Thread(target=self._follow, args=(started,), daemon=True, name="tofu-apply")
        self._thread.start()
        return self

    def _follow(self, started: float) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        diagnostics: list[str] = []
        for line in self._proc.stdout:
            try:
                msg: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            if msg.get("type") == "apply_complete":
                self.resources += 1
                addr = msg["hook"]["resource"]["addr"]
                for role in ("data", "artifacts", "capture"):
                    if addr == f'module.storage.aws_s3_bucket.this["{role}"]':
                        self.buckets[role] = msg["hook"]["id_value"]
                if len(self.buckets) == 3:
                    self._created.set()
            elif msg.get("type") == "diagnostic" and msg.get("diagnostic", {}).get("severity") == "error":
                diagnostics.append(msg["diagnostic"].get("summary", "") + ": " + msg["diagnostic"].get("detail", ""))
        code = self._proc.wait()
        self.seconds = time.monotonic() - started
        if code != 0:
            err = (self.workdir / "tofu-apply.stderr").read_text(errors="replace")
            self.error = "; ".join(diagnostics)[:2000] or err[-2000:] or f"tofu apply exited {code}"
        self._created.set()

    def wait_buckets(self, timeout: float = 120) -> dict[str, str]:
        if not self._created.wait(timeout):
            raise TimeoutError(f"tofu apply created no buckets in {timeout:.0f} s")
        if self.error and len(self.buckets) < 3:
            raise RuntimeError(f"tofu apply failed: {self.error}")
        return dict(self.buckets)

    def join(self, timeout: float = 240) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"tofu apply still running after {timeout:.0f} s")
        if self.error:
            raise RuntimeError(f"tofu apply failed: {self.error}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
