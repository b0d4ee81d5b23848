"""contract.yaml's names appear in both deployment paths: the Terraform source and the CDK template.

Fast (python-hcl2 and the in-process synth; no Terraform engine): every Lambda key, environment
variable name, alarm suffix and metric name, and the labels key and capture prefix. The plan-based
comparison of what both paths build is tests/cdk/test_parity.py (slow).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from .cfn import resolve, statements
from .conftest import REPO, Synth

TF = REPO / "infra" / "terraform"
CDK = REPO / "infra" / "cdk" / "esteira_cdk"
NAME = "esteira-dev"  # envs/dev.tfvars: <project>-<environment>


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    return yaml.safe_load((REPO / "contract.yaml").read_text())


def blocks(path: Path, kind: str) -> dict[str, Any]:
    """Top-level blocks of one kind in a .tf file, by (unquoted) name; locals merged."""
    document = hcl2.load(path.open())
    if kind == "locals":
        return {k: v for block in document.get("locals", []) for k, v in block.items()}
    found: dict[str, Any] = {}
    for block in document.get(kind, []):
        for name, body in block.items():
            if kind == "resource":
                found.update({f"{name.strip(chr(34))}.{n.strip(chr(34))}": b for n, b in body.items()})
            else:
                found[name.strip('"')] = body
    return found


def tf_sources() -> str:
    """The Terraform source without full-line comments (examples in comments are fine)."""
    lines = (line for p in sorted(TF.rglob("*.tf")) if ".terraform" not in p.parts for line in p.open())
    return "".join(line for line in lines if not line.lstrip().startswith(("#", "//")))


def cdk_sources() -> str:
    """The string literals of the CDK app's code, docstrings left out."""
    found = []
    for path in sorted(CDK.glob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        found += [
            f'"{n.value}"'
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
        ]
    return "\n".join(found)


def function_name(key: str) -> str:
    return f"{NAME}-{key.replace('_', '-')}"


# ---------------------------------------------------------------- Terraform source


def test_terraform_reads_the_contract_and_passes_its_names_on(contract: dict[str, Any]) -> None:
    root = TF / "main.tf"
    assert 'contract = yamldecode(file("${path.root}/../../contract.yaml"))' in root.read_text()
    modules = blocks(root, "module")
    passed = {
        ("serving", "service_name"): "serving_service_name",
        ("serving", "environment_names"): "serving_environment",
        ("serving", "image_variable"): "image_variable",
        ("mlflow", "image_variable"): "image_variable",
        ("workflow", "image_variable"): "image_variable",
        ("serving", "metrics_namespace"): "metrics.namespace",
        ("workflow", "function_keys"): "lambda_functions",
        ("workflow", "environment_names"): "workflow_environment",
        ("workflow", "template_variables"): "asl_variables",
        ("workflow", "labels_key"): "labels_key",
        ("workflow", "snapshots_prefix"): "snapshots_prefix",
        ("workflow", "metrics_namespace"): "metrics.namespace",
        ("monitoring", "alarm_suffixes"): "alarms.suffixes",
        ("monitoring", "metrics_namespace"): "metrics.namespace",
        ("monitoring", "service_dimension"): "metrics.dimensions.service",
        ("monitoring", "drift_metric_name"): "metrics.names.drift_score",
        ("monitoring", "low_confidence_metric_name"): "metrics.names.low_confidence_rate",
    }
    for (module, variable), key in passed.items():
        assert modules[module][variable] == f"${{local.contract.{key}}}", f"module.{module}.{variable}"
    prefixes = str(modules["workflow"]["alarm_prefixes"])
    assert "local.contract.alarms.retrain_prefix" in prefixes and "local.contract.alarms.canary_prefix" in prefixes
    assert "local.contract.capture.prefix" in blocks(root, "locals")["capture_s3_uri"]


def test_terraform_sets_exactly_the_contract_environment(contract: dict[str, Any]) -> None:
    workflow = blocks(TF / "modules/workflow/main.tf", "locals")["contract_environment"]
    assert sorted(workflow) == sorted(contract["workflow_environment"])
    serving = blocks(TF / "modules/serving/main.tf", "locals")["contract_environment"]
    assert sorted(serving) == sorted(contract["serving_environment"])


def test_terraform_gives_each_container_and_function_the_image_it_runs() -> None:
    """contract.yaml image_variable, set per resource to that resource's own image, outside the contract lists."""

    def squashed(value: Any) -> str:
        return re.sub(r"\s+", "", str(value))

    serving = blocks(TF / "modules/serving/main.tf", "locals")
    assert "image_variable" not in squashed(serving["contract_environment"])
    assert "{(var.image_variable)=var.image_uri}" in squashed(serving["environment"])
    assert "{name=var.image_variable,value=var.image_uri}" in squashed((TF / "modules/mlflow/main.tf").read_text())
    workflow = blocks(TF / "modules/workflow/main.tf", "locals")
    assert "image_variable" not in squashed(workflow["contract_environment"]) + squashed(workflow["environment"])
    assert "{(var.image_variable)=var.training_image_uri}" in squashed(workflow["train_environment"])
    assert "{(var.image_variable)=var.lambda_image_uri}" in squashed(workflow["function_environments"])
    assert workflow["definition_variables"] and "var.image_variable" in squashed(workflow["definition_variables"])
    resources = blocks(TF / "modules/workflow/main.tf", "resource")
    lambdas = resources["aws_lambda_function.this"]
    assert lambdas["environment"][0]["variables"] == "${local.function_environments[each.key]}"
    # The Fargate and the EC2 training task definitions share one container (local.train_container).
    assert "local.train_environment" in squashed(workflow["train_container"])
    for family in ("train", "train_ec2"):
        definitions = squashed(resources[f"aws_ecs_task_definition.{family}"]["container_definitions"])
        assert "local.train_container" in definitions, family


def test_terraform_sizes_exactly_the_contract_lambdas(contract: dict[str, Any]) -> None:
    functions = blocks(TF / "modules/workflow/variables.tf", "variable")["functions"]["default"]
    assert sorted(k.strip('"') for k in functions) == sorted(contract["lambda_functions"])
    lambdas = blocks(TF / "modules/workflow/main.tf", "resource")["aws_lambda_function.this"]
    assert lambdas["for_each"] == "${local.functions}"


def test_terraform_names_every_alarm_by_its_contract_suffix(contract: dict[str, Any]) -> None:
    alarms = {
        name.split(".", 1)[1]: body["alarm_name"]
        for name, body in blocks(TF / "modules/monitoring/main.tf", "resource").items()
        if name.startswith("aws_cloudwatch_metric_alarm.")
    }
    assert alarms == {purpose: f"${{local.alarm_names.{purpose}}}" for purpose in contract["alarms"]["suffixes"]}
    suffixes = blocks(TF / "modules/monitoring/variables.tf", "variable")["alarm_suffixes"]["type"]
    assert sorted(re.findall(r"(\w+)\s*=\s*string", str(suffixes))) == sorted(contract["alarms"]["suffixes"])


def test_no_contract_value_is_written_out_in_terraform_or_cdk(contract: dict[str, Any]) -> None:
    """The contract is the one definition: its values appear in neither source as literals."""
    literals = [
        *contract["alarms"]["suffixes"].values(),
        contract["labels_key"],
        f'"{contract["metrics"]["namespace"]}"',
        f'"{contract["metrics"]["names"]["drift_score"]}"',
        f'"{contract["metrics"]["names"]["low_confidence_rate"]}"',
        f'"{contract["serving_service_name"]}"',
        f"/{contract['capture']['prefix']}/",
        f"/{contract['snapshots_prefix']}/",
    ]
    for where, text in (("infra/terraform", tf_sources()), ("infra/cdk/esteira_cdk", cdk_sources())):
        assert [v for v in literals if v in text] == [], f"{where} writes out names contract.yaml defines"


# ---------------------------------------------------------------- CDK template


def test_the_template_has_every_contract_lambda_and_alarm(dev: Synth, contract: dict[str, Any]) -> None:
    names = {f["Properties"].get("FunctionName") for f in dev.resources("AWS::Lambda::Function").values()}
    assert {function_name(k) for k in contract["lambda_functions"]} == names - {None}
    alarms = {a["Properties"]["AlarmName"] for a in dev.resources("AWS::CloudWatch::Alarm").values()}
    assert alarms == {f"{NAME}-{s}" for s in contract["alarms"]["suffixes"].values()}


def test_the_template_sets_the_contract_environment(dev: Synth, contract: dict[str, Any]) -> None:
    from esteira_cdk.workflow import MLFLOW_CREDENTIALS_VARIABLE, MLFLOW_USERS

    workflow, serving = set(contract["workflow_environment"]), set(contract["serving_environment"])
    image = contract["image_variable"]
    # The functions that call MLflow are also told which credential to call it with (not a contract name).
    mlflow_callers = {function_name(k) for k in MLFLOW_USERS}
    for fn in dev.resources("AWS::Lambda::Function").values():
        if "FunctionName" in fn["Properties"]:
            env = fn["Properties"]["Environment"]["Variables"]
            extra = {MLFLOW_CREDENTIALS_VARIABLE} if fn["Properties"]["FunctionName"] in mlflow_callers else set()
            assert set(env) == workflow | {image} | extra, fn["Properties"]["FunctionName"]
            assert resolve(env[image]) == resolve(fn["Properties"]["Code"]["ImageUri"])
            assert env["ESTEIRA_RETRAIN_ALARM_PREFIX"] == f"{NAME}{contract['alarms']['retrain_prefix']}"
            assert env["ESTEIRA_CANARY_ALARM_PREFIX"] == f"{NAME}{contract['alarms']['canary_prefix']}"
            assert env["ESTEIRA_METRICS_NAMESPACE"] == contract["metrics"]["namespace"]
            assert str(resolve(env["ESTEIRA_LABELS_URI"])).endswith(f"/{contract['labels_key']}")
            assert str(resolve(env["ESTEIRA_SNAPSHOT_URI"])).endswith(f"/{contract['snapshots_prefix']}/")
            assert str(resolve(env["ESTEIRA_CAPTURE_S3_URI"])).endswith(f"/{contract['capture']['prefix']}/")
    families = {}
    for task in dev.resources("AWS::ECS::TaskDefinition").values():
        (container, *_) = task["Properties"]["ContainerDefinitions"]
        env = {e["Name"]: e["Value"] for e in container.get("Environment", [])}
        # Every container is told the image it runs.
        assert resolve(env.get(image)) == resolve(container["Image"]), task["Properties"]["Family"]
        families[task["Properties"]["Family"]] = set(env)
    assert families[f"{NAME}-train"] == workflow | {image}
    assert families[f"{NAME}-serving"] == serving | {image}
    assert image in families[f"{NAME}-mlflow"]


def test_the_image_variable_follows_the_image_overrides(tmp_path_factory: pytest.TempPathFactory) -> None:
    """With explicit image URIs (deploy.yml pins them by digest) each resource is told the one it runs."""
    from .conftest import synthesise

    registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com/esteira"
    digest = "@sha256:" + "0" * 64
    images = {k: f"{registry}/{k}{digest}" for k in ("serving", "training", "lambda", "mlflow")}
    pinned = synthesise(
        tmp_path_factory.mktemp("cdk-pinned"),
        "dev",
        {f"{k}_image_uri": uri for k, uri in images.items()} | {"training_backend": "sagemaker"},
    )
    variable = yaml.safe_load((REPO / "contract.yaml").read_text())["image_variable"]
    told = {
        task["Properties"]["Family"]: {
            e["Name"]: e["Value"] for e in task["Properties"]["ContainerDefinitions"][0]["Environment"]
        }[variable]
        for task in pinned.resources("AWS::ECS::TaskDefinition").values()
    }
    assert told == {
        f"{NAME}-serving": images["serving"],
        f"{NAME}-train": images["training"],
        f"{NAME}-mlflow": images["mlflow"],
    }
    functions = [f for f in pinned.resources("AWS::Lambda::Function").values() if "FunctionName" in f["Properties"]]
    assert {f["Properties"]["Environment"]["Variables"][variable] for f in functions} == {images["lambda"]}
    machine = pinned.state_machine()
    document = json.loads(resolve(machine["Properties"]["DefinitionString"]))
    (job,) = [s for s in document["States"].values() if "createTrainingJob" in str(s.get("Resource", ""))]
    assert job["Parameters"]["AlgorithmSpecification"]["TrainingImage"] == images["training"]
    training_environment = document["States"]["MergeInput"]["Parameters"]["training_image_environment"]
    assert training_environment[variable] == images["training"]
    assert set(training_environment) == {variable, "ESTEIRA_MLFLOW_CREDENTIALS_SECRET"}


def test_the_template_uses_the_contract_metrics(dev: Synth, contract: dict[str, Any]) -> None:
    metrics = contract["metrics"]
    by_name = {a["Properties"]["AlarmName"]: a["Properties"] for a in dev.resources("AWS::CloudWatch::Alarm").values()}
    for purpose, metric in (("drift", "drift_score"), ("low_confidence", "low_confidence_rate")):
        alarm = by_name[f"{NAME}-{contract['alarms']['suffixes'][purpose]}"]
        assert (alarm["Namespace"], alarm["MetricName"]) == (metrics["namespace"], metrics["names"][metric])
        assert [d["Name"] for d in alarm["Dimensions"]] == [metrics["dimensions"]["service"]]
    conditions = [s["Condition"] for _, s in statements(dev.template) if "cloudwatch:PutMetricData" in str(s["Action"])]
    assert conditions and all(c == {"StringEquals": {"cloudwatch:namespace": metrics["namespace"]}} for c in conditions)
