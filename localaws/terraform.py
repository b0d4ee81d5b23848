"""Give the embedded AWS the stack users apply: `tofu apply` of infra/terraform with envs/dev.tfvars.

What is added to the user's command is only what points it at the emulator: the provider endpoint
(`aws_endpoint_url`, which also turns off the credential, account and metadata checks in
providers.tf), test credentials, and a local backend in a staged copy of the root module so the
repository never gets a `.terraform/` or state. Every resource that dev.tfvars plans is applied; the
data planes then run what the emulator holds, read back from it (functions, task definitions,
rules, alarms, the rendered state machine), never a Python copy of the stack.

The toolchain (the engine and the provider) comes from scripts/tools.sh; `require_toolchain()`
builds it when it is missing and says so, because there is no other way to create the stack here.

The provider waits ~1 min for S3 lifecycle rules to settle (10 consecutive reads, by design for
AWS's eventual consistency), so `start()` returns at once and a caller can wait for the resources it
needs first (`wait_for`) and join the apply later.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TF_ROOT = ROOT / "infra" / "terraform"
DEFAULT_VAR_FILE = "envs/dev.tfvars"


def tools_dir() -> Path:
    return Path(os.environ.get("ESTEIRA_TOOLS_DIR") or Path.home() / ".cache" / "esteira" / "tools")


def toolchain() -> tuple[Path, Path] | None:
    """(Terraform engine bin/tf, its CLI config), or None if scripts/tools.sh has not finished."""
    tofu, rc = tools_dir() / "bin" / "tf", tools_dir() / "tofurc"
    ready = tools_dir() / "ready"
    return (tofu, rc) if tofu.is_file() and rc.is_file() and ready.exists() else None


def require_toolchain(log: Callable[[str], None] = print) -> tuple[Path, Path]:
    """The toolchain, building it first (scripts/tools.sh, minutes when cold) when it is missing."""
    found = toolchain()
    if found is not None:
        return found
    log("the Terraform toolchain is missing: building it with scripts/tools.sh (about 7 min cold)")
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "tools.sh")], cwd=ROOT)
    found = toolchain()
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"scripts/tools.sh failed (exit {proc.returncode}): the stack cannot be created without it")
    return found


def stage(dest: Path) -> Path:
    """A copy of the root module and the files it reads (same relative layout) with a local backend."""
    shutil.rmtree(dest, ignore_errors=True)
    skip = shutil.ignore_patterns(".terraform*", "*.tfstate*", ".terraform.lock.hcl")
    shutil.copytree(TF_ROOT, dest / "infra" / "terraform", ignore=skip)
    shutil.copytree(ROOT / "stepfunctions", dest / "stepfunctions")
    for extra in ("contract.yaml",):  # the names file the modules read, when it exists
        if (ROOT / extra).is_file():
            shutil.copy2(ROOT / extra, dest / extra)
    root = dest / "infra" / "terraform"
    (root / "backend_override.tf").write_text('terraform {\n  backend "local" {}\n}\n')
    return root


def engine_env(tofurc: Path, endpoint_credentials: dict[str, str] | None = None) -> dict[str, str]:
    """The engine's environment: no AWS_* or TF_* from the caller (never a developer's real account)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    env.update(
        TF_CLI_CONFIG_FILE=str(tofurc),
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
    env.update(endpoint_credentials or {})
    return env


@dataclass
class StackApply:
    """One `tofu apply` of the root module against an endpoint, followed line by line (`-json`)."""

    endpoint: str
    workdir: Path
    tofu: Path
    tofurc: Path
    var_file: str = DEFAULT_VAR_FILE
    variables: dict[str, str] = field(default_factory=dict)
    created: dict[str, str] = field(default_factory=dict)  # resource address -> id, as tofu reports them
    planned: int = 0
    seconds: float = 0.0
    error: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    _proc: subprocess.Popen[str] | None = None
    _thread: threading.Thread | None = None
    _progress: threading.Condition = field(default_factory=threading.Condition)
    _done: bool = False

    @property
    def root(self) -> Path:
        return self.workdir / "tf" / "infra" / "terraform"

    def env(self) -> dict[str, str]:
        return engine_env(self.tofurc)

    def args(self) -> list[str]:
        return [f"-var-file={self.var_file}", f"-var=aws_endpoint_url={self.endpoint}"] + [
            f"-var={k}={v}" for k, v in self.variables.items()
        ]

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.tofu), *args], cwd=self.root, env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(f"tofu {args[0]} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        return proc

    def start(self) -> StackApply:
        stage(self.workdir / "tf")
        started = time.monotonic()
        self.run("init", "-no-color", "-input=false")
        args = [str(self.tofu), "apply", "-json", "-auto-approve", "-lock=false", "-input=false", *self.args()]
        with (self.workdir / "tofu-apply.stderr").open("w") as err:  # a file: a full pipe would block tofu
            self._proc = subprocess.Popen(
                args, cwd=self.root, env=self.env(), stdout=subprocess.PIPE, stderr=err, text=True
            )
        self._thread = threading.Thread(target=self._follow, args=(started,), daemon=True, name="tofu-apply")
        self._thread.start()
        return self

    def _follow(self, started: float) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        diagnostics: list[str] = []
        with (self.workdir / "tofu-apply.jsonl").open("w") as log:
            for line in self._proc.stdout:
                log.write(line)
                try:
                    msg: dict[str, Any] = json.loads(line)
                except ValueError:
                    continue
                kind = msg.get("type")
                if kind == "change_summary" and msg["changes"].get("operation") == "plan":
                    self.planned = int(msg["changes"].get("add", 0))
                elif kind == "apply_complete":
                    with self._progress:
                        self.created[msg["hook"]["resource"]["addr"]] = str(msg["hook"].get("id_value", ""))
                        self._progress.notify_all()
                elif kind == "diagnostic" and msg.get("diagnostic", {}).get("severity") == "error":
                    d = msg["diagnostic"]
                    where = d.get("address") or (d.get("range") or {}).get("filename", "")
                    diagnostics.append(f"{where}: {d.get('summary', '')}: {d.get('detail', '')}".strip())
        code = self._proc.wait()
        self.seconds = time.monotonic() - started
        if code != 0:
            err = (self.workdir / "tofu-apply.stderr").read_text(errors="replace")
            self.error = "\n".join(diagnostics)[:4000] or err[-2000:] or f"tofu apply exited {code}"
        else:
            raw = self.run("output", "-json").stdout
            self.outputs = {k: v["value"] for k, v in json.loads(raw).items()}
        with self._progress:
            self._done = True
            self._progress.notify_all()

    def wait_for(self, addresses: list[str], timeout: float = 300) -> dict[str, str]:
        """The ids of these resources as soon as tofu has created them (the apply goes on)."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while not all(a in self.created for a in addresses):
                if self._done:
                    missing = [a for a in addresses if a not in self.created]
                    raise RuntimeError(f"tofu apply ended without creating {missing}: {self.error}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"tofu apply did not create {addresses} in {timeout:.0f} s")
                self._progress.wait(left)
            return {a: self.created[a] for a in addresses}

    def wait(self, timeout: float = 600) -> StackApply:
        """Until tofu has exited (success or not: see `error`)."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"tofu apply still running after {timeout:.0f} s")
        return self

    def join(self, timeout: float = 600) -> StackApply:
        """Until tofu has exited; raises with its diagnostics if the apply failed."""
        self.wait(timeout)
        if self.error:
            raise RuntimeError(f"tofu apply failed:\n{self.error}")
        return self

    def state(self) -> dict[str, Any]:
        """`tofu show -json` of the applied state."""
        return dict(json.loads(self.run("show", "-json").stdout))

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()


def managed_resources(module: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every managed resource in a `show -json` module tree (root and child modules)."""
    if not module:
        return []
    here = [r for r in module.get("resources", []) if r.get("mode") == "managed"]
    return here + [r for child in module.get("child_modules", []) for r in managed_resources(child)]


def apply_once(workdir: Path, var_file: str = DEFAULT_VAR_FILE) -> dict[str, Any]:
    """Apply the stack to a fresh embedded AWS: planned and applied counts, the seconds, any error."""
    from localaws.server import LocalAWS

    tofu, rc = require_toolchain()
    workdir.mkdir(parents=True, exist_ok=True)
    with LocalAWS(workdir=workdir / "localaws") as aws:
        apply = StackApply(aws.endpoint_url, workdir, tofu, rc, var_file=var_file).start()
        apply.wait()
        applied = managed_resources(apply.state().get("values", {}).get("root_module")) if not apply.error else []
        types = sorted({r["type"] for r in applied})
        return {
            "planned": apply.planned,
            "applied": len(applied),
            "types": types,
            "seconds": round(apply.seconds, 1),
            "engine": tofu.resolve().name,
            "error": apply.error,
        }


def main(argv: list[str] | None = None) -> int:
    """`python -m localaws.terraform`: apply the stack to a fresh embedded AWS and report the counts."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--var-file", default=DEFAULT_VAR_FILE)
    parser.add_argument("--workdir", default=".esteira/apply")
    parser.add_argument("--plan", action="store_true", help="plan only, and print the plan")
    args = parser.parse_args(argv)
    if args.plan:
        from localaws.server import LocalAWS

        tofu, rc = require_toolchain()
        workdir = Path(args.workdir).resolve()
        with LocalAWS(workdir=workdir / "localaws") as aws:
            planner = StackApply(aws.endpoint_url, workdir, tofu, rc, var_file=args.var_file)
            stage(workdir / "tf")
            planner.run("init", "-no-color", "-input=false")
            print(planner.run("plan", "-no-color", "-lock=false", "-input=false", *planner.args()).stdout)
        return 0
    result = apply_once(Path(args.workdir).resolve(), args.var_file)
    if result["error"]:
        print(result["error"], file=sys.stderr)
        return 1
    print(json.dumps({k: v for k, v in result.items() if k not in ("types", "error")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
