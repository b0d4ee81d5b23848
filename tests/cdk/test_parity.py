"""Parity: the Terraform plan and the CDK template create the same kinds of AWS resources.

The Terraform side is `tofu show -json` of a plan of infra/terraform with envs/dev.tfvars against a
moto server (the infra tests' toolchain and staging). The CDK side is the dev template. Any
difference not listed with a reason in infra/cdk/parity_exceptions.yaml fails.

Without the pinned tofu the plan test skips locally and fails in CI (CI=true). A LOCAL FALLBACK
(test_parity_with_terraform_source) reads the resource types from the .tf source with python-hcl2;
it cannot evaluate count/for_each, so it checks type presence only and never replaces the plan in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, Synth
from .parity import (
    cloudformation_types,
    compare,
    load_exceptions,
    terraform_types_from_plan,
    terraform_types_from_source,
)

EXCEPTIONS = REPO / "infra" / "cdk" / "parity_exceptions.yaml"
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def exceptions() -> dict[str, Any]:
    return load_exceptions(EXCEPTIONS)


@pytest.fixture(scope="session")
def terraform_plan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`tofu show -json` of the dev plan against a moto server, staged exactly as tests/infra does."""
    from tests.infra.conftest import BIN, TOOLS_DIR, Moto, Tofu, free_port, require, stage_tree, tofu_env
    from tests.infra.test_emulator import var_args

    tofu_bin = require(BIN / "tf", "Terraform engine (bin/tf)")
    require(TOOLS_DIR / "tofurc", "tofu CLI config (tofurc)")
    workdir = tmp_path_factory.mktemp("parity-tf")
    tofu = Tofu(tofu_bin, stage_tree(workdir), tofu_env())
    tofu.run("init", "-no-color", timeout=600)

    port = free_port()
    log = workdir / "moto.log"
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
        plan_file = workdir / "plan.bin"
        # Plan what a real account gets: the emulator-only switches (which turn off what moto cannot
        # *create*) stay at their defaults, since planning creates nothing.
        real_account_args = [a for a in var_args(moto) if not a.startswith("-var=enable_")]
        tofu.run("plan", "-no-color", "-lock=false", f"-out={plan_file}", *real_account_args, timeout=900)
        yield tofu.show_json(str(plan_file))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir / "infra" / "terraform" / ".terraform", ignore_errors=True)


def report(problems: list[str], terraform: Counter[str], cloudformation: Counter[str]) -> str:
    lines = ["Unexplained differences (fix the app or add an entry with a reason to infra/cdk/parity_exceptions.yaml):"]
    lines += [f"  - {p}" for p in problems]
    lines += ["Terraform:", *(f"  {n:3d} {t}" for t, n in sorted(terraform.items()))]
    lines += ["CloudFormation:", *(f"  {n:3d} {t}" for t, n in sorted(cloudformation.items()))]
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.infra
def test_parity_with_terraform_plan(dev: Synth, terraform_plan: dict[str, Any], exceptions: dict[str, Any]) -> None:
    terraform = terraform_types_from_plan(terraform_plan)
    assert sum(terraform.values()) > 100, "the plan holds too few resources to compare"
    cloudformation = cloudformation_types(dev.template)
    problems = compare(terraform, cloudformation, exceptions, counts=True)
    assert not problems, report(problems, terraform, cloudformation)


@pytest.mark.skipif(IN_CI, reason="local fallback only: CI compares with the tofu plan")
def test_parity_with_terraform_source(dev: Synth, exceptions: dict[str, Any]) -> None:
    """LOCAL FALLBACK (types from the .tf source, presence only). The plan test above is the real one."""
    terraform = terraform_types_from_source(REPO / "infra" / "terraform")
    assert len(terraform) > 40
    cloudformation = cloudformation_types(dev.template)
    problems = compare(terraform, cloudformation, exceptions, counts=False, source_only=True)
    assert not problems, report(problems, terraform, cloudformation)


# ---- the comparison itself must be able to fail


def test_compare_flags_a_resource_missing_from_the_template() -> None:
    terraform = Counter({"aws_sns_topic": 1, "aws_kms_key": 1})
    cloudformation = Counter({"AWS::KMS::Key": 1})
    empty: dict[str, Any] = {"terraform_only": {}, "cloudformation_only": {}, "count_differences": {}}
    assert compare(terraform, cloudformation, empty, counts=True) == [
        "AWS::SNS::Topic: Terraform creates 1 (aws_sns_topic), the CDK template none"
    ]


def test_compare_flags_unmapped_and_extra_types_and_count_drift() -> None:
    empty: dict[str, Any] = {"terraform_only": {}, "cloudformation_only": {}, "count_differences": {}}
    problems = compare(
        Counter({"aws_made_up": 1, "aws_lambda_function": 10}),
        Counter({"AWS::Lambda::Function": 11, "AWS::SQS::Queue": 1}),
        empty,
        counts=True,
    )
    assert any(p.startswith("aws_made_up:") for p in problems)
    assert any(p.startswith("AWS::SQS::Queue:") for p in problems)
    assert any(p.startswith("AWS::Lambda::Function: Terraform 10, CDK 11") for p in problems)
    allowed = {
        **empty,
        "count_differences": {"AWS::Lambda::Function": {"delta": 1, "reason": "a custom resource provider"}},
    }
    assert (
        compare(Counter({"aws_lambda_function": 10}), Counter({"AWS::Lambda::Function": 11}), allowed, counts=True)
        == []
    )


def test_compare_flags_stale_exceptions() -> None:
    stale = {
        "terraform_only": {"aws_s3_bucket_logging": "property of the bucket"},
        "cloudformation_only": {},
        "count_differences": {},
    }
    assert compare(Counter(), Counter(), stale, counts=True) == [
        "terraform_only.aws_s3_bucket_logging: Terraform no longer has it"
    ]


def test_every_exception_has_a_reason(tmp_path: Path) -> None:
    bad = tmp_path / "exceptions.yaml"
    bad.write_text("terraform_only:\n  aws_s3_bucket_logging: ''\n")
    with pytest.raises(ValueError, match="needs a reason"):
        load_exceptions(bad)


def test_compare_flags_a_count_exception_that_no_longer_applies() -> None:
    listed = {
        "terraform_only": {},
        "cloudformation_only": {},
        "count_differences": {"AWS::Lambda::Function": {"delta": 2, "reason": "custom resource providers"}},
    }
    assert compare(
        Counter({"aws_lambda_function": 10}), Counter({"AWS::Lambda::Function": 10}), listed, counts=True
    ) == ["count_differences.AWS::Lambda::Function: delta is now +0, listed +2"]
