"""One `tofu show -json` of a plan of the root module against a moto server, shared by the test modules
that read the rendered policies (test_escalation.py, test_first_apply.py) and made once per session.

The plan is dev.tfvars with the SageMaker training backend and the EC2 training capacity: the same
stack plus the SageMaker role and the EC2 hosts' role, so every role the stack can create is in it.
Planning creates nothing, so moto only has to answer the provider's reads (caller identity,
availability zones, the ECS-optimised AMI parameter); every value derived from names is known.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import BIN, TOOLS_DIR, Tofu, moto_server, require, stage_tree, tofu_env

PLAN_VARS = ("-var-file=envs/dev.tfvars", "-var=training_backend=sagemaker", "-var=ec2_training={enabled=true}")
_PLANS: dict[tuple[str, ...], dict[str, Any]] = {}


def dev_plan(tmp_path_factory: pytest.TempPathFactory, *extra: str) -> dict[str, Any]:
    """The plan JSON (cached per set of -var arguments for the session)."""
    key = (*PLAN_VARS, *extra)
    if key not in _PLANS:
        _PLANS[key] = _plan(tmp_path_factory.mktemp("tf-planned"), key)
    return _PLANS[key]


def _plan(workdir: Path, var_args: tuple[str, ...]) -> dict[str, Any]:
    tofu_bin = require(BIN / "tf", "Terraform engine (bin/tf)")
    require(TOOLS_DIR / "tofurc", "tofu CLI config (tofurc)")
    tofu = Tofu(tofu_bin, stage_tree(workdir), tofu_env())
    tofu.run("init", "-no-color", timeout=600)
    with moto_server(workdir / "moto.log") as moto:
        out_file = workdir / "plan.bin"
        endpoint = f"-var=aws_endpoint_url={moto.url}"
        tofu.run("plan", "-no-color", "-lock=false", f"-out={out_file}", *var_args, endpoint, timeout=900)
        return tofu.show_json(str(out_file))


# ---- reading the plan
def resources(plan: dict[str, Any], tf_type: str, mode: str = "managed") -> dict[str, dict[str, Any]]:
    """Planned `after` values by address (data sources read at apply included, with their unknowns)."""
    return {
        c["address"]: c["change"]["after"] or {}
        for c in plan["resource_changes"]
        if c["type"] == tf_type and c["mode"] == mode and c["change"]["actions"] != ["delete"]
    }


def read_data(plan: dict[str, Any], tf_type: str) -> dict[str, dict[str, Any]]:
    """Data sources of one type read during the plan (every input known): address -> values."""

    def walk(module: dict[str, Any]) -> Any:
        yield from module.get("resources", [])
        for child in module.get("child_modules", []):
            yield from walk(child)

    root = plan.get("prior_state", {}).get("values", {}).get("root_module", {})
    return {r["address"]: r["values"] for r in walk(root) if r.get("mode") == "data" and r["type"] == tf_type}


def read_documents(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """aws_iam_policy_document data sources read during the plan: address -> values."""
    return read_data(plan, "aws_iam_policy_document")


def account_id(plan: dict[str, Any]) -> str:
    """The account the plan was made in (data.aws_caller_identity.current of the root module)."""
    root = plan["prior_state"]["values"]["root_module"]
    (identity,) = [r for r in root["resources"] if r["address"] == "data.aws_caller_identity.current"]
    return str(identity["values"]["account_id"])
