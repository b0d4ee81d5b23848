"""What a first real `terraform apply` would have failed on, read from the rendered plan of infra/terraform.

- Each workflow Lambda has a role of its own holding exactly what its code calls (the permissions AWS
  checks implicitly included); the smoke test, outside the VPC, can change nothing.
- Every create call that tags (RegisterTaskDefinition with tags, PutMetricAlarm with Tags) comes with
  its TagResource permission.
- Every AWS API the in-VPC Lambdas call has a VPC endpoint when there is no NAT gateway, and a plan
  without one fails.
- The S3 gateway endpoint lets ECR's image layers through.
- The SageMaker training job, in the VPC, may create its network interfaces, and MLflow admits it.
- The drift check lists only drift-reports/ and writes only the "retrain-paused" lock item; both training
  roles read the capture and the drift state (--reference recent-traffic).
(The training job's VpcConfig itself is in the ASL: tests/infra/test_static.py.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import CONTRACT
from .iam_policies import decision, statement_applies
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
# A function that calls MLflow reads its MLflow user's credential (lambdas/_runtime.py, modules/workflow
# local.mlflow_users); the secret is under the stack's key.
MLFLOW_SECRET = "secretsmanager:getsecretvalue"
# What each function's code calls (lambdas/<key>.py -> pipelines/ -> boto3), beyond EVERY_FUNCTION.
# A change here is a change of what a function may do: review it with the code that needs it.
EXPECTED = {
    "validate_data": {"s3:getobject", "s3:listbucket", "s3:putobject", "kms:generatedatakey"},  # + snapshots
    "evaluate": {"s3:getobject", "s3:listbucket", MLFLOW_SECRET},
    "promote": {MLFLOW_SECRET},
    "deploy": {
        MLFLOW_SECRET,
        "ecs:describeservices",
        "ecs:updateservice",
        "ecs:describetaskdefinition",
        "ecs:registertaskdefinition",
        "ecs:tagresource",
        "iam:passrole",
    },
    "service_stable": {"ecs:describeservices"},
    "smoke_test": {"s3:getobject", "s3:listbucket"},  # never MLflow: it may run outside the VPC
    "rollback": {"ecs:describeservices", "ecs:updateservice", MLFLOW_SECRET},
    "drift_check": {
        MLFLOW_SECRET,
        "s3:getobject",
        "s3:listbucket",
        "s3:putobject",
        "kms:generatedatakey",
        "cloudwatch:putmetricdata",
        "sns:publish",
        "dynamodb:putitem",
    },
    "retrain_trigger": {
        "dynamodb:getitem",
        "dynamodb:putitem",
        "dynamodb:deleteitem",
        "states:startexecution",
        "kms:generatedatakey",
    },
    "lock": {"dynamodb:getitem", "dynamodb:putitem", "dynamodb:deleteitem"},
    "canary_check": {
        MLFLOW_SECRET,
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
    # kms:Decrypt of the data key (S3 objects, the lock table's items, the MLflow credential's secret)
    # where the code reads them.
    decrypts_data = {"validate_data", "evaluate", "smoke_test", "drift_check", "lock", "retrain_trigger"}
    decrypts_data |= {"promote", "deploy", "rollback", "canary_check"}
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
    missing: dict[str, set[str]] = {}
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


def by_sid(statements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["sid"]: s for s in statements if s.get("sid")}


def conditions(statement: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    return [(c["test"], c["variable"], c["values"]) for c in statement.get("condition") or []]


def as_iam(statement: dict[str, Any]) -> dict[str, Any]:
    """A planned statement as IAM JSON, its resources (unknown until apply) left out: conditions only."""
    condition: dict[str, dict[str, list[str]]] = {}
    for test, variable, values in conditions(statement):
        condition.setdefault(test, {})[variable] = values
    return {"Effect": statement.get("effect") or "Allow", "Action": statement["actions"], "Condition": condition}


DRIFT_PREFIX = [("StringLike", "s3:prefix", ["drift-reports/*"])]


def test_the_drift_check_lists_only_its_reports_and_pauses_only_retraining(plan: dict[str, Any]) -> None:
    sts = by_sid(lambda_statements(plan)["drift_check"])
    assert sts["ReadDriftState"]["actions"] == ["s3:GetObject"]
    (listing,) = [s for s in sts.values() if "s3:ListBucket" in s["actions"] and s["sid"] != "ReadCapture"]
    assert listing["sid"] == "ListDriftReports" and listing["actions"] == ["s3:ListBucket"]
    assert conditions(listing) == DRIFT_PREFIX
    for prefix, applies in (
        ("drift-reports/", True),
        ("drift-reports/model_version=3/state.json", True),
        ("", False),
        ("models/", False),
        (None, False),
    ):
        context = {} if prefix is None else {"s3:prefix": prefix}
        assert statement_applies(as_iam(listing), "s3:ListBucket", "*", context) == applies, prefix
    pause = sts["PauseRetraining"]
    assert pause["actions"] == ["dynamodb:PutItem"]
    assert conditions(pause) == [("ForAllValues:StringEquals", "dynamodb:LeadingKeys", ["retrain-paused"])]
    for keys, applies in ((["retrain-paused"], True), (["workflow"], False), (["retrain-paused", "x"], False)):
        assert statement_applies(as_iam(pause), "dynamodb:PutItem", "*", {"dynamodb:LeadingKeys": keys}) == applies
    # Only PauseRetraining writes the lock table: no unconditioned PutItem, GetItem or DeleteItem.
    writes = [s["sid"] for s in sts.values() if any(a.startswith("dynamodb:") for a in s["actions"])]
    assert writes == ["PauseRetraining"]
    assert sts["Notify"]["actions"] == ["sns:Publish"]
    # The topic is encrypted with the stack key: Publish needs GenerateDataKey and Decrypt on it.
    assert sts["EncryptWithDataKey"]["actions"] == ["kms:GenerateDataKey"]
    assert sts["DecryptWithDataKey"]["actions"] == ["kms:Decrypt"]
    calls = plan["configuration"]["root_module"]["module_calls"]
    (topic,) = [r for r in calls["monitoring"]["module"]["resources"] if r["address"] == "aws_sns_topic.this"]
    assert topic["expressions"]["kms_master_key_id"]["references"] == ["var.kms_key_arn"]
    for module in ("monitoring", "workflow"):  # the same key, the one the grants name
        assert "module.storage.kms_key_arn" in calls[module]["expressions"]["kms_key_arn"]["references"]
    assert "module.monitoring.sns_topic_arn" in calls["workflow"]["expressions"]["sns_topic_arn"]["references"]


def test_both_training_roles_read_the_capture_and_the_drift_state(plan: dict[str, Any]) -> None:
    documents = resources(plan, "aws_iam_policy_document", mode="data")
    task = by_sid(documents["module.workflow.data.aws_iam_policy_document.train_task"]["statement"])
    assert set(task) == {"ReadData", "ReadCapture", "ReadDriftState", "ListDriftReports", "UseDataKey"}
    assert task["ReadCapture"]["actions"] == ["s3:GetObject", "s3:ListBucket"]
    assert task["ReadDriftState"]["actions"] == ["s3:GetObject"]
    assert task["ListDriftReports"]["actions"] == ["s3:ListBucket"]
    assert conditions(task["ListDriftReports"]) == DRIFT_PREFIX
    assert task["UseDataKey"]["actions"] == ["kms:Decrypt"]
    assert actions_of(list(task.values())) == {"s3:getobject", "s3:listbucket", "kms:decrypt"}
    sagemaker = by_sid(documents["module.workflow.data.aws_iam_policy_document.sagemaker"]["statement"])
    assert sagemaker["ReadCapture"]["actions"] == ["s3:GetObject", "s3:ListBucket"]
    assert {"kms:Decrypt", "kms:GenerateDataKey"} <= set(sagemaker["UseDataKey"]["actions"])
    # The drift state is under the artifacts bucket, which the job's Data statement reads (and writes).
    assert {"s3:GetObject", "s3:ListBucket"} <= set(sagemaker["Data"]["actions"])
