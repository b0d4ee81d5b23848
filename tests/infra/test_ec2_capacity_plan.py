"""The EC2 training capacity as planned (infra/terraform/modules/ec2_capacity, docs/training-capacity.md).

Read from the shared dev plan (tests/infra/planned.py plans with `ec2_training = {enabled = true}`):
what AWS recommends for ECS hosts and what a first apply needs to work. Plans that must fail are
made here, with the message they must give.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from .conftest import BIN, TOOLS_DIR, Tofu, moto_server, require, stage_tree, tofu_env
from .iam_policies import decision
from .planned import PLAN_VARS, account_id, dev_plan, read_data, read_documents, resources

pytestmark = [pytest.mark.infra, pytest.mark.slow]

MODULE = "module.ec2_capacity[0]"


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return dev_plan(tmp_path_factory)


def one(plan: dict[str, Any], tf_type: str) -> dict[str, Any]:
    (value,) = resources(plan, tf_type).values()
    return value


def test_the_hosts_launch_from_the_ecs_optimised_ami_with_imdsv2_and_encrypted_volumes(plan: dict[str, Any]) -> None:
    template = one(plan, "aws_launch_template")
    parameters = [v["name"] for v in read_data(plan, "aws_ssm_parameter").values()]
    assert parameters == ["/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"]
    assert template["image_id"].startswith("ami-")
    (metadata,) = template["metadata_options"]
    assert (metadata["http_tokens"], metadata["http_put_response_hop_limit"]) == ("required", 1)
    (volume,) = template["block_device_mappings"]
    assert volume["ebs"][0]["encrypted"] == "true" and volume["ebs"][0]["volume_type"] == "gp3"
    user_data = base64.b64decode(template["user_data"]).decode()
    assert "ECS_CLUSTER=esteira-dev\n" in user_data and "ECS_AWSVPC_BLOCK_IMDS=true" in user_data
    assert template["instance_type"] == "m6i.8xlarge"


def test_the_group_costs_nothing_idle_and_ecs_scales_it(plan: dict[str, Any]) -> None:
    group = one(plan, "aws_autoscaling_group")
    assert group["min_size"] == 0 and group["max_size"] == 1
    assert group["protect_from_scale_in"] is True  # managed termination protection requires it
    assert {"key": "AmazonECSManaged", "value": "true", "propagate_at_launch": True} in group["tag"]
    provider = one(plan, "aws_ecs_capacity_provider")
    (asg_provider,) = provider["auto_scaling_group_provider"]
    assert asg_provider["managed_termination_protection"] == "ENABLED"
    assert asg_provider["managed_scaling"][0]["status"] == "ENABLED"
    assert asg_provider["managed_scaling"][0]["target_capacity"] == 100
    (association,) = resources(plan, "aws_ecs_cluster_capacity_providers").values()
    assert association["capacity_providers"] == ["FARGATE", "FARGATE_SPOT", "esteira-dev-ec2-training"]
    # The cluster's default stays Fargate: serving and MLflow never land on a training host.
    assert [s["capacity_provider"] for s in association["default_capacity_provider_strategy"]] == ["FARGATE_SPOT"]


def test_the_hosts_can_register_without_a_nat_gateway(plan: dict[str, Any]) -> None:
    endpoints = {e["service_name"].rsplit(".", 1)[-1] for e in resources(plan, "aws_vpc_endpoint").values()}
    assert {"ecs-agent", "ecs-telemetry"} <= endpoints


def test_the_training_task_on_ec2_is_the_fargate_one_sized_for_the_host(plan: dict[str, Any]) -> None:
    definitions = {v["family"]: v for v in resources(plan, "aws_ecs_task_definition").values()}
    fargate, ec2 = definitions["esteira-dev-train"], definitions["esteira-dev-train-ec2"]
    assert ec2["requires_compatibilities"] == ["EC2"] and ec2["network_mode"] == "awsvpc"
    assert (ec2["cpu"], ec2["memory"]) == ("30720", "114688")
    # The container is one local of the workflow module (its definition is unknown until apply: the
    # secret ARNs); the workflow suite runs it (tests/workflow/test_workflow_local.py).
    for key in ("execution_role_arn", "task_role_arn"):
        assert ec2.get(key) == fargate.get(key)


def test_the_deploy_role_may_build_the_hosts(plan: dict[str, Any]) -> None:
    """Within its own policy and the boundary: a deploy role that cannot create the instance profile or
    read the AMI parameter fails the first apply. (The state machine's RunTask of the EC2 family is
    exercised under IAM enforcement by tests/workflow/test_workflow_local.py.)"""
    account = account_id(plan)
    documents = read_documents(plan)
    deploy = json.loads(documents["module.ci[0].data.aws_iam_policy_document.deploy"]["json"])
    boundary = json.loads(documents["data.aws_iam_policy_document.boundary"]["json"])
    region = {"aws:RequestedRegion": "us-east-1"}
    profile = f"arn:aws:iam::{account}:instance-profile/esteira-dev-ec2-training"
    ami = "arn:aws:ssm:us-east-1::parameter/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
    for action, resource in [
        ("autoscaling:CreateAutoScalingGroup", "*"),
        ("ec2:CreateLaunchTemplate", "*"),
        ("ecs:CreateCapacityProvider", "*"),
        ("iam:CreateInstanceProfile", profile),
        ("iam:AddRoleToInstanceProfile", profile),
        ("ssm:GetParameter", ami),
    ]:
        for policy in (deploy, boundary):
            assert decision([policy], action, resource, region) == "Allow", (action, resource)
    # Parameters: AWS's public ones only, never the account's own (where secrets may live).
    own = f"arn:aws:ssm:us-east-1:{account}:parameter/prod/db-password"
    assert decision([boundary], "ssm:GetParameter", own, region) != "Allow"


@pytest.mark.parametrize(
    ("ec2_training", "message"),
    [
        ('{enabled=true,instance_type="m6i.large"}', "task_cpu = 30720 does not fit m6i.large (2 vCPU"),
        ('{enabled=true,instance_type="m6i.8xlarge",task_cpu=4096,task_memory=126000}', "at most 117964 MiB"),
        ('{enabled=true,instance_type="m6i.8xlarge",gpus=1}', "gpus = 1, but m6i.8xlarge has 0 GPU(s)"),
    ],
)
def test_a_task_that_cannot_fit_a_host_fails_the_plan(
    tmp_path_factory: pytest.TempPathFactory, ec2_training: str, message: str
) -> None:
    workdir = tmp_path_factory.mktemp("ec2-too-big")
    tofu = Tofu(require(BIN / "tf", "Terraform engine (bin/tf)"), stage_tree(workdir), tofu_env())
    require(TOOLS_DIR / "tofurc", "tofu CLI config (tofurc)")
    tofu.run("init", "-no-color", timeout=600)
    with moto_server(workdir / "moto.log") as moto:
        result = tofu.run(
            "plan", "-no-color", "-lock=false", *PLAN_VARS[:-1], f"-var=ec2_training={ec2_training}",
            f"-var=aws_endpoint_url={moto.url}", check=False, timeout=900,
        )  # fmt: skip
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0 and message in output, output[-3000:]


def test_a_gpu_host_gets_the_gpu_ami_and_the_task_reserves_its_gpus(tmp_path_factory: pytest.TempPathFactory) -> None:
    gpu = '-var=ec2_training={enabled=true,instance_type="g5.2xlarge",gpus=1,task_cpu=7168,task_memory=28000}'
    plan = dev_plan(tmp_path_factory, gpu)
    parameters = [v["name"] for v in read_data(plan, "aws_ssm_parameter").values()]
    assert parameters == ["/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"]
    template = one(plan, "aws_launch_template")
    assert template["instance_type"] == "g5.2xlarge"
    assert "ECS_ENABLE_GPU_SUPPORT=true" in base64.b64decode(template["user_data"]).decode()
    definitions = {v["family"]: v for v in resources(plan, "aws_ecs_task_definition").values()}
    assert (definitions["esteira-dev-train-ec2"]["cpu"], definitions["esteira-dev-train-ec2"]["memory"]) == (
        "7168",
        "28000",
    )


def test_the_agent_endpoints_admit_ecs_actions_and_autoscaling_may_use_the_volume_key(plan: dict[str, Any]) -> None:
    """Two first-apply failures AWS would give: an endpoint policy naming `ecs-agent:*` (not an IAM
    prefix: the agent's calls are ecs: actions, so the hosts never register), and a customer managed
    key that EC2 Auto Scaling's service-linked role may not use (the encrypted hosts never launch)."""
    account = account_id(plan)
    documents = read_documents(plan)
    for endpoint in ("ecs-agent", "ecs-telemetry"):
        policy = json.loads(documents[f'module.network.data.aws_iam_policy_document.endpoint["{endpoint}"]']["json"])
        context = {"aws:PrincipalAccount": account}
        assert decision([policy], "ecs:Poll", "*", context) == "Allow", policy
    key = json.loads(documents["module.storage.data.aws_iam_policy_document.key"]["json"])
    slr = f"arn:aws:iam::{account}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    grant = {"aws:PrincipalArn": slr, "kms:GrantIsForAWSResource": "true"}
    assert decision([key], "kms:CreateGrant", "*", grant) == "Allow"
    assert decision([key], "kms:GenerateDataKeyWithoutPlaintext", "*", {"aws:PrincipalArn": slr}) == "Allow"
    other = {"aws:PrincipalArn": f"arn:aws:iam::{account}:role/someone", "kms:GrantIsForAWSResource": "true"}
    statements = [s for s in key["Statement"] if s.get("Sid", "").startswith("AutoScaling")]
    assert len(statements) == 2 and decision([{"Statement": statements}], "kms:CreateGrant", "*", other) != "Allow"
