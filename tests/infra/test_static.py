"""Static checks of the Terraform tree: fmt, validate, tflint, checkov, ASL template contract."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import ASL, BIN, CONTRACT, RELEASE, REPO, TF_DIR, Tofu, require, tofu_env
from .iam_policies import allows, decision, escalations, is_allow_all, roles_without_boundary, violations

pytestmark = pytest.mark.infra

# The variables the workflow module passes to templatefile(); the ASL may use any subset.
FUNCTIONS = list(yaml.safe_load(CONTRACT.read_text())["lambda_functions"])
TEMPLATE_VARS = {
    f"{f}_function_arn": f"arn:aws:lambda:us-east-1:123456789012:function:esteira-dev-{f}" for f in FUNCTIONS
} | {
    "sns_topic_arn": "arn:aws:sns:us-east-1:123456789012:esteira-dev-notifications",
    "ecs_cluster_arn": "arn:aws:ecs:us-east-1:123456789012:cluster/esteira-dev",
    "train_task_definition_arn": "arn:aws:ecs:us-east-1:123456789012:task-definition/esteira-dev-train:1",
    "train_container_name": "train",
    "train_subnets": "subnet-0a,subnet-0b",
    "train_security_groups": "sg-0a",
    "training_backend": "ecs",
    "sagemaker_enabled": "false",
    "ec2_training_enabled": "true",
    "ec2_capacity_provider": "esteira-dev-ec2-training",
    "train_ec2_task_definition_arn": "arn:aws:ecs:us-east-1:123456789012:task-definition/esteira-dev-train-ec2:1",
    "sagemaker_role_arn": "",
    "training_image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/esteira-dev/training:0.1.0",
    "image_variable": yaml.safe_load(CONTRACT.read_text())["image_variable"],
    "mlflow_credentials_secret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:esteira-dev/mlflow/workflow-A1",
    "lock_table_name": "esteira-dev-workflow-lock",
    "data_bucket": "esteira-dev-data-123456789012",
    "artifacts_bucket": "esteira-dev-artifacts-123456789012",
    "deployment_strategy": "all_at_once",
    "canary_steps": "[10, 50, 100]",
    "canary_bake_seconds": "600",
    "shadow_seconds": "1800",
    "release_state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:esteira-dev-release",
}


def test_fmt(tofu_bin: Path) -> None:
    proc = subprocess.run(
        [str(tofu_bin), "fmt", "-check", "-recursive", "-diff", str(TF_DIR)],
        capture_output=True,
        text=True,
        env=tofu_env(),
        timeout=120,
    )
    assert proc.returncode == 0, f"tofu fmt found unformatted files:\n{proc.stdout}{proc.stderr}"


def test_validate(initialized: Tofu) -> None:
    result = json.loads(initialized.run("validate", "-json", "-no-color", check=False).stdout)
    problems = [
        f"{d['severity']}: {d['summary']}: {d.get('detail', '')} ({d.get('range', {}).get('filename')})"
        for d in result["diagnostics"]
    ]
    assert result["valid"], "\n".join(problems)
    assert not problems, "validate is clean but warns:\n" + "\n".join(problems)


def test_the_provider_in_use_serves_every_aws_type_the_configuration_uses(initialized: Tofu) -> None:
    """Offline, tools.sh builds the provider cut to the services infra/ uses: a new type from a new
    service must fail here, naming it, until `make tools` rebuilds (the cut is derived, not typed)."""
    sys.path.insert(0, str(REPO / "scripts"))
    import provider_services

    schema = json.loads(initialized.run("providers", "schema", "-json", timeout=300).stdout)
    (aws,) = [v for k, v in schema["provider_schemas"].items() if k.endswith("/hashicorp/aws")]
    served = {
        "resource": set(aws.get("resource_schemas", {})),
        "data": set(aws.get("data_source_schemas", {})),
        "ephemeral": set(aws.get("ephemeral_resource_schemas", {})),
    }
    used = provider_services.config_types(REPO / "infra")
    missing = sorted(f'{kind} "{t}"' for t, kinds in used.items() for kind in kinds if t not in served[kind])
    assert not missing, f"the AWS provider in use does not serve {missing}: run `make tools` to rebuild it"


def test_tflint() -> None:
    tflint = require(BIN / "tflint", "tflint")
    proc = subprocess.run(
        [str(tflint), "--recursive", f"--config={TF_DIR / '.tflint.hcl'}", "--format=compact", "--no-color"],
        cwd=TF_DIR,
        capture_output=True,
        text=True,
        env=tofu_env(),
        timeout=300,
    )
    assert proc.returncode == 0, f"tflint:\n{proc.stdout}{proc.stderr}"


@pytest.mark.slow  # ~35 s on 2 cores
def test_checkov_no_failed_checks_and_every_skip_has_a_reason() -> None:
    checkov = require(BIN / "checkov", "checkov")
    proc = subprocess.run(
        [
            str(checkov),
            "--directory",
            str(TF_DIR),
            "--framework",
            "terraform",
            "--output",
            "json",
            "--skip-download",
            "--download-external-modules",
            "false",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode in (0, 1), f"checkov crashed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [c for r in reports for c in r["results"]["failed_checks"]]
    passed = sum(r["summary"]["passed"] for r in reports)
    skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
    assert passed > 200, f"checkov passed only {passed} checks: is it scanning the tree?"
    assert not failed, "checkov failed checks:\n" + "\n".join(
        f"{c['check_id']} {c['resource']} {c['file_path']}:{c['file_line_range']}" for c in failed
    )
    no_reason = [
        c["check_id"] + " " + c["resource"]
        for c in skipped
        if not (c.get("check_result", {}).get("suppress_comment") or "").strip()
        or c["check_result"]["suppress_comment"] == "No comment provided"
    ]
    assert not no_reason, f"skips without a reason: {no_reason}"


def render_asl(variables: dict[str, str], path: Path = ASL) -> dict:
    text = path.read_text()
    used = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text))
    unknown = used - variables.keys()
    assert not unknown, f"ASL uses variables Terraform does not pass: {sorted(unknown)}"
    return json.loads(re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda m: variables[m.group(1)], text))


def asl_problems(definition: dict) -> list[str]:
    """Structural ASL checks: every transition lands on a state, every state is reachable, ends exist."""
    states = definition["States"]
    problems = [] if definition["StartAt"] in states else [f"StartAt {definition['StartAt']} missing"]
    edges: dict[str, set[str]] = {}
    for name, state in states.items():
        targets = {state[k] for k in ("Next", "Default") if k in state}
        targets |= {c["Next"] for c in state.get("Choices", [])}
        targets |= {c["Next"] for c in state.get("Catch", [])}
        edges[name] = targets
        problems += [f"{name} -> {t}: no such state" for t in targets if t not in states]
        terminal = state["Type"] in ("Succeed", "Fail") or state.get("End") is True
        if not terminal and "Next" not in state and state["Type"] != "Choice":
            problems.append(f"{name}: neither Next nor End")
    seen, todo = set(), [definition["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        todo += edges[name]
    problems += [f"{name}: unreachable" for name in states if name not in seen]
    return problems


def test_state_machine_template_renders_to_valid_asl() -> None:
    definition = render_asl(TEMPLATE_VARS)
    assert not asl_problems(definition)
    resources = {s.get("Resource") for s in definition["States"].values()}
    assert "arn:aws:states:::ecs:runTask.sync" in resources, "training must run as an ECS task"
    release = render_asl(TEMPLATE_VARS, RELEASE)
    assert not asl_problems(release)
    (start,) = [
        s for s in definition["States"].values() if s.get("Resource", "").startswith("arn:aws:states:::states:")
    ]
    assert start["Resource"] == "arn:aws:states:::states:startExecution.sync:2"
    assert start["Parameters"]["StateMachineArn"] == TEMPLATE_VARS["release_state_machine_arn"]


def test_the_sagemaker_training_job_runs_in_the_private_subnets() -> None:
    """In VPC mode, with the training task's subnets and security group, or it cannot reach MLflow."""
    definition = render_asl(
        TEMPLATE_VARS | {"training_backend": "sagemaker", "sagemaker_role_arn": "arn:aws:iam::1:role/x"}
    )
    (job,) = [s for s in definition["States"].values() if "sagemaker:createTrainingJob" in s.get("Resource", "")]
    network = definition["States"]["TrainEcs"]["Parameters"]["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert job["Parameters"]["VpcConfig"] == {
        "Subnets.$": network["Subnets.$"],
        "SecurityGroupIds.$": network["SecurityGroups.$"],
    }
    assert job["Parameters"]["VpcConfig"] == {
        "Subnets.$": "States.StringSplit('subnet-0a,subnet-0b', ',')",
        "SecurityGroupIds.$": "States.StringSplit('sg-0a', ',')",
    }


def test_the_ec2_training_task_is_the_fargate_one_on_the_capacity_provider() -> None:
    """TrainEc2 differs from TrainEcs only in where it runs: the EC2 task definition and the capacity
    provider strategy (RunTask refuses a launch type beside a strategy). Same network, command, retries."""
    states = render_asl(TEMPLATE_VARS)["States"]
    fargate, ec2 = states["TrainEcs"], states["TrainEc2"]
    assert fargate["Parameters"].pop("LaunchType") == "FARGATE"
    assert ec2["Parameters"].pop("CapacityProviderStrategy") == [
        {"CapacityProvider": TEMPLATE_VARS["ec2_capacity_provider"], "Weight": 1}
    ]
    assert fargate["Parameters"].pop("TaskDefinition") == TEMPLATE_VARS["train_task_definition_arn"]
    assert ec2["Parameters"].pop("TaskDefinition") == TEMPLATE_VARS["train_ec2_task_definition_arn"]
    assert ec2["Parameters"] == fargate["Parameters"]
    assert {k: v for k, v in ec2.items() if k != "TimeoutSeconds"} == {
        k: v for k, v in fargate.items() if k != "TimeoutSeconds"
    }


def test_an_execution_may_only_choose_a_deployed_backend() -> None:
    """BackendDeployed? lets an input's training_backend through only when the stack deploys it."""
    for enabled in ("true", "false"):
        states = render_asl(TEMPLATE_VARS | {"ec2_training_enabled": enabled})["States"]
        assert states["MergeInput"]["Parameters"]["deployed_backends"] == {
            "ecs": "true", "ec2": enabled, "sagemaker": "false"
        }  # fmt: skip
    assert states["Init"]["Parameters"]["defaults"]["training_backend"] == TEMPLATE_VARS["training_backend"]
    choice = states["BackendDeployed?"]
    assert choice["Default"] == "BackendNotDeployed" and states["BackendNotDeployed"]["Type"] == "Fail"
    assert {rule["Next"] for rule in choice["Choices"]} == {"AcquireLock"}


def test_the_sagemaker_training_job_is_told_the_image_it_runs() -> None:
    """Its Environment is validate_data's training_environment plus contract.yaml image_variable set to the
    training image (the Lambda's own image variable names the Lambda image, never reaches the job) and
    the secret of the workflow's MLflow user (a job has no secrets injection: `esteira train` reads it)."""
    definition = render_asl(TEMPLATE_VARS | {"training_backend": "sagemaker"})
    (job,) = [s for s in definition["States"].values() if "sagemaker:createTrainingJob" in s.get("Resource", "")]
    assert job["Parameters"]["AlgorithmSpecification"]["TrainingImage"] == TEMPLATE_VARS["training_image_uri"]
    merge = job["Parameters"]["Environment.$"]
    assert merge == "States.JsonMerge($.validation.training_environment, $.training_image_environment, false)"
    image = {
        TEMPLATE_VARS["image_variable"]: TEMPLATE_VARS["training_image_uri"],
        "ESTEIRA_MLFLOW_CREDENTIALS_SECRET": TEMPLATE_VARS["mlflow_credentials_secret"],
    }
    assert definition["States"]["MergeInput"]["Parameters"]["training_image_environment"] == image


def test_asl_checker_catches_a_dangling_transition() -> None:
    broken = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "C": {"Type": "Succeed"}}}
    assert asl_problems(broken) == ["A -> B: no such state", "C: unreachable"]


def test_iam_checker_flags_allow_all_and_ignores_scoped_or_deny() -> None:
    assert is_allow_all({"Effect": "Allow", "Action": "*", "Resource": "*"})
    assert is_allow_all({"Action": ["s3:GetObject", "*"], "Resource": ["*"]})
    assert is_allow_all({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert not is_allow_all({"Effect": "Deny", "Action": "*", "Resource": "*"})
    assert not is_allow_all({"Effect": "Allow", "Action": "kms:*", "Resource": "*"})
    assert not is_allow_all({"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b/*"})
    doc = {
        "planned_values": {
            "root_module": {
                "child_modules": [
                    {
                        "resources": [
                            {
                                "address": "module.x.aws_iam_role_policy.p",
                                "values": {
                                    "policy": json.dumps(
                                        {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
                                    )
                                },
                            },
                        ]
                    }
                ]
            }
        }
    }
    assert violations(doc) and violations(doc)[0].startswith("module.x.aws_iam_role_policy.p.policy")


# ---- the IAM evaluator behind tests/infra/test_escalation.py and test_first_apply.py
ACCOUNT = "123456789012"
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/esteira-dev-boundary"


def test_iam_evaluator_follows_conditions_denies_and_boundaries() -> None:
    grant = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iam:CreateRole",
                "Resource": f"arn:aws:iam::{ACCOUNT}:role/esteira-dev-*",
                "Condition": {"StringEquals": {"iam:PermissionsBoundary": BOUNDARY}},
            },
            {"Effect": "Deny", "Action": "iam:*", "Resource": f"arn:aws:iam::{ACCOUNT}:role/esteira-dev-github-*"},
        ]
    }
    role = f"arn:aws:iam::{ACCOUNT}:role/esteira-dev-x"
    assert allows([grant], "iam:CreateRole", role, {"iam:PermissionsBoundary": BOUNDARY})
    assert not allows([grant], "iam:CreateRole", role, {})  # a missing key fails StringEquals
    assert not allows(
        [grant], "iam:createrole", f"arn:aws:iam::{ACCOUNT}:role/other", {"iam:PermissionsBoundary": BOUNDARY}
    )
    ci_role = f"arn:aws:iam::{ACCOUNT}:role/esteira-dev-github-deploy"
    assert decision([grant], "iam:CreateRole", ci_role, {"iam:PermissionsBoundary": BOUNDARY}) == "Deny"
    ceiling = {
        "Statement": [
            {"Effect": "Allow", "Action": "iam:*", "Resource": "*"},
            {
                "Effect": "Deny",
                "Action": "iam:CreateRole",
                "Resource": "*",
                "Condition": {"StringNotEquals": {"iam:PermissionsBoundary": BOUNDARY}},
            },
        ]
    }
    everything = [{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}]
    assert not allows(everything, "iam:CreateRole", role, {}, ceiling)  # a missing key holds StringNotEquals
    assert allows(everything, "iam:CreateRole", role, {"iam:PermissionsBoundary": BOUNDARY}, ceiling)
    assert not allows(everything, "s3:GetObject", "arn:aws:s3:::b/k", {}, ceiling)  # outside the boundary
    shut = {"Statement": [{"Effect": "Deny", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::state/*"}]}
    assert decision([shut], "s3:GetObject", "arn:aws:s3:::data/k") == "Deny"
    assert decision([shut], "s3:GetObject", "arn:aws:s3:::state/k") == "Neutral"


def test_escalation_check_catches_the_old_deploy_role() -> None:
    """modules/ci's deploy role as it was (iam:* on the stack's roles and policies) fails on every count."""
    old = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iam:*"],
                "Resource": [
                    f"arn:aws:iam::{ACCOUNT}:role/esteira-dev-*",
                    f"arn:aws:iam::{ACCOUNT}:policy/esteira-dev-*",
                ],
            }
        ]
    }
    problems = escalations(
        [old],
        None,
        boundary_arn=BOUNDARY,
        stack_role=f"arn:aws:iam::{ACCOUNT}:role/esteira-dev-anything",
        ci_roles=[f"arn:aws:iam::{ACCOUNT}:role/esteira-dev-github-deploy"],
        other_policy="arn:aws:iam::aws:policy/AdministratorAccess",
    )
    assert any(p.startswith("iam:CreateRole") and "no boundary" in p for p in problems)
    assert any(p.startswith("iam:AttachRolePolicy") and "another boundary" in p for p in problems)
    assert any(p.startswith("iam:DeleteRolePermissionsBoundary") for p in problems)
    assert any("on the boundary" in p for p in problems)
    assert any("on the CI role" in p for p in problems)


def test_roles_without_the_boundary_are_found() -> None:
    plan = {
        "resource_changes": [
            {
                "address": 'module.workflow.aws_iam_role.lambda["lock"]',
                "change": {"after": {"name": "esteira-dev-lock", "permissions_boundary": BOUNDARY}},
            },
            {"address": "module.network.aws_iam_role.flow", "change": {"after": {"name": "esteira-dev-vpc-flow-logs"}}},
            {"address": "module.x.aws_iam_role_policy.flow", "change": {"after": {"name": "not-a-role"}}},
        ]
    }
    assert roles_without_boundary(plan, BOUNDARY) == [
        "module.network.aws_iam_role.flow (esteira-dev-vpc-flow-logs): None"
    ]
