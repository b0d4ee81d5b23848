"""cfn-lint must be clean on the synthesised template (the CloudFormation counterpart of tflint/validate)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Synth

# W3005 "dependency already enforced": CDK writes DependsOn next to a Ref/GetAtt on the same resource
# (e.g. a Lambda on its role). Redundant, harmless, and the CDK's output rather than ours.
IGNORED = {"W3005": "CDK emits DependsOn that a Ref/GetAtt already implies"}


def cfn_lint(template: Path) -> list[dict]:
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            "--format",
            "json",
            "--ignore-checks",
            *IGNORED,
            "--",
            str(template),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # cfn-lint exits non-zero when it finds problems; a crash prints no JSON (so "no output" is a failure).
    try:
        return list(json.loads(proc.stdout))
    except json.JSONDecodeError:
        pytest.fail(f"cfn-lint did not run (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        raise


@pytest.mark.slow  # cfn-lint over the whole template: ~40 s
def test_cfn_lint_is_clean(dev: Synth) -> None:
    problems = cfn_lint(dev.path)
    report = "\n".join(f"{p['Rule']['Id']} {p['Location']['Path']}: {p['Message']}" for p in problems)
    assert not problems, f"cfn-lint found {len(problems)} problem(s):\n{report}"


def test_cfn_lint_harness_reports_problems(tmp_path: Path) -> None:
    """The clean result above means something: the same call flags a broken template."""
    broken = {
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"VersioningConfiguration": {"Status": "Sometimes"}}},
            "Queue": {"Type": "AWS::SQS::Queue", "DependsOn": "Missing"},
        }
    }
    path = tmp_path / "broken.template.json"
    path.write_text(json.dumps(broken))
    rules = {p["Rule"]["Id"] for p in cfn_lint(path)}
    assert rules, "cfn-lint reported nothing for a broken template"
