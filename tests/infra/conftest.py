"""Fixtures for the Terraform chain: the pinned toolchain, a staged copy of the tree, the embedded AWS.

The tree is staged into a temporary directory (infra/terraform + stepfunctions + contract.yaml, same
relative layout) so `tofu init` never writes .terraform/ or a lock file into the repository, and a
`backend_override.tf` swaps the S3 backend for a local one: the emulator runs hold no real state.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TF_DIR = REPO / "infra" / "terraform"
ASL = REPO / "stepfunctions" / "train_evaluate_deploy.asl.json"
RELEASE = REPO / "stepfunctions" / "release.asl.json"
CONTRACT = REPO / "contract.yaml"
TOOLS_DIR = Path(os.environ.get("ESTEIRA_TOOLS_DIR", Path.home() / ".cache" / "esteira" / "tools"))
BIN = TOOLS_DIR / "bin"


def require(path: Path, what: str) -> Path:
    """Missing tools skip locally but fail in CI, where a skipped check would pass silently."""
    if path.exists():
        return path
    msg = f"{what} not found at {path}: run `make tools` (scripts/tools.sh)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)
    raise AssertionError("unreachable")


@dataclass
class Tofu:
    """Runs the pinned tofu in a staged root module with an offline provider mirror."""

    binary: Path
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, timeout: int = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"tofu {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
        return proc

    def show_json(self, *args: str) -> dict:
        return json.loads(self.run("show", "-json", *args, timeout=300).stdout)


def tofu_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "TF_"))  # never let a developer's real account leak in
    }
    env.update(
        TF_CLI_CONFIG_FILE=str(TOOLS_DIR / "tofurc"),
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        CHECKPOINT_DISABLE="1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.update(extra or {})
    return env


def stage_tree(dest: Path) -> Path:
    """Copy the root module and the files it reads (the ASL templates, contract.yaml) keeping their
    relative layout; return the root."""
    root = dest / "infra" / "terraform"
    shutil.copytree(TF_DIR, root, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"))
    shutil.copytree(REPO / "stepfunctions", dest / "stepfunctions")
    shutil.copy2(CONTRACT, dest / "contract.yaml")
    (root / "backend_override.tf").write_text('terraform {\n  backend "local" {}\n}\n')
    return root


@pytest.fixture(scope="session")
def tofu_bin() -> Path:
    return require(BIN / "tf", "Terraform engine (bin/tf)")


@pytest.fixture(scope="session")
def provider_mirror() -> Path:
    """The offline provider mirror, when tools.sh built one (with a registry reachable it builds none
    and writes a CLI config without a mirror: init then downloads the provider as usual)."""
    rc = require(TOOLS_DIR / "tofurc", "tofu CLI config (tofurc)")
    mirror = TOOLS_DIR / "mirror" / "registry.opentofu.org" / "hashicorp" / "aws"
    if "filesystem_mirror" not in rc.read_text():
        return mirror
    builds = list(mirror.glob("*/linux_amd64/terraform-provider-aws_v*"))
    if not builds:
        require(mirror / "<version>", "terraform-provider-aws in the filesystem mirror")
    return mirror


@pytest.fixture(scope="session")
def initialized(tmp_path_factory: pytest.TempPathFactory, tofu_bin: Path, provider_mirror: Path) -> Tofu:
    """A staged, `tofu init`-ed root module shared by validate, plan and apply."""
    root = stage_tree(tmp_path_factory.mktemp("tf"))
    tofu = Tofu(tofu_bin, root, tofu_env())
    tofu.run("init", "-no-color", timeout=600)
    return tofu


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Moto:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def moto_server(log: Path) -> Iterator[Moto]:
    """A plain moto server in its own process on a free port, for plans (a plan creates nothing, so
    none of localaws's data planes is needed)."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=tofu_env(),
        )
    moto = Moto(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{moto.url}/moto-api/", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto did not start: {log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield moto
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Emulator:
    url: str


@pytest.fixture
def embedded_aws(tmp_path: Path) -> Iterator[Emulator]:
    """The embedded AWS (localaws: moto 5.2.5 plus the APIs and data planes it lacks) on a free port."""
    from localaws.server import LocalAWS

    with LocalAWS(workdir=tmp_path / "localaws") as aws:
        yield Emulator(aws.endpoint_url)
