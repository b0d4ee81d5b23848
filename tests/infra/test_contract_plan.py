"""Terraform refuses to plan a configuration that disagrees with contract.yaml.

The workflow and serving modules set exactly the contract's environment variable names, create
exactly its Lambdas and give every ASL template variable it lists a value; lifecycle preconditions
check each. Here the staged contract is changed one way at a time and the plan must fail, naming the
difference. (The plan of the real contract is tests/infra/test_emulator.py and tests/cdk/test_parity.py.)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import CONTRACT, Tofu, moto_server, stage_tree, tofu_env

pytestmark = [pytest.mark.infra, pytest.mark.slow]


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory, tofu_bin: Path, provider_mirror: Path) -> Iterator[Tofu]:
    tofu = Tofu(tofu_bin, stage_tree(tmp_path_factory.mktemp("tf-contract")), tofu_env())
    tofu.run("init", "-no-color", timeout=600)
    yield tofu
    (tofu.workdir.parents[1] / "contract.yaml").write_text(CONTRACT.read_text())


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as moto:
        yield moto.url


def _append(key: str, value: str) -> Callable[[dict[str, Any]], None]:
    return lambda c: c[key].append(value)


CASES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "a Lambda without settings": (_append("lambda_functions", "ghost"), "names the Lambda ghost"),
    "settings for a Lambda the contract drops": (
        lambda c: c["lambda_functions"].remove("canary_check"),
        "var.functions sizes canary_check",
    ),
    "a workflow variable nobody sets": (
        _append("workflow_environment", "ESTEIRA_NOT_SET"),
        "workflow environment differs from contract.yaml workflow_environment in: ESTEIRA_NOT_SET",
    ),
    "a serving variable set but not in the contract": (
        lambda c: c["serving_environment"].remove("ESTEIRA_SHADOW_URL"),
        "serving environment differs from contract.yaml serving_environment in: ESTEIRA_SHADOW_URL",
    ),
    "an ASL variable with no value": (_append("asl_variables", "no_such_value"), "no_such_value"),
    "the image variable in a contract list": (
        lambda c: c["workflow_environment"].append(c["image_variable"]),
        f"workflow_environment names {yaml.safe_load(CONTRACT.read_text())['image_variable']}, the image_variable",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_plan_that_disagrees_with_the_contract_fails(staged: Tofu, moto_url: str, case: str) -> None:
    mutate, message = CASES[case]
    document = copy.deepcopy(yaml.safe_load(CONTRACT.read_text()))
    mutate(document)
    (staged.workdir.parents[1] / "contract.yaml").write_text(yaml.safe_dump(document))
    args = ["-var-file=envs/dev.tfvars", f"-var=aws_endpoint_url={moto_url}"]
    proc = staged.run("plan", "-no-color", "-lock=false", "-refresh=false", *args, timeout=900, check=False)
    output = " ".join((proc.stdout + proc.stderr).replace("│", " ").split())
    assert proc.returncode != 0, f"{case}: the plan succeeded"
    assert "precondition failed" in output and message in output, output[-3000:]
