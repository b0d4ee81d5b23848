"""make tf-plan / tf-apply with the real OpenTofu engine and an S3 backend (moto server), on a tiny module.

Why a tiny module: this checks the CI mechanics deploy.yml relies on (S3 state with a lock file, the
image digests reaching the plan, -detailed-exitcode, applying exactly the saved plan, a stale plan
refused, outputs.json for the smoke test) in seconds; the real root module is planned and applied against
the emulator by the infra tests (tf-plan-local / tf-apply-local).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from .conftest import ROOT, require_tool, tools_dir

MODULE = """
terraform {
  backend "s3" {}
}
variable "environment" { type = string }
variable "serving_image_uri" {
  type    = string
  default = null
}
variable "training_image_uri" {
  type    = string
  default = null
}
variable "lambda_image_uri" {
  type    = string
  default = null
}
resource "terraform_data" "images" {
  input = { serving = var.serving_image_uri, training = var.training_image_uri, lambda = var.lambda_image_uri }
}
output "serving_url" { value = "http://${var.environment}.example.invalid" }
output "serving_image" { value = terraform_data.images.output.serving }
"""
REG = "123456789012.dkr.ecr.us-east-1.amazonaws.com/esteira-prod"


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.infra.conftest import moto_server

    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as moto:
        yield moto.url


@pytest.fixture
def tofu_env(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    require_tool(str(tools_dir() / "bin" / "tf"), "Terraform engine (bin/tf)", "run `make tools` (scripts/tools.sh)")
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")  # fmt: skip
    bucket = f"state-{tmp_path.name.lower().replace('_', '-')}"[:60]
    s3.create_bucket(Bucket=bucket)
    module = tmp_path / "module"
    (module / "envs").mkdir(parents=True)
    (module / "main.tf").write_text(MODULE)
    (module / "envs" / "prod.tfvars").write_text('environment = "prod"\n')
    backend = (
        f"'-backend-config=endpoints={{s3=\"{s3_endpoint}\"}}' -backend-config=use_path_style=true "
        "-backend-config=skip_credentials_validation=true -backend-config=skip_requesting_account_id=true "
        "-backend-config=skip_metadata_api_check=true"
    )
    env.update(
        {"BUCKET": bucket, "ENDPOINT": s3_endpoint, "MODULE": str(module), "WORK": str(tmp_path / "work"),
         "BACKEND": backend}
    )  # fmt: skip
    return env


def make(env: dict[str, str], target: str, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [
        "make",
        target,
        f"CI_TF_DIR={env['MODULE']}",
        f"TF_WORK={env['WORK']}",
        f"TF_STATE_BUCKET={env['BUCKET']}",
        "DEPLOY_ENV=prod",
        f"TF_BACKEND_ARGS={env['BACKEND']}",
        *extra,
    ]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def digest(c: str) -> str:
    return f"{REG}/serving@sha256:{c * 64}"


def test_plan_apply_saved_plan_and_stale_plan(tofu_env: dict[str, str]) -> None:
    work = Path(tofu_env["WORK"])
    first = make(tofu_env, "tf-plan", f"SERVING_IMAGE={digest('a')}")
    assert first.returncode == 0, first.stdout + first.stderr
    assert (work / "plan.exitcode").read_text().strip() == "2"  # changes
    assert digest("a") in (work / "plan.txt").read_text()
    shutil.copy(work / "tfplan", work / "tfplan.a")

    applied = make(tofu_env, "tf-apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    outputs = json.loads((work / "outputs.json").read_text())
    assert outputs["serving_image"]["value"] == digest("a")
    assert outputs["serving_url"]["value"] == "http://prod.example.invalid"
    s3 = boto3.client("s3", endpoint_url=tofu_env["ENDPOINT"], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=tofu_env["BUCKET"])["Contents"]]
    assert "esteira/prod/terraform.tfstate" in keys

    again = make(tofu_env, "tf-plan", f"SERVING_IMAGE={digest('a')}")
    assert again.returncode == 0 and (work / "plan.exitcode").read_text().strip() == "0"  # nothing to do

    # The plan approved earlier is stale once the state moved on: apply must refuse it.
    shutil.copy(work / "tfplan.a", work / "tfplan")
    stale = make(tofu_env, "tf-apply")
    assert stale.returncode != 0
    assert "stale" in (stale.stdout + stale.stderr).lower()


def test_apply_without_a_saved_plan_refuses(tofu_env: dict[str, str]) -> None:
    proc = make(tofu_env, "tf-apply")
    assert proc.returncode != 0 and "no saved plan" in proc.stderr
