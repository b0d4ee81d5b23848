"""Settings and the ASL renderer: pure and fast (no synthesis)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import hcl2
import pytest

from .conftest import REPO

from esteira_cdk.asl import ASL_PATH, RELEASE_ASL_PATH, TemplateError, render, render_definition, template_variables  # isort: skip
from esteira_cdk.config import TERRAFORM_ONLY_VARIABLES, ConfigError, EsteiraConfig, load_config, read_tfvars  # isort: skip

CDK_ONLY = {"lambda_image_asset", "registry_only"}


def terraform_variables() -> dict[str, dict[str, Any]]:
    document = hcl2.load((REPO / "infra/terraform/variables.tf").open())
    return {name.strip('"'): body for block in document["variable"] for name, body in block.items()}


def plain(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, str) and value == "null":
        return None
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def test_settings_are_the_terraform_variables_with_the_same_defaults() -> None:
    tf = terraform_variables()
    ours = {f.name: f for f in fields(EsteiraConfig)}
    assert set(tf) - set(TERRAFORM_ONLY_VARIABLES) == set(ours) - CDK_ONLY
    defaults = EsteiraConfig(environment="dev").to_dict()
    for name, body in tf.items():
        if name in TERRAFORM_ONLY_VARIABLES or "default" not in body:
            continue
        want, got = plain(body["default"]), defaults[name]
        if isinstance(want, list) and isinstance(got, list):
            want, got = sorted(want), sorted(got)
        assert got == want, f"{name}: CDK default {got!r} != Terraform default {want!r}"


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_environment_files_are_shared_with_terraform(environment: str) -> None:
    config = load_config(environment)
    tfvars = read_tfvars(REPO / f"infra/terraform/envs/{environment}.tfvars")
    assert tfvars, "tfvars parsed to nothing"
    for name, value in tfvars.items():
        assert getattr(config, name) == value, name
    assert config.name == f"esteira-{environment}"


def test_overrides_win_and_typos_are_refused() -> None:
    assert load_config("dev", json.dumps({"serving_cpu": 2048})).serving_cpu == 2048
    with pytest.raises(ConfigError, match="unknown settings: serving_cpus"):
        load_config("dev", {"serving_cpus": 2048})
    with pytest.raises(ConfigError, match="not a JSON object"):
        load_config("dev", "{serving_cpu: 1}")


@pytest.mark.parametrize(
    ("override", "setting"),
    [
        ({"project": "Esteira"}, "project"),
        ({"vpc_cidr": "10.40.0.0/33"}, "vpc_cidr"),
        ({"az_count": 3}, "az_count"),
        ({"training_backend": "batch"}, "training_backend"),
        ({"log_retention_days": 31}, "log_retention_days"),
        ({"image_tag": "-bad"}, "image_tag"),
        ({"create_oidc_provider": False}, "oidc_provider_arn"),
        ({"allowed_ingress_cidrs": ["everyone"]}, "allowed_ingress_cidrs"),
        ({"training_backend": "ec2"}, "training_backend"),  # needs ec2_training.enabled
        ({"ec2_training": {"enabled": True, "task_cpu": 128}}, "ec2_training"),
        ({"ec2_training": {"enabled": True, "gpus": 17}}, "ec2_training"),
        ({"ec2_training": {"max_instances": 0}}, "ec2_training"),
        ({"ec2_training": {"volume_size_gb": 20}}, "ec2_training"),
        ({"ec2_training": {"instance_type": "large"}}, "ec2_training"),
        ({"ec2_training": {"enable": True}}, "ec2_training"),  # a typo of an attribute is refused
        ({"delivery": "jenkins"}, "delivery"),
        ({"delivery": "codepipeline", "enable_ci": False}, "delivery"),
    ],
)
def test_invalid_settings_fail_at_synth_naming_the_setting(override: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError, match=setting):
        load_config("dev", override)


def test_ec2_training_fills_terraforms_optional_attributes() -> None:
    config = load_config("dev", {"ec2_training": {"enabled": True, "gpus": 1}, "training_backend": "ec2"})
    assert config.ec2 == {
        "enabled": True,
        "instance_type": "m6i.8xlarge",
        "gpus": 1,
        "max_instances": 1,
        "volume_size_gb": 100,
        "task_cpu": 30720,
        "task_memory": 114688,
    }
    # Without a NAT the ECS agent's endpoints are added (main.tf local.ec2_training_apis), only then.
    assert {"ecs-agent", "ecs-telemetry"} <= set(config.effective_interface_endpoints)
    assert not {"ecs-agent", "ecs-telemetry"} & set(load_config("dev").effective_interface_endpoints)
    with_nat = load_config("dev", {"ec2_training": {"enabled": True}, "enable_nat_gateway": True})
    assert not {"ecs-agent", "ecs-telemetry"} & set(with_nat.effective_interface_endpoints)


def test_environment_name_must_match_its_file(tmp_path: Path) -> None:
    (tmp_path / "staging.tfvars").write_text('environment = "prod"\n')
    with pytest.raises(ConfigError, match="environment"):
        load_config("staging", tfvars_dir=tmp_path)


# ---- ASL rendering (templatefile semantics)


def test_render_interpolates_and_keeps_escapes() -> None:
    assert render('{"a": "${x}", "b": ${y}, "c": "$${x}", "d": "$$.Execution.Id"}', {"x": "1", "y": "[2]"}) == (
        '{"a": "1", "b": [2], "c": "${x}", "d": "$$.Execution.Id"}'
    )


def test_render_refuses_missing_variables_and_directives() -> None:
    with pytest.raises(TemplateError, match="no value for template variable"):
        render('"${x}"', {})
    with pytest.raises(TemplateError, match="directives"):
        render('%{ for x in y }"${x}"%{ endfor }', {"x": "1"})
    with pytest.raises(TemplateError, match="unsupported interpolation"):
        render('"${var.x}"', {})


def test_render_does_not_rescan_inserted_values() -> None:
    # CDK tokens look like ${Token[...]}: an inserted value must never be interpolated again.
    assert render('"${a}"', {"a": "${Token[TOKEN.1]}"}) == '"${Token[TOKEN.1]}"'


def _placeholder_values(names: set[str]) -> dict[str, str]:
    """Values shaped as Terraform's definition_variables gives them (lists comma-joined, numbers as text)."""
    shaped = {
        "train_subnets": "subnet-a,subnet-b",
        "train_security_groups": "sg-1",
        "canary_steps": "[10,50,100]",
        "canary_bake_seconds": "600",
        "shadow_seconds": "1800",
    }
    return {n: shaped.get(n, f"v-{n}") for n in names}


@pytest.mark.parametrize("path", [ASL_PATH, RELEASE_ASL_PATH], ids=lambda p: p.name)
def test_the_shared_asl_renders_to_a_state_machine(path: Path) -> None:
    names = template_variables(path.read_text())
    document = json.loads(render_definition(_placeholder_values(names), path))
    assert document["StartAt"] in document["States"]


@pytest.mark.parametrize("path", [ASL_PATH, RELEASE_ASL_PATH], ids=lambda p: p.name)
def test_the_templates_are_json_with_placeholders_only_inside_strings(path: Path) -> None:
    # Valid JSON before rendering: no unquoted ${...} (a value is always inserted into a string).
    document = json.loads(path.read_text())
    found: set[str] = set()

    def strings(value: object) -> None:
        if isinstance(value, str):
            found.update(template_variables(value))
        elif isinstance(value, dict):
            for key, item in value.items():
                strings(key)
                strings(item)
        elif isinstance(value, list):
            for item in value:
                strings(item)

    strings(document)
    assert found == template_variables(path.read_text())


def test_the_workflow_starts_the_release_and_both_name_their_lambdas() -> None:
    workflow, release = (template_variables(p.read_text()) for p in (ASL_PATH, RELEASE_ASL_PATH))
    assert "release_state_machine_arn" in workflow
    assert {f"{k}_function_arn" for k in ("lock", "validate_data", "evaluate")} <= workflow
    assert {f"{k}_function_arn" for k in ("promote", "deploy", "rollback", "canary_check")} <= release
    rendered = json.loads(render_definition(_placeholder_values(workflow)))
    (start,) = [s for s in rendered["States"].values() if "states:startExecution" in str(s.get("Resource", ""))]
    assert start["Resource"].endswith(":states:::states:startExecution.sync:2")
    assert "v-release_state_machine_arn" in json.dumps(start)
