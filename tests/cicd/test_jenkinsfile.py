"""The Jenkinsfile, parsed by Groovy's compiler (Debian groovy) and checked for its required shape."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, groovy_bin

CHECK = ROOT / "scripts" / "jenkinsfile-check.sh"
SECRET_PATTERNS = [
    r"AKIA[0-9A-Z]{16}",  # AWS access key id
    r"ghp_[A-Za-z0-9]{20,}",
    r"github_pat_[A-Za-z0-9_]{20,}",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    r"(?i)(password|secret|token)\s*[:=]\s*['\"][^'\"]{6,}['\"]",
]


def parse(path: Path) -> subprocess.CompletedProcess[str]:
    groovy_bin()
    return subprocess.run(["bash", str(CHECK), str(path)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def pipeline() -> dict[str, Any]:
    proc = parse(ROOT / "Jenkinsfile")
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def stage(pipeline: dict[str, Any], name: str) -> dict[str, Any]:
    found = [s for s in pipeline["stages"] if s["name"] == name]
    assert found, f"no stage {name!r}; stages: {[s['name'] for s in pipeline['stages']]}"
    return dict(found[0])


def test_required_stages_in_order(pipeline: dict[str, Any]) -> None:
    top = [s["name"] for s in pipeline["stages"] if len(s["path"]) == 1]
    assert top == [
        "Checkout",
        "Toolchain",
        "Lint",
        "Unit tests",
        "Integration tests (emulator)",
        "Images",
        "Publish reports",
        "Trigger deploy",
    ]


def test_every_stage_calls_make(pipeline: dict[str, Any]) -> None:
    for s in pipeline["stages"]:
        if s["steps"] or s["sh"]:  # 'Lint' only groups parallel stages
            assert s["sh"], f"stage {s['name']!r} runs no make target"
        for cmd in s["sh"]:
            assert cmd.startswith("make "), f"stage {s['name']!r}: {cmd!r} is not a make target"
    for cmd in pipeline["top"]["sh"]:
        assert cmd.startswith("make "), cmd


def test_lint_covers_the_linters(pipeline: dict[str, Any]) -> None:
    lint = [s for s in pipeline["stages"] if s["path"][0] == "Lint"]
    cmds = " ".join(c for s in lint for c in s["sh"])
    for target in ("make lint", "tf-fmt", "tf-lint", "lint-ci"):
        assert target in cmds


def test_images_and_deploy_only_on_main_with_bound_credentials(pipeline: dict[str, Any]) -> None:
    images = stage(pipeline, "Images")
    assert images["branches"] == ["main"]
    assert any("docker" in label for label in images["labels"]), "declare a Docker-capable agent label"
    assert "withCredentials" in images["steps"] and images["credentials"]
    assert "images" in images["sh"][0] and "push-images" in images["sh"][0]
    deploy = stage(pipeline, "Trigger deploy")
    assert deploy["branches"] == ["main"]
    assert "withCredentials" in deploy["steps"] and deploy["credentials"]
    # GitHub Actions applies (deploy.yml) unless the job's ESTEIRA_DELIVERY hands over to CodePipeline.
    assert sorted(deploy["sh"]) == ["make publish-release", "make trigger-deploy"]
    for name in ("Unit tests", "Integration tests (emulator)", "Publish reports"):
        assert not stage(pipeline, name)["branches"], f"{name} runs on every branch"


def test_reports_published(pipeline: dict[str, Any]) -> None:
    assert "junit" in stage(pipeline, "Unit tests")["steps"]
    assert "junit" in stage(pipeline, "Integration tests (emulator)")["steps"]
    assert "recordCoverage" in stage(pipeline, "Publish reports")["steps"]


def test_no_secret_in_the_file() -> None:
    text = (ROOT / "Jenkinsfile").read_text()
    for pattern in SECRET_PATTERNS:
        assert not re.search(pattern, text), pattern
    assert "withCredentials" in text


def test_parser_rejects_a_broken_jenkinsfile(tmp_path: Path) -> None:
    broken = tmp_path / "Jenkinsfile"
    broken.write_text((ROOT / "Jenkinsfile").read_text().replace("stage('Toolchain') {", "stage('Toolchain') ", 1))
    proc = parse(broken)
    assert proc.returncode == 2
    assert "syntax error" in proc.stderr
