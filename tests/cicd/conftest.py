"""Helpers for the CI/CD checks: where the repository and the pinned tools are, and CI-vs-laptop policy."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
LOCAL_ACTIONS = sorted((ROOT / ".github" / "actions").glob("*/action.yml"))


def tools_dir() -> Path:
    """The cache scripts/tools.sh fills (TOOLS_DIR in the Makefile)."""
    return Path(os.environ.get("TOOLS_DIR") or Path.home() / ".cache" / "esteira" / "tools")


def require_tool(path: str | None, what: str, install: str) -> str:
    """A missing tool skips on a laptop but FAILS in CI (CI=true), so CI can never pass by skipping."""
    if path and Path(path).exists():
        return path
    message = f"{what} not found; {install}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def actionlint_bin() -> str:
    return require_tool(str(tools_dir() / "bin" / "actionlint"), "actionlint", "run `make tools` (scripts/tools.sh)")


def groovy_bin() -> str:
    return require_tool(shutil.which("groovy"), "groovy", "apt-get install groovy (scripts/apt-packages-cicd.txt)")


def load_yaml(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    # PyYAML reads the key `on` as the boolean True (YAML 1.1).
    if True in data:
        data["on"] = data.pop(True)
    return data


@pytest.fixture(scope="session")
def workflows() -> dict[str, dict]:
    assert WORKFLOWS, "no .github/workflows/*.yml"
    return {p.name: load_yaml(p) for p in WORKFLOWS}
