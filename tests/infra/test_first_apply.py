"""What a first real `terraform apply` would have failed on, read from the rendered plan of infra/terraform.

- Each workflow Lambda has a role of its own holding exactly what its code calls (the permissions AWS
  checks implicitly included); the smoke test, outside the VPC, can change nothing.
- Every create call that tags (RegisterTaskDefinition with tags, PutMetricAlarm with Tags) comes with
  its TagResource permission.
- Every AWS API the in-VPC Lambdas call has a VPC endpoint when there is no NAT gateway, and a plan
  without one fails.
- The S3 gateway endpoint lets ECR's image layers through.
- The SageMaker training job, in the VPC, may create its network interfaces, and MLflow admits it.
(The training job's VpcConfig itself is in the ASL: tests/infra/test_static.py.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import CONTRACT
from .iam_policies import decision
from .planned import dev_plan, read_documents, resources

pytestmark = [pytest.mark.infra, pytest.mark.slow]

NAME = "esteira-dev"
VPC_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
EVERY_FUNCTION = {
    "logs:createlogstream",
    "logs:putlogevents",
    "xray:puttracesegments",
    "xray:puttelemetryrecords",
    "kms:decrypt",  # its own environment (encryption context LambdaFunctionName)
}
# What each function's code calls (lambdas/<key>.py -> pipelines/ -> boto3), beyond EVERY_FUNCTION.
# A change here is a change of what a function may do: review it with the code that needs it.
EXPECTED = {
    "validate_data": {"s3:getobject", "s3:listbucket"},
    "evaluate": {"s3:getobject", "s3:listbucket"},
    "promote": set(),
    "deploy": {
        "ecs:describeservices",
        "ecs:updateservice",
        "ecs:describetaskdefinition",
        "ecs:registertaskdefinition",
        "ecs:tagresource",
        "iam:passrole",
    },
    "service_stable": {"ecs:describeservices"},
    "smoke_test": {"s3:getobject", "s3:listbucket"},
    "rollback": {"ecs:describeservices", "ecs:updateservice"},
    "drift_check": {"s3:getobject", "s3:listbucket", "s3:putobject", "kms:generatedatakey", "cloudwatch:putmetricdata"},
    "retrain_trigger": {
        "dynamodb:getitem",
        "dynamodb:putitem",
        "dynamodb:deleteitem",
        "states:startexecution",
        "kms:generatedatakey",
    },
    "lock": {"dynamodb:getitem", "dynamodb:putitem", "dynamodb:deleteitem"},
    "canary_check": {
        "ecs:describeservices",
        "ecs:updateservice",
        "ecs:describetaskdefinition",
        "ecs:registertaskdefinition",
        "ecs:tagresource",
        "iam:passrole",
        "elasticloadbalancing:modifylistener",
        "elasticloadbalancing:addtags",
        "elasticloadbalancing:removetags",
        "cloudwatch:putmetricalarm",
        "cloudwatch:deletealarms",
        "cloudwatch:tagresource",
        "cloudwatch:describealarms",
        "cloudwatch:getmetricdata",
        "cloudwatch:listmetrics",
        "cloudwatch:putmetricdata",
    },
}
# A create call that tags needs the service's TagResource as well (scoped to that create call).
TAGGING_CREATES = {
    "ecs:registertaskdefinition": ("ecs:tagresource", "ecs:CreateAction", "RegisterTaskDefinition"),
    "cloudwatch:putmetricalarm": ("cloudwatch:tagresource", None, None),
}
# Actions that are permission checks or done by the Lambda service, not requests over the network.
NOT_CALLS = {"iam:passrole", "ecs:tagresource", "cloudwatch:tagresource", "xray", "logs", "kms", "ec2"}
# IAM prefix -> VPC endpoint service (gateway endpoints for s3 and dynamodb).
ENDPOINT = {"cloudwatch": "monitoring", "ecr": "ecr.api"}


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return dev_plan(tmp_path_factory)


def functions() -> list[str]:
    import yaml

    return list(yaml.safe_load(CONTRACT.read_text())["lambda_functions"])


def lambda_statements(plan: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each function's inline statements (the documents are read at apply: actions and conditions known)."""
    documents = resources(plan, "aws_iam_policy_document", mode="data")
    prefix = "module.workflow.data.aws_iam_policy_document.lambda"
    return {
        address.removeprefix(prefix).strip('[]"'): doc["statement"]
        for address, doc in documents.items()
        if address.startswith(f"{prefix}[")
    }


def actions_of(statements: list[dict[str, Any]]) -> set[str]:
    return {a.lower() for s in statements if s.get("effect") in (None, "Allow") for a in s["actions"]}


def test_each_function_has_a_role_of_its_own(plan: dict[str, Any]) -> None:
    keys = functions()
    roles = {
        a.split('"')[1]: r
        for a, r in resources(plan, "aws_iam_role").items()
        if a.startswith("module.workflow.aws_iam_role.lambda[")
    }
    names = {k: f"{NAME}-{k.replace('_', '-')}" for k in keys}
    assert {k: r["name"] for k, r in roles.items()} == names
    policies = {
        a.split('"')[1]: p
        for a, p in resources(plan, "aws_iam_role_policy").items()
        if a.startswith("module.workflow.aws_iam_role_policy.lambda[")
    }
    assert set(policies) == set(keys)
    # The function runs as its own role (the ARN is unknown until apply: read the configuration).
    workflow = plan["configuration"]["root_module"]["module_calls"]["workflow"]["module"]
    (fn,) = [r for r in workflow["resources"] if r["address"] == "aws_lambda_function.this"]
    assert {"aws_iam_role.lambda", "each.key"} <= set(fn["expressions"]["role"]["references"])


def test_each_role_holds_exactly_what_its_code_calls(plan: dict[str, Any]) -> None:
    statements = lambda_statements(plan)
    assert set(statements) == set(functions())
    assert {k: actions_of(s) - EVERY_FUNCTION for k, s in statements.items()} == EXPECTED
    # kms:Decrypt of the data key (S3 objects, the lock table's items) where the code reads them.
    decrypts_data = {"validate_data", "evaluate", "smoke_test", "drift_check", "lock", "retrain_trigger"}
    for key, sts in statements.items():
        assert actions_of(sts) >= EVERY_FUNCTION, key
        env = [s for s in sts if s.get("sid") == "DecryptOwnEnvironment"]
        assert env and env[0]["condition"][0]["values"] == [f"{NAME}-{key.replace('_', '-')}"], key
        data_key = [s for s in sts if s.get("sid") == "DecryptWithDataKey"]
        assert bool(data_key) == (key in decrypts_data), key


def test_the_smoke_test_outside_the_vpc_can_change_nothing(plan: dict[str, Any]) -> None:
    smoke = actions_of(lambda_statements(plan)["smoke_test"])
    for action in ("ecs:updateservice", "elasticloadbalancing:modifylistener", "states:startexecution"):
        assert action not in smoke
    attached = {
        a.split('"')[1]: v["policy_arn"]
        for a, v in resources(plan, "aws_iam_role_policy_attachment").items()
        if a.startswith("module.workflow.aws_iam_role_policy_attachment.lambda_vpc[")
    }
    assert set(attached) == set(functions()) - {"smoke_test"}
    assert set(attached.values()) == {VPC_POLICY}
    (smoke_fn,) = [v for a, v in resources(plan, "aws_lambda_function").items() if a.endswith('["smoke_test"]')]
    assert smoke_fn["vpc_config"] == []


def test_every_tagging_create_call_may_tag(plan: dict[str, Any]) -> None:
    checked = 0
    for key, sts in lambda_statements(plan).items():
        for create, (tag, variable, value) in TAGGING_CREATES.items():
            if create not in actions_of(sts):
                continue
            checked += 1
            grants = [s for s in sts if tag in {a.lower() for a in s["actions"]}]
            assert grants, f"{key} calls {create} with tags but may not {tag}"
            if variable:
                assert any(
                    c["variable"] == variable and c["values"] == [value] for s in grants for c in s["condition"]
                ), f"{key}: {tag} should be limited to {variable} = {value}"
    assert checked == 3  # deploy (task definitions), canary_check (task definitions and alarms)


def test_every_api_the_private_lambdas_call_has_an_endpoint(plan: dict[str, Any]) -> None:
    endpoints = {v["service_name"].rsplit(".", 1)[-1] if v["vpc_endpoint_type"] == "Gateway" else v["service_name"]
                 for v in resources(plan, "aws_vpc_endpoint").values()}  # fmt: skip
    names = {e.removeprefix("com.amazonaws.us-east-1.") for e in endpoints}
    assert "elasticloadbalancing" in names
    missing = {}
    for key, sts in lambda_statements(plan).items():
        if key == "smoke_test":
            continue
        for action in actions_of(sts):
            prefix = action.split(":")[0]
            if action in NOT_CALLS or prefix in NOT_CALLS:
                continue
            service = ENDPOINT.get(prefix, prefix)
            if service not in names:
                missing.setdefault(service, set()).add(f"{key}: {action}")
    assert not missing, f"no VPC endpoint (and no NAT in dev) for {missing}"


def test_a_plan_without_a_needed_endpoint_fails(tmp_path_factory: pytest.TempPathFactory) -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        dev_plan(
            tmp_path_factory,
            '-var=interface_endpoints=["ecr.api","ecr.dkr","logs","secretsmanager","ecs","states","monitoring"]',
        )
    output = " ".join(str(failed.value).replace("│", " ").split())
    assert "precondition failed" in output, output[-2000:]
    assert "interface_endpoints lacks elasticloadbalancing" in output, output[-2000:]


def test_the_s3_gateway_endpoint_lets_ecr_layers_through(plan: dict[str, Any]) -> None:
    documents = read_documents(plan)
    prefix = "module.network.data.aws_iam_policy_document.endpoint"
    s3 = json.loads(documents[f'{prefix}["s3"]']["json"])
    layer = "arn:aws:s3:::prod-us-east-1-starport-layer-bucket/sha256/abc"
    # ECR's pre-signed layer URL is not this account's principal: no aws:PrincipalAccount of ours.
    assert decision([s3], "s3:GetObject", layer, {}) == "Allow"
    assert decision([s3], "s3:PutObject", layer, {}) == "Neutral"
    other = "arn:aws:s3:::someone-elses-bucket/x"
    assert decision([s3], "s3:GetObject", other, {}) == "Neutral"
    assert decision([s3], "s3:GetObject", other, {"aws:PrincipalAccount": "123456789012"}) == "Allow"
    (layers,) = [st for st in s3["Statement"] if "starport" in json.dumps(st.get("Resource"))]
    assert layers["Principal"] in ("*", {"AWS": "*"}) and layers["Action"] in ("s3:GetObject", ["s3:GetObject"])
    for address, values in documents.items():  # only the S3 endpoint
        if address.startswith(prefix) and address != f'{prefix}["s3"]':
            assert "starport" not in values["json"], address


def test_the_training_job_may_create_its_network_interfaces_and_reach_mlflow(plan: dict[str, Any]) -> None:
    (doc,) = [v for a, v in resources(plan, "aws_iam_policy_document", mode="data").items() if a.endswith(".sagemaker")]
    actions = actions_of(doc["statement"])
    for action in (
        "ec2:createnetworkinterface",
        "ec2:createnetworkinterfacepermission",
        "ec2:deletenetworkinterface",
        "ec2:deletenetworkinterfacepermission",
        "ec2:describenetworkinterfaces",
        "ec2:describevpcs",
        "ec2:describedhcpoptions",
        "ec2:describesubnets",
        "ec2:describesecuritygroups",
    ):
        assert action in actions, action
    wildcard = {a.lower() for s in doc["statement"] if s["resources"] == ["*"] for a in s["actions"]}
    assert not {a for a in wildcard if a.startswith("ec2:") and not a.startswith("ec2:describe")}, wildcard
    # The job runs with the workflow security group in the private subnets; MLflow admits the VPC on 5000.
    (vpc,) = resources(plan, "aws_vpc").values()
    ingress = [
        v
        for a, v in resources(plan, "aws_vpc_security_group_ingress_rule").items()
        if a.startswith("module.mlflow.") and v["from_port"] <= 5000 <= v["to_port"]
    ]
    assert any(r["cidr_ipv4"] == vpc["cidr_block"] for r in ingress), ingress
