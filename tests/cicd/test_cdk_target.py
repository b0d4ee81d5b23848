"""make ci-cdk: a no-op until the CDK app exists, then a real offline synth + cfn-lint that can fail."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT

APP = """
import aws_cdk as cdk
from aws_cdk import aws_s3 as s3

app = cdk.App()
stack = cdk.Stack(app, "CiProbe")
s3.Bucket(stack, "Data", encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True)
{extra}
app.synth()
"""


def ci_cdk(app: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "ci-cdk", f"CDK_APP={app}", f"CDK_OUT={out}"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_skips_until_the_app_exists(tmp_path: Path) -> None:
    proc = ci_cdk(tmp_path / "missing.py", tmp_path / "out")
    assert proc.returncode == 0 and "not there yet" in proc.stdout


@pytest.mark.slow
def test_synth_and_cfn_lint(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text(APP.format(extra=""))
    proc = ci_cdk(good, tmp_path / "good.out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cfn-lint clean: 1 template(s)" in proc.stdout
    # An invalid property value in the template must fail the target (cfn-lint E-rule).
    bad = tmp_path / "bad.py"
    bad.write_text(
        APP.format(extra='cdk.CfnResource(stack, "Bad", type="AWS::SQS::Queue", properties={"DelaySeconds": "soon"})')
    )
    proc = ci_cdk(bad, tmp_path / "bad.out")
    assert proc.returncode != 0
    assert "DelaySeconds" in proc.stdout + proc.stderr
