"""`tofu plan` and `tofu apply` of the root module, dev.tfvars as users apply it, on the embedded AWS.

The embedded AWS (localaws: moto plus what it lacks) answers every API the provider calls, so
nothing is switched off: every planned resource must be applied, the state machine included (its
definition validated the way AWS validates it). Counts go to reports/infra-emulator.json;
`python -m benchmarks.apply` writes the figures into docs/infra-notes.md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from localaws.terraform import managed_resources

from .conftest import REPO, Emulator, Tofu
from .iam_policies import policy_documents, violations

pytestmark = pytest.mark.infra


def var_args(aws: Emulator) -> list[str]:
    """Only what points the user's command at the emulator: the endpoint (test credentials are in the env)."""
    return ["-var-file=envs/dev.tfvars", f"-var=aws_endpoint_url={aws.url}"]


def record(key: str, value: Any) -> None:
    path = REPO / "reports" / "infra-emulator.json"
    path.parent.mkdir(exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def plan(tofu: Tofu, aws: Emulator, out: Path) -> dict[str, Any]:
    tofu.run("plan", "-no-color", "-lock=false", f"-out={out}", *var_args(aws), timeout=900)
    return tofu.show_json(str(out))


@pytest.mark.slow
def test_plan_against_the_embedded_aws(initialized: Tofu, embedded_aws: Emulator, tmp_path: Path) -> None:
    started = time.monotonic()
    document = plan(initialized, embedded_aws, tmp_path / "plan.bin")
    creates = [c["address"] for c in document["resource_changes"] if "create" in c["change"]["actions"]]
    record("planned_create", len(creates))
    record("plan_seconds", round(time.monotonic() - started, 1))
    assert len(creates) > 150, f"only {len(creates)} resources planned"
    for must in (
        "module.serving.aws_ecs_service.serving",
        'module.workflow.aws_lambda_function.this["lock"]',
        "module.mlflow.aws_db_instance.this",
        "module.ci[0].aws_iam_role.deploy",
    ):
        assert must in creates, f"{must} missing from the plan"
    assert not violations(document), "IAM allows * on *:\n" + "\n".join(violations(document))


@pytest.mark.slow
def test_apply_against_the_embedded_aws(initialized: Tofu, embedded_aws: Emulator, tmp_path: Path) -> None:
    started = time.monotonic()
    document = plan(initialized, embedded_aws, tmp_path / "plan.bin")
    planned = [c["address"] for c in document["resource_changes"] if "create" in c["change"]["actions"]]
    proc = initialized.run(
        "apply", "-no-color", "-lock=false", "-auto-approve", str(tmp_path / "plan.bin"), timeout=1800, check=False
    )
    state = initialized.show_json()
    applied = managed_resources(state.get("values", {}).get("root_module"))
    record("apply_planned", len(planned))
    record("applied", len(applied))
    record("apply_seconds", round(time.monotonic() - started, 1))
    assert proc.returncode == 0, f"apply failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    assert len(applied) == len(planned), f"planned {len(planned)} but state holds {len(applied)}"

    # With every value known, check every policy document and the rendered state machine.
    documents = policy_documents(state)
    assert len(documents) > 20, f"found only {len(documents)} policy documents in the state"
    assert not violations(state), "IAM allows * on *:\n" + "\n".join(violations(state))
    addresses = {r["address"] for r in applied}
    for must in (  # what the emulator-only switches used to leave out
        "module.workflow.aws_sfn_state_machine.this",
        "module.monitoring.aws_cloudwatch_dashboard.this",
        "module.serving.aws_appautoscaling_target.serving",
    ):
        assert must in addresses, f"{must} not applied"
    alarms = [a for a in addresses if a.startswith("module.monitoring.aws_cloudwatch_metric_alarm.")]
    assert len(alarms) >= 6, f"only {len(alarms)} alarms applied: {sorted(alarms)}"
    machine_role = next(r for r in applied if r["address"] == "module.workflow.aws_iam_role_policy.sfn")
    assert "ecs:RunTask" in machine_role["values"]["policy"]
    prefix = "module.workflow.aws_lambda_function."
    lambdas = {r["index"]: r["values"] for r in applied if r["address"].startswith(prefix)}
    assert lambdas["smoke_test"]["vpc_config"] == []  # reaches the internet-facing ALB without a NAT gateway
    assert all(v["vpc_config"][0]["subnet_ids"] for k, v in lambdas.items() if k != "smoke_test")
    serving = next(r for r in applied if r["address"] == "module.serving.aws_ecs_task_definition.serving")
    env = {e["name"]: e["value"] for e in json.loads(serving["values"]["container_definitions"])[0]["environment"]}
    assert env["ESTEIRA_MODEL_URI"] == "models:/esteira-intent@champion"
    assert env["ESTEIRA_CAPTURE_S3_URI"].startswith("s3://esteira-dev-capture-")
    # Shadow route: every serving task copies to the canary service's Cloud Map name.
    assert env["ESTEIRA_SHADOW_URL"] == "http://canary.esteira-dev.internal:8080"
    canary = next(r for r in applied if r["address"] == "module.serving.aws_ecs_service.canary")
    discovery = next(r for r in applied if r["address"] == "module.serving.aws_service_discovery_service.canary")
    assert canary["values"]["service_registries"][0]["registry_arn"] == discovery["values"]["arn"]
    # GitHub OIDC roles: each trusts exactly its own token subjects (deploy: the protected environment;
    # plan: pull requests and main; train: main only).
    subjects = {}
    for role in ("deploy", "plan", "train"):
        doc = json.loads(
            next(r for r in applied if r["address"] == f"module.ci[0].aws_iam_role.{role}")["values"][
                "assume_role_policy"
            ]
        )
        (statement,) = doc["Statement"]
        sub = statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
        subjects[role] = sorted([sub] if isinstance(sub, str) else sub)
    repo = "repo:esteira-mlops/esteira"
    assert subjects == {
        "deploy": [f"{repo}:environment:production"],
        "plan": sorted([f"{repo}:pull_request", f"{repo}:ref:refs/heads/main"]),
        "train": [f"{repo}:ref:refs/heads/main"],
    }
