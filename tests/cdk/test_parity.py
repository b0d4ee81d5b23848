"""Parity: the Terraform plan and the CDK template create the same AWS resources, named alike.

The Terraform side is `tofu show -json` of a plan of infra/terraform with envs/dev.tfvars against a
moto server (the infra tests' toolchain and staging). The CDK side is the dev template. Compared:
resource types and counts; Lambda names, environment variable names, handlers, timeouts and memory;
alarm names, thresholds, periods, evaluation periods and metrics; IAM actions and managed policies
per named role (values unknown until apply are not compared). Any difference not listed with a
reason in infra/cdk/parity_exceptions.yaml fails, and so does a listed one that no longer differs.

Without the pinned tofu the plan test skips locally and fails in CI (CI=true). A LOCAL FALLBACK
(test_parity_with_terraform_source) reads the resource types from the .tf source with python-hcl2;
it cannot evaluate count/for_each, so it checks type presence only and never replaces the plan in CI.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, Synth
from .parity import (
    cloudformation_alarms,
    cloudformation_lambdas,
    cloudformation_roles,
    cloudformation_types,
    compare,
    compare_details,
    compare_named,
    compare_roles,
    load_exceptions,
    terraform_alarms,
    terraform_lambdas,
    terraform_roles,
    terraform_types_from_plan,
    terraform_types_from_source,
    with_options,
)

EXCEPTIONS = REPO / "infra" / "cdk" / "parity_exceptions.yaml"
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def exceptions() -> dict[str, Any]:
    return load_exceptions(EXCEPTIONS)


# Every optional part on (conftest.OPTIONS): the EC2 training capacity and CodePipeline delivery.
OPTIONS_TF_VARS = ("-var=ec2_training={enabled=true}", "-var=delivery=codepipeline")


def plan_json(tmp_path_factory: pytest.TempPathFactory, *extra: str) -> dict[str, Any]:
    """`tofu show -json` of the dev plan against a moto server, staged exactly as tests/infra does."""
    from tests.infra.conftest import BIN, TOOLS_DIR, Tofu, moto_server, require, stage_tree, tofu_env
    from tests.infra.test_emulator import var_args

    tofu_bin = require(BIN / "tf", "Terraform engine (bin/tf)")
    require(TOOLS_DIR / "tofurc", "tofu CLI config (tofurc)")
    workdir = tmp_path_factory.mktemp("parity-tf")
    tofu = Tofu(tofu_bin, stage_tree(workdir), tofu_env())
    tofu.run("init", "-no-color", timeout=600)

    with moto_server(workdir / "moto.log") as moto:
        plan_file = workdir / "plan.bin"
        tofu.run("plan", "-no-color", "-lock=false", f"-out={plan_file}", *var_args(moto), *extra, timeout=900)
        return tofu.show_json(str(plan_file))


@pytest.fixture(scope="session")
def terraform_plan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return plan_json(tmp_path_factory)


@pytest.fixture(scope="session")
def terraform_plan_with_options(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return plan_json(tmp_path_factory, *OPTIONS_TF_VARS)


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


@pytest.mark.slow
@pytest.mark.infra
def test_names_and_settings_match_the_terraform_plan(
    dev: Synth, terraform_plan: dict[str, Any], exceptions: dict[str, Any]
) -> None:
    lambdas, roles = terraform_lambdas(terraform_plan), terraform_roles(terraform_plan)
    assert len(lambdas) == 11 and all(f["environment"] for f in lambdas.values()), "the plan names no environment"
    assert len(terraform_alarms(terraform_plan)) == 6
    assert len(roles) >= 10 and sum(len(r["actions"]) for r in roles.values()) > 100, "policies were not read"
    problems = compare_details(terraform_plan, dev.template, exceptions)
    assert not problems, "Unexplained differences (fix the app or list them in infra/cdk/parity_exceptions.yaml):\n" + (
        "\n".join(f"  - {p}" for p in problems)
    )


@pytest.mark.slow
@pytest.mark.infra
def test_parity_with_the_optional_parts_on(
    dev_with_options: Synth, terraform_plan_with_options: dict[str, Any], exceptions: dict[str, Any]
) -> None:
    """ec2_training.enabled and delivery = codepipeline on both sides: types and counts, then names,
    settings and IAM per role, with the base exceptions plus parity_exceptions.yaml's with_options."""
    plan, template = terraform_plan_with_options, dev_with_options.template
    allowed = with_options(exceptions)
    terraform = terraform_types_from_plan(plan)
    for tf_type in ("aws_ecs_capacity_provider", "aws_autoscaling_group", "aws_codepipeline", "aws_codebuild_project"):
        assert terraform[tf_type] == 1, f"the plan has no {tf_type}: were the options passed?"
    cloudformation = cloudformation_types(template)
    problems = compare(terraform, cloudformation, allowed, counts=True)
    assert not problems, report(problems, terraform, cloudformation)
    problems = compare_details(plan, template, allowed)
    assert not problems, "Unexplained differences (fix the app or list them under with_options):\n" + (
        "\n".join(f"  - {p}" for p in problems)
    )


@pytest.mark.skipif(IN_CI, reason="local fallback only: CI compares with the tofu plan")
def test_parity_with_terraform_source(dev: Synth, exceptions: dict[str, Any]) -> None:
    """LOCAL FALLBACK (types from the .tf source, presence only). The plan test above is the real one."""
    terraform = terraform_types_from_source(REPO / "infra" / "terraform")
    assert len(terraform) > 40
    cloudformation = cloudformation_types(dev.template)
    # The source holds every optional module's resources too (count = 0 in dev): their entries apply.
    problems = compare(terraform, cloudformation, with_options(exceptions), counts=False, source_only=True)
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


# ---- the detail comparison must be able to fail too (synthetic plans and templates)


def plan_with(*changes: tuple[str, str, dict[str, Any]], outputs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "resource_changes": [
            {"address": a, "type": t, "mode": "managed", "change": {"actions": ["create"], "after": after}}
            for a, t, after in changes
        ],
        "output_changes": {k: {"after": v} for k, v in (outputs or {}).items()},
        "configuration": {"root_module": {}},
    }


def lambda_resource(name: str, env: list[str]) -> dict[str, Any]:
    return {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "FunctionName": name,
            "Environment": {"Variables": dict.fromkeys(env, "x")},
            "ImageConfig": {"Command": ["lambdas.lock.handler"]},
            "Timeout": 30,
            "MemorySize": 512,
        },
    }


def test_a_missing_environment_variable_or_a_renamed_lambda_fails() -> None:
    plan = plan_with(
        (
            'module.workflow.aws_lambda_function.this["lock"]',
            "aws_lambda_function",
            {
                "function_name": "esteira-dev-lock",
                "image_config": [{"command": ["lambdas.lock.handler"]}],
                "timeout": 30,
                "memory_size": 512,
            },
        ),
        outputs={"lambda_environment_names": {"lock": ["ESTEIRA_SERVICE_NAME", "ESTEIRA_LOCK_TABLE"]}},
    )
    same = {"Resources": {"Lock": lambda_resource("esteira-dev-lock", ["ESTEIRA_LOCK_TABLE", "ESTEIRA_SERVICE_NAME"])}}
    assert compare_named("lambda", terraform_lambdas(plan), cloudformation_lambdas(same)) == []
    missing = {"Resources": {"Lock": lambda_resource("esteira-dev-lock", ["ESTEIRA_LOCK_TABLE"])}}
    (problem,) = compare_named("lambda", terraform_lambdas(plan), cloudformation_lambdas(missing))
    assert problem.startswith(
        "lambda esteira-dev-lock.environment: Terraform ['ESTEIRA_LOCK_TABLE', 'ESTEIRA_SERVICE_NAME']"
    )
    renamed = {
        "Resources": {"Lock": lambda_resource("esteira-lock-dev", ["ESTEIRA_LOCK_TABLE", "ESTEIRA_SERVICE_NAME"])}
    }
    assert compare_named("lambda", terraform_lambdas(plan), cloudformation_lambdas(renamed)) == [
        "lambda esteira-dev-lock: Terraform only",
        "lambda esteira-lock-dev: CDK only",
    ]
    # An allowed difference needs its exact subject; once it no longer differs, the entry is stale.
    allowed = {"details": {"lambda esteira-dev-lock.environment": "a reason long enough"}, "iam": {}}
    assert compare_details(plan, missing, allowed) == []
    assert compare_details(plan, same, allowed) == ["details.lambda esteira-dev-lock.environment: no longer differs"]


def test_alarm_settings_are_compared_and_unknown_dimensions_are_not() -> None:
    after = {
        "alarm_name": "esteira-dev-model-drift",
        "threshold": 1,
        "evaluation_periods": 1,
        "datapoints_to_alarm": None,
        "comparison_operator": "GreaterThanOrEqualToThreshold",
        "treat_missing_data": "notBreaching",
        "namespace": "Esteira",
        "metric_name": "DriftScore",
        "statistic": "Maximum",
        "period": 3600,
        "dimensions": None,  # unknown until apply
        "metric_query": [],
    }
    plan = plan_with(("module.monitoring.aws_cloudwatch_metric_alarm.drift", "aws_cloudwatch_metric_alarm", after))
    props = {
        "AlarmName": "esteira-dev-model-drift",
        "Threshold": 1,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
        "Namespace": "Esteira",
        "MetricName": "DriftScore",
        "Statistic": "Maximum",
        "Period": 3600,
        "Dimensions": [{"Name": "Service", "Value": {"Fn::GetAtt": ["Service", "Name"]}}],
    }
    template = {"Resources": {"Drift": {"Type": "AWS::CloudWatch::Alarm", "Properties": props}}}
    assert compare_named("alarm", terraform_alarms(plan), cloudformation_alarms(template)) == []
    template["Resources"]["Drift"]["Properties"] = {**props, "Period": 300, "EvaluationPeriods": 3}
    problems = compare_named("alarm", terraform_alarms(plan), cloudformation_alarms(template))
    assert [p.split(":")[0] for p in problems] == [
        "alarm esteira-dev-model-drift.evaluation_periods",
        "alarm esteira-dev-model-drift.metrics",
    ]


def test_role_actions_come_from_the_policy_documents_the_plan_defers() -> None:
    plan = plan_with(
        ("module.workflow.aws_iam_role.lambda", "aws_iam_role", {"name": "esteira-dev-workflow-lambda"}),
        ("module.workflow.aws_iam_role_policy.lambda", "aws_iam_role_policy", {"name": "workflow"}),
    )
    plan["resource_changes"].append(
        {
            "address": "module.workflow.data.aws_iam_policy_document.lambda",
            "type": "aws_iam_policy_document",
            "mode": "data",
            "change": {
                "actions": ["read"],
                "after": {"statement": [{"actions": ["sns:Publish"], "resources": [None]}]},
            },
        }
    )
    expressions = {
        "role": {"references": ["aws_iam_role.lambda.id", "aws_iam_role.lambda"]},
        "policy": {"references": ["data.aws_iam_policy_document.lambda.json", "data.aws_iam_policy_document.lambda"]},
    }
    plan["configuration"] = {
        "root_module": {
            "module_calls": {
                "workflow": {
                    "module": {"resources": [{"address": "aws_iam_role_policy.lambda", "expressions": expressions}]}
                }
            }
        }
    }
    terraform = terraform_roles(plan)
    assert terraform == {"esteira-dev-workflow-lambda": {"actions": {"sns:publish"}, "managed": set()}}
    template = {
        "Resources": {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "esteira-dev-workflow-lambda"}},
            "Policy": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "Roles": [{"Ref": "Role"}],
                    "PolicyDocument": {
                        "Statement": [{"Effect": "Allow", "Action": ["sns:Publish", "sqs:SendMessage"]}]
                    },
                },
            },
        }
    }
    cloudformation = cloudformation_roles(template)
    assert compare_roles(terraform, cloudformation, {}) == [
        "role esteira-dev-workflow-lambda: actions cloudformation only ['sqs:sendmessage'], listed []"
    ]
    listed = {"esteira-dev-workflow-lambda": {"cloudformation_only_actions": ["sqs:SendMessage"]}}
    assert compare_roles(terraform, cloudformation, listed) == []
    assert compare_roles(terraform, terraform, listed) == [
        "role esteira-dev-workflow-lambda: actions cloudformation only [], listed ['sqs:sendmessage']"
    ]


def test_an_iam_exception_needs_a_reason(tmp_path: Path) -> None:
    bad = tmp_path / "exceptions.yaml"
    bad.write_text("iam:\n  esteira-dev-x:\n    cloudformation_only_actions: [s3:getobject]\n")
    with pytest.raises(ValueError, match=r"iam\.esteira-dev-x: needs a reason"):
        load_exceptions(bad)
