"""Would each call of each unit get through in AWS? tests/infra/reachability.py on real and hand-made state.

Three kinds of test:
- fast, on small hand-written state fragments (part of `make test`, no toolchain): each rule of the
  checker on its own — routes, endpoints, security groups, endpoint policies, private names;
- slow, on `tofu apply` of dev.tfvars and prod.tfvars on the embedded AWS: the stack as applied must
  have no problem (the acceptance test of issue 17 criterion 3);
- slow regressions that break the applied state in memory, one finding at a time, and show the
  checker names it (so the acceptance test cannot pass by checking nothing).

What each unit calls: the emulator's recorded calls when ESTEIRA_REACHABILITY_CALLS names a calls file
(see reachability.load_calls), else DERIVED_CALLS below, read from the code of lambdas/, pipelines/,
model/serving/ and the MLflow task's command.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra import reachability as r
from tests.infra.conftest import CONTRACT, TOOLS_DIR, require

ACCOUNT, REGION = "123456789012", "us-east-1"
MLFLOW = "env:MLFLOW_TRACKING_URI"
# A Lambda that calls MLflow first reads its MLflow user's credential (lambdas/_runtime.py).
SECRET = "secretsmanager:GetSecretValue"
S3_READ = {"s3:GetObject", "s3:ListBucket"}
# What each unit's own code calls (boto3 requests as IAM actions, internal endpoints as env:NAME or
# URL templates), read from the code; keyed by Lambda key (contract.yaml) and task family suffix.
DERIVED_CALLS: dict[str, set[str]] = {
    # model.data.known_labels / read_raw: the labels and the data from S3; pipelines/snapshot.py adds the snapshots
    "lambda:validate_data": S3_READ | {"s3:PutObject"},
    "lambda:evaluate": S3_READ | {MLFLOW, SECRET},
    "lambda:promote": {MLFLOW, SECRET},
    "lambda:deploy": {
        MLFLOW,
        SECRET,
        "ecs:DescribeServices",
        "ecs:DescribeTaskDefinition",
        "ecs:RegisterTaskDefinition",
        "ecs:UpdateService",
        "iam:PassRole",
    },
    "lambda:service_stable": {"ecs:DescribeServices"},
    # the ALB (ESTEIRA_SERVING_URL); smoke rows from S3 when the execution gives smoke_data
    "lambda:smoke_test": {"env:ESTEIRA_SERVING_URL"} | S3_READ,
    "lambda:rollback": {"ecs:UpdateService", MLFLOW, SECRET},
    # the capture window, the per-version drift state (read and written with the report), the metrics;
    # when a drift retrain did not absorb the shift, the notice and the "retrain-paused" lock item
    "lambda:drift_check": S3_READ
    | {"s3:PutObject", "cloudwatch:PutMetricData", "sns:Publish", "dynamodb:PutItem", MLFLOW, SECRET},
    "lambda:retrain_trigger": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "states:StartExecution"},
    "lambda:lock": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"},
    "lambda:canary_check": {
        "elasticloadbalancing:ModifyListener",
        "elasticloadbalancing:AddTags",
        "elasticloadbalancing:RemoveTags",
        "ecs:DescribeServices",
        "ecs:DescribeTaskDefinition",
        "ecs:RegisterTaskDefinition",
        "ecs:UpdateService",
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:DeleteAlarms",
        "cloudwatch:DescribeAlarms",
        "cloudwatch:ListMetrics",
        "cloudwatch:GetMetricData",
        "cloudwatch:PutMetricData",
        "iam:PassRole",
        MLFLOW,
        SECRET,
    },
    # model/serving: the model from MLflow, capture to S3, shadow copies to canary.<namespace>
    "ecs:serving": {"s3:PutObject", MLFLOW, "env:ESTEIRA_SHADOW_URL"},
    # mlflow server --artifacts-destination s3://... --backend-store-uri postgresql://...
    "ecs:mlflow": {
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "postgresql://${DB_HOST}:${DB_PORT}",
    },
    # esteira train: data from S3 (with --reference recent-traffic also the capture and the previous
    # champion's drift state), runs and the model to MLflow
    "ecs:train": S3_READ | {"s3:PutObject", MLFLOW},
    "ecs:ec2": S3_READ | {"s3:PutObject", MLFLOW},  # <name>-train-ec2: the same container on the EC2 hosts
    "sagemaker:train": S3_READ | {"s3:PutObject", MLFLOW, SECRET},  # esteira train reads its MLflow credential
}


def derived_calls(state: dict[str, Any]) -> dict[str, set[str]]:
    """DERIVED_CALLS keyed by each unit's own key in this state (function name, task family, ...)."""
    out: dict[str, set[str]] = {}
    for unit in r.units(state):
        if unit.kind == "lambda":
            key = "lambda:" + unit.name.split(" ", 1)[1]
        elif unit.kind == "sagemaker":
            key = "sagemaker:train"
        else:
            key = "ecs:" + unit.key.rsplit("-", 1)[-1]
        out[unit.key] = DERIVED_CALLS[key]
    return out


RECORDED = Path(__file__).resolve().parents[2] / "infra" / "iam-recorded-calls.json"


def calls_for_state(state: dict[str, Any]) -> dict[str, set[str]]:
    """The map derived from the code, plus every call the embedded AWS recorded for each unit's role in
    the demo and the slow suites (infra/iam-recorded-calls.json, written by scripts/security_report.py),
    or only a calls file that ESTEIRA_REACHABILITY_CALLS names."""
    path = os.environ.get("ESTEIRA_REACHABILITY_CALLS")
    if path:
        return r.load_calls(path)
    calls = derived_calls(state)
    if RECORDED.exists():
        by_role = r.calls_from(json.loads(RECORDED.read_text()))
        for unit in r.units(state):
            calls[unit.key] = calls.get(unit.key, set()) | by_role.get(unit.role_name, set())
    return calls


# ---- hand-written state fragments ---------------------------------------------------------------------
VPC, CIDR = "vpc-1", "10.0.0.0/16"
SUBNETS = {"subnet-a": ("10.0.128.0/20", "us-east-1a", "rtb-a"), "subnet-b": ("10.0.144.0/20", "us-east-1b", "rtb-b")}
PRIVATE = ["subnet-a", "subnet-b"]
THIS_ACCOUNT_ONLY = {
    "Statement": [
        {
            "Sid": "ThisAccountOnly",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "*",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}},
        }
    ]
}
LAYERS = {
    "Sid": "EcrLayers",
    "Effect": "Allow",
    "Principal": "*",
    "Action": "s3:GetObject",
    "Resource": f"arn:aws:s3:::prod-{REGION}-starport-layer-bucket/*",
}
ROLE = f"arn:aws:iam::{ACCOUNT}:role/unit"


def res(kind: str, values: dict[str, Any], *, index: Any = None, mode: str = "managed") -> dict[str, Any]:
    name = values.get("id", "x")
    return {"address": f"{kind}.{name}", "mode": mode, "type": kind, "index": index, "values": values}


def base() -> list[dict[str, Any]]:
    """A VPC with two private subnets (no NAT), a public one, a unit security group that may send
    443 anywhere and 5000-8080 in the VPC, and an endpoint security group admitting 443 from the VPC."""
    out = [
        res("aws_caller_identity", {"account_id": ACCOUNT}, mode="data"),
        res("aws_region", {"region": REGION}, mode="data"),
        res("aws_vpc", {"id": VPC, "cidr_block": CIDR, "enable_dns_support": True, "enable_dns_hostnames": True}),
        res("aws_subnet", {"id": "subnet-p", "vpc_id": VPC, "cidr_block": "10.0.0.0/20"}),
        res("aws_route_table", {"id": "rtb-p", "vpc_id": VPC}),
        res(
            "aws_route",
            {"id": "r-p", "route_table_id": "rtb-p", "destination_cidr_block": "0.0.0.0/0", "gateway_id": "igw-1"},
        ),
        res("aws_route_table_association", {"id": "a-p", "subnet_id": "subnet-p", "route_table_id": "rtb-p"}),
        sg("sg-unit"),
        egress("sg-unit", 443, 443, cidr="0.0.0.0/0"),
        egress("sg-unit", 5000, 8080, cidr=CIDR),
        sg("sg-vpce"),
        ingress("sg-vpce", 443, 443, cidr=CIDR),
    ]
    for subnet, (cidr, az, rtb) in SUBNETS.items():
        out += [
            res("aws_subnet", {"id": subnet, "vpc_id": VPC, "cidr_block": cidr, "availability_zone": az}),
            res("aws_route_table", {"id": rtb, "vpc_id": VPC}),
            res("aws_route_table_association", {"id": f"a-{subnet}", "subnet_id": subnet, "route_table_id": rtb}),
        ]
    return out


def sg(group: str) -> dict[str, Any]:
    return res("aws_security_group", {"id": group, "vpc_id": VPC, "ingress": [], "egress": []})


def _sg_rule(kind: str, group: str, low: int, high: int, cidr: str = "", ref: str = "") -> dict[str, Any]:
    values: dict[str, Any] = {"id": f"{kind}-{group}-{low}-{cidr}{ref}", "security_group_id": group}
    values |= {"ip_protocol": "tcp", "from_port": low, "to_port": high}
    values |= {"cidr_ipv4": cidr or None, "referenced_security_group_id": ref or None}
    return res(f"aws_vpc_security_group_{kind}_rule", values)


def egress(group: str, low: int, high: int, *, cidr: str = "", ref: str = "") -> dict[str, Any]:
    return _sg_rule("egress", group, low, high, cidr, ref)


def ingress(group: str, low: int, high: int, *, cidr: str = "", ref: str = "") -> dict[str, Any]:
    return _sg_rule("ingress", group, low, high, cidr, ref)


def interface(service: str, *, policy: dict[str, Any] | None = None, private_dns: bool = True) -> dict[str, Any]:
    values = {
        "id": f"vpce-{service}",
        "vpc_id": VPC,
        "service_name": f"com.amazonaws.{REGION}.{service}",
        "vpc_endpoint_type": "Interface",
        "private_dns_enabled": private_dns,
        "subnet_ids": ["subnet-a"],
        "security_group_ids": ["sg-vpce"],
        "policy": json.dumps(policy) if policy else None,
    }
    return res("aws_vpc_endpoint", values)


def gateway(service: str, *, policy: dict[str, Any] | None = None, route_tables: tuple[str, ...] = ("rtb-a", "rtb-b")):
    values = {
        "id": f"vpce-{service}",
        "vpc_id": VPC,
        "service_name": f"com.amazonaws.{REGION}.{service}",
        "vpc_endpoint_type": "Gateway",
        "route_table_ids": list(route_tables),
        "prefix_list_id": f"pl-{service}",
        "policy": json.dumps(policy) if policy else None,
    }
    return res("aws_vpc_endpoint", values)


def nat() -> list[dict[str, Any]]:
    out = [res("aws_nat_gateway", {"id": "nat-1", "subnet_id": "subnet-p", "public_ip": "203.0.113.7"})]
    for rtb in ("rtb-a", "rtb-b"):
        route = {
            "id": f"r-{rtb}",
            "route_table_id": rtb,
            "destination_cidr_block": "0.0.0.0/0",
            "nat_gateway_id": "nat-1",
        }
        out.append(res("aws_route", route))
    return out


def function(key: str, *, in_vpc: bool = True, env: dict[str, str] | None = None) -> dict[str, Any]:
    vpc = [{"subnet_ids": PRIVATE, "security_group_ids": ["sg-unit"], "vpc_id": VPC}] if in_vpc else []
    values = {
        "id": f"fn-{key}",
        "function_name": f"app-{key}",
        "role": ROLE,
        "vpc_config": vpc,
        "environment": [{"variables": env or {}}],
    }
    return res("aws_lambda_function", values, index=key)


MLFLOW_URI = "http://mlflow.app.internal:5000"


def mlflow() -> list[dict[str, Any]]:
    """MLflow as an ECS service in the private subnets behind a Cloud Map name, port 5000 from the VPC."""
    container = {"name": "mlflow", "image": "mlflow", "portMappings": [{"containerPort": 5000}]}
    td = {
        "id": "td-mlflow",
        "family": "app-mlflow",
        "arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/app-mlflow:1",
        "task_role_arn": ROLE,
        "container_definitions": json.dumps([container]),
        "requires_compatibilities": ["EC2"],
    }
    svc = {
        "id": "svc-mlflow",
        "name": "mlflow",
        "task_definition": td["arn"],
        "network_configuration": [{"subnets": PRIVATE, "security_groups": ["sg-mlflow"], "assign_public_ip": False}],
        "service_registries": [{"registry_arn": "arn:srv-mlflow"}],
    }
    return [
        res("aws_ecs_task_definition", td),
        res("aws_ecs_service", svc),
        res("aws_service_discovery_private_dns_namespace", {"id": "ns-1", "name": "app.internal", "vpc": VPC}),
        res(
            "aws_service_discovery_service",
            {"id": "srv-mlflow", "arn": "arn:srv-mlflow", "name": "mlflow", "dns_config": [{"namespace_id": "ns-1"}]},
        ),
        sg("sg-mlflow"),
        ingress("sg-mlflow", 5000, 5000, cidr=CIDR),
    ]


def fargate(family: str = "app-serving", *, secrets: bool = False) -> list[dict[str, Any]]:
    container: dict[str, Any] = {
        "name": "app",
        "image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/app/serving:1",
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/app/serving"}},
    }
    if secrets:
        container["secrets"] = [
            {"name": "PW", "valueFrom": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:db-AbCdEf:password::"}
        ]
    td = {
        "id": f"td-{family}",
        "family": family,
        "arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:1",
        "task_role_arn": ROLE,
        "execution_role_arn": f"arn:aws:iam::{ACCOUNT}:role/exec",
        "container_definitions": json.dumps([container]),
        "requires_compatibilities": ["FARGATE"],
    }
    svc = {
        "id": f"svc-{family}",
        "name": family,
        "launch_type": "FARGATE",
        "task_definition": td["arn"],
        "network_configuration": [{"subnets": PRIVATE, "security_groups": ["sg-unit"], "assign_public_ip": False}],
    }
    return [res("aws_ecs_task_definition", td), res("aws_ecs_service", svc)]


def state(*resources: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    flat: list[dict[str, Any]] = []
    for item in resources:
        flat += item if isinstance(item, list) else [item]
    return {"values": {"root_module": {"resources": flat}}}


def found(problems: list[r.Problem], *words: str) -> list[r.Problem]:
    return [p for p in problems if all(w in str(p) for w in words)]


# ---- fast: the rules one by one -----------------------------------------------------------------------
def test_private_lambda_without_nat_needs_the_service_endpoint() -> None:
    doc = state(base(), function("canary_check"))
    calls = {"app-canary_check": {"elasticloadbalancing:ModifyListener"}}
    (problem,) = r.check(doc, calls)
    assert problem.unit == "lambda canary_check" and problem.placement == "private subnets, no NAT"
    assert str(problem) == (
        "lambda canary_check (private subnets, no NAT) calls elasticloadbalancing:ModifyListener: "
        "no elasticloadbalancing VPC endpoint and no NAT gateway"
    )
    assert r.check(state(base(), function("canary_check"), interface("elasticloadbalancing")), calls) == []


def test_a_nat_gateway_reaches_public_endpoints_if_the_security_group_lets_443_out() -> None:
    calls = {"app-x": {"elasticloadbalancing:ModifyListener", "sns:Publish"}}
    assert r.check(state(base(), nat(), function("x")), calls) == []
    assert r.describe(r.Stack.read(state(base(), nat())), r.Placement(VPC, tuple(PRIVATE), ("sg-unit",))) == (
        "private subnets, NAT"
    )
    closed = [x for x in base() if not (x["type"].endswith("egress_rule") and x["values"]["from_port"] == 443)]
    problems = r.check(state(closed, nat(), function("x")), calls)
    assert len(problems) == 2 and all("allow no egress on 443 to the internet" in p.missing for p in problems)


def test_a_nat_gateway_whose_subnet_has_no_internet_gateway_route_is_no_way_out() -> None:
    broken = [x for x in base() if x["values"].get("id") != "r-p"]
    (problem,) = r.check(state(broken, nat(), function("x")), {"app-x": {"sns:Publish"}})
    assert "no sns VPC endpoint and no NAT gateway" in problem.missing


def test_interface_endpoint_without_private_dns_does_not_carry_the_sdk_calls() -> None:
    doc = state(base(), function("x"), interface("sns", private_dns=False))
    (problem,) = r.check(doc, {"app-x": {"sns:Publish"}})
    assert "vpce-sns does not" in problem.missing


def test_endpoint_security_group_must_admit_443_from_the_unit() -> None:
    no_ingress = [x for x in base() if x["type"] != "aws_vpc_security_group_ingress_rule"]
    (problem,) = r.check(state(no_ingress, function("x"), interface("sns")), {"app-x": {"sns:Publish"}})
    assert "sg-vpce admit no 443" in problem.missing
    by_group = state(no_ingress, ingress("sg-vpce", 443, 443, ref="sg-unit"), function("x"), interface("sns"))
    assert r.check(by_group, {"app-x": {"sns:Publish"}}) == []


def test_unit_security_group_must_let_443_out_to_the_endpoint() -> None:
    only_vpc = [x for x in base() if x["values"].get("cidr_ipv4") != "0.0.0.0/0"]
    (problem,) = r.check(state(only_vpc, function("x"), interface("sns")), {"app-x": {"sns:Publish"}})
    assert "sg-unit allow no egress on 443 to the sns interface endpoint" in problem.missing
    to_vpc = state(only_vpc, egress("sg-unit", 443, 443, cidr=CIDR), function("x"), interface("sns"))
    assert r.check(to_vpc, {"app-x": {"sns:Publish"}}) == []


def test_gateway_endpoint_must_be_on_the_subnets_route_tables() -> None:
    calls = {"app-x": {"dynamodb:PutItem"}}
    assert r.check(state(base(), function("x"), gateway("dynamodb")), calls) == []
    (problem,) = r.check(state(base(), function("x"), gateway("dynamodb", route_tables=("rtb-a",))), calls)
    assert problem.missing.endswith("(from subnet-b)") and "vpce-dynamodb does not" in problem.missing


def test_endpoint_policy_admits_only_what_it_names() -> None:
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": ROLE},
                "Action": "sns:Publish",
                "Resource": f"arn:aws:sns:{REGION}:{ACCOUNT}:ok",
            }
        ]
    }
    doc = state(
        base(),
        function("x"),
        interface("sns", policy=policy),
        res("aws_iam_role", {"id": "unit", "name": "unit", "arn": ROLE}),
        res(
            "aws_iam_role_policy",
            {
                "id": "p",
                "role": "unit",
                "policy": json.dumps(
                    {"Statement": [{"Effect": "Allow", "Action": "sns:Publish", "Resource": "arn:aws:sns:*:*:*"}]}
                ),
            },
        ),
    )
    (problem,) = r.check(doc, {"app-x": {"sns:Publish"}})  # the role may publish anywhere; the endpoint: one topic
    assert "policy refuses it" in problem.missing and "arn:aws:sns:*:*:*" in problem.missing


def test_policy_evaluation() -> None:
    me = r.Principal(ROLE, ACCOUNT, "role unit")
    aws_owned = r.Principal(None, None, "an AWS-owned principal")
    call = r.Call("s3:GetObject", ("*",), me)
    ctx = {"aws:principalaccount": ACCOUNT, "aws:principalarn": ROLE}
    assert r.policy_refusal(None, call, "arn:aws:s3:::b/k", ctx) == ""  # no policy: AWS's default, full access
    assert r.policy_refusal(THIS_ACCOUNT_ONLY, call, "arn:aws:s3:::b/k", ctx) == ""
    foreign = r.Call("s3:GetObject", ("*",), aws_owned)
    assert "no statement allows" in r.policy_refusal(THIS_ACCOUNT_ONLY, foreign, "arn:aws:s3:::b/k", {})
    with_layers = {"Statement": [*THIS_ACCOUNT_ONLY["Statement"], LAYERS]}
    layer = f"arn:aws:s3:::prod-{REGION}-starport-layer-bucket/*"
    assert r.policy_refusal(with_layers, foreign, layer, {}) == ""
    deny = {
        "Statement": [
            *with_layers["Statement"],
            {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"},
        ]
    }
    assert r.policy_refusal(deny, call, "arn:aws:s3:::b/k", ctx).startswith("an explicit Deny")
    negated = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:PrincipalAccount": "999999999999"}},
            }
        ]
    }
    assert r.policy_refusal(negated, foreign, layer, {}) == ""  # a missing key satisfies a negated operator
    unknown = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1"}},
            }
        ]
    }
    assert "aws:PrincipalOrgID are not modelled" in r.policy_refusal(unknown, call, "arn:aws:s3:::b/k", ctx)


def test_fargate_image_logs_and_secrets_go_through_the_task_subnets() -> None:
    endpoints = [interface(s, policy=THIS_ACCOUNT_ONLY) for s in ("ecr.api", "ecr.dkr", "logs", "secretsmanager")]
    layers = gateway("s3", policy={"Statement": [*THIS_ACCOUNT_ONLY["Statement"], LAYERS]})
    assert r.check(state(base(), fargate(secrets=True), endpoints, layers), {}) == []
    problems = r.check(state(base(), fargate(secrets=True), endpoints, gateway("s3", policy=THIS_ACCOUNT_ONLY)), {})
    (problem,) = problems
    assert problem.unit == "ecs app-serving (service app-serving)"
    assert "starport-layer-bucket" in problem.call and "policy refuses it" in problem.missing
    missing = r.check(state(base(), fargate(secrets=True), endpoints[:2], layers), {})
    assert {p.call.split(":")[0] for p in missing} == {"awslogs", "secrets"}
    assert found(missing, "secretsmanager:GetSecretValue", "secret:db-AbCdEf", "no secretsmanager VPC endpoint")


def test_a_lambdas_image_and_logs_are_not_fetched_through_its_vpc() -> None:
    service_side = {"app-x": {"logs:PutLogEvents", "ec2:CreateNetworkInterface", "ecr:BatchGetImage", "iam:PassRole"}}
    assert r.check(state(base(), function("x")), service_side) == []
    # Key use S3 asks KMS for on an encrypted object is a permission check, not the unit's request.
    assert (
        r.check(state(base(), function("x"), gateway("s3")), {"app-x": {"s3:PutObject", "kms:GenerateDataKey"}}) == []
    )


def test_private_names_resolve_and_answer_only_inside_the_vpc() -> None:
    env = {"MLFLOW_TRACKING_URI": MLFLOW_URI}
    calls = {"app-in": {MLFLOW}, "app-out": {MLFLOW}}
    problems = r.check(state(base(), mlflow(), function("in", env=env), function("out", in_vpc=False, env=env)), calls)
    (problem,) = problems
    assert problem.unit == "lambda out" and problem.placement == "outside the VPC"
    assert "mlflow.app.internal is a private Cloud Map name" in problem.missing and MLFLOW_URI in problem.call


def test_private_name_needs_egress_and_ingress_on_its_port() -> None:
    env = {"MLFLOW_TRACKING_URI": MLFLOW_URI}
    no_ingress = [x for x in mlflow() if x["type"] != "aws_vpc_security_group_ingress_rule"]
    (problem,) = r.check(state(base(), no_ingress, function("x", env=env)), {"app-x": {MLFLOW}})
    assert "sg-mlflow admit no 5000" in problem.missing
    wrong_port = {"MLFLOW_TRACKING_URI": "http://mlflow.app.internal:5001"}
    (problem,) = r.check(state(base(), mlflow(), function("x", env=wrong_port)), {"app-x": {MLFLOW}})
    assert "does not listen on 5001" in problem.missing
    (problem,) = r.check(state(base(), mlflow(), function("x")), {"app-x": {MLFLOW}})
    assert problem.missing == "the unit's environment has no MLFLOW_TRACKING_URI"


def test_url_templates_over_the_environment_reach_the_database() -> None:
    db = [
        res("aws_db_subnet_group", {"id": "dbs", "name": "dbs", "subnet_ids": PRIVATE}),
        res(
            "aws_db_instance",
            {"id": "db", "address": "db.example.internal", "port": 5432, "db_subnet_group_name": "dbs"}
            | {"vpc_security_group_ids": ["sg-db"], "publicly_accessible": False},
        ),
        sg("sg-db"),
    ]
    env = {"DB_HOST": "db.example.internal", "DB_PORT": "5432"}
    calls = {"app-x": {"postgresql://${DB_HOST}:${DB_PORT}"}}
    (problem,) = r.check(state(base(), db, function("x", env=env)), calls)
    assert problem.call == "postgresql://${DB_HOST}:${DB_PORT} (postgresql://db.example.internal:5432)"
    assert "sg-db admit no 5432 from the unit" in problem.missing  # sg-unit's 5000-8080 egress covers 5432
    assert r.check(state(base(), db, ingress("sg-db", 5432, 5432, ref="sg-unit"), function("x", env=env)), calls) == []
    (problem,) = r.check(state(base(), db, function("x", env={"DB_HOST": "db.example.internal"})), calls)
    assert problem.missing == "the unit's environment has no DB_PORT"


def internet_alb(*, ingress_cidr: str = "0.0.0.0/0") -> list[dict[str, Any]]:
    lb = {
        "id": "lb",
        "arn": "arn:lb",
        "name": "app",
        "dns_name": "app-1.us-east-1.elb.amazonaws.com",
        "internal": False,
        "subnets": ["subnet-p"],
        "security_groups": ["sg-alb"],
    }
    listener = {
        "id": "l",
        "load_balancer_arn": "arn:lb",
        "port": 80,
        "default_action": [{"target_group_arn": "arn:tg"}],
    }
    return [
        res("aws_lb", lb),
        res("aws_lb_listener", listener),
        sg("sg-alb"),
        ingress("sg-alb", 80, 80, cidr=ingress_cidr),
    ]


def test_internet_facing_alb_needs_the_internet() -> None:
    env = {"ESTEIRA_SERVING_URL": "http://app-1.us-east-1.elb.amazonaws.com"}
    calls = {"app-in": {"env:ESTEIRA_SERVING_URL"}, "app-out": {"env:ESTEIRA_SERVING_URL"}}
    inside, outside = function("in", env=env), function("out", in_vpc=False, env=env)
    (problem,) = r.check(state(base(), internet_alb(), inside, outside), calls)
    assert problem.unit == "lambda in" and "internet-facing load balancer (public addresses)" in problem.missing
    http_out = egress("sg-unit", 80, 80, cidr="0.0.0.0/0")
    assert r.check(state(base(), internet_alb(), nat(), http_out, inside), calls) == []
    # Through the NAT gateway the ALB sees the NAT's address: an ingress list without it refuses.
    narrow = state(base(), internet_alb(ingress_cidr="198.51.100.0/24"), nat(), http_out, inside)
    assert found(r.check(narrow, calls), "lambda in", "admits no 80 from the unit's public address")
    admitted = state(base(), internet_alb(ingress_cidr="203.0.113.7/32"), nat(), http_out, inside)
    assert r.check(admitted, calls) == []


def sfn(definition: dict[str, Any]) -> dict[str, Any]:
    return res("aws_sfn_state_machine", {"id": "sm", "definition": json.dumps(definition)})


def training_job(vpc: dict[str, Any] | None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/sagemaker",
        "AlgorithmSpecification": {"TrainingImage": "img"},
        "Environment": {"MLFLOW_TRACKING_URI": MLFLOW_URI},
        "OutputDataConfig": {"S3OutputPath": "s3://artifacts/sagemaker/"},
    }
    if vpc is not None:
        params["VpcConfig"] = vpc
    task = {"Type": "Task", "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync", "Parameters": params}
    return sfn({"StartAt": "Train", "States": {"Train": task}})


def test_sagemaker_job_without_vpc_config_cannot_reach_a_private_mlflow() -> None:
    calls = {"sagemaker:Train": {MLFLOW, "s3:GetObject"}}
    (problem,) = r.check(state(base(), mlflow(), training_job(None)), calls)
    assert (
        problem.unit == "sagemaker training job (state machine task Train)" and "mlflow.app.internal" in problem.missing
    )
    in_vpc = training_job({"Subnets": PRIVATE, "SecurityGroupIds": ["sg-unit"]})
    problems = r.check(state(base(), mlflow(), in_vpc), calls)
    # In VPC mode the job's S3 output, logs and metrics go through its subnets too.
    assert {p.call.split(":")[0] for p in problems} == {"training output", "training logs", "training metrics", "s3"}
    endpoints = [gateway("s3"), interface("logs"), interface("monitoring")]
    assert r.check(state(base(), mlflow(), in_vpc, endpoints), calls) == []


def test_a_job_without_a_role_is_not_configured_and_run_time_subnets_are_reported() -> None:
    unconfigured = training_job(None)
    definition = json.loads(unconfigured["values"]["definition"])
    definition["States"]["Train"]["Parameters"]["RoleArn"] = ""
    assert r.units(state(base(), sfn(definition))) == []
    run_task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::ecs:runTask.sync",
        "Parameters": {
            "Cluster": "c",
            "TaskDefinition": "app-serving:1",
            "NetworkConfiguration": {"AwsvpcConfiguration": {"Subnets.$": "$.s"}},
        },
    }
    doc = state(base(), fargate(), sfn({"StartAt": "Run", "States": {"Run": run_task}}))
    assert found(r.check(doc, {}), "state machine task Run", "(placement)", "chosen at run time")
    # A literal split (how the templates carry Terraform's subnet list inside a string) is fixed in the state.
    net = run_task["Parameters"]["NetworkConfiguration"]["AwsvpcConfiguration"]  # type: ignore[index]
    net.clear()
    net.update(
        {
            "Subnets.$": "States.StringSplit('subnet-x,subnet-y', ',')",
            "SecurityGroups.$": "States.StringSplit('sg-1', ',')",
        }
    )
    doc = state(base(), fargate(), sfn({"StartAt": "Run", "States": {"Run": run_task}}))
    assert not found(r.check(doc, {}), "state machine task Run", "(placement)", "chosen at run time")


def test_calls_by_unit_key_win_over_the_role_and_the_emulator_report_is_read() -> None:
    doc = state(base(), function("x"))
    (unit,) = r.units(doc)
    assert (unit.key, unit.role_name) == ("app-x", "unit")
    assert r.calls_for(unit, {"unit": {"sns:Publish"}, "app-x": {"sqs:SendMessage"}}) == {"sqs:SendMessage"}
    assert r.calls_for(unit, {"unit": {"sns:Publish"}}) == {"sns:Publish"}
    assert r.unchecked(doc, {}) == ["lambda x"]
    report = {
        "unit": {"allowed": {"sns:Publish": 3}, "denied": {"sqs:SendMessage": ["arn:q"]}},
        "other": ["s3:GetObject"],
    }
    assert r.calls_from(report) == {"unit": {"sns:Publish", "sqs:SendMessage"}, "other": {"s3:GetObject"}}


def test_derived_calls_cover_every_lambda_of_the_contract() -> None:
    keys = yaml.safe_load(CONTRACT.read_text())["lambda_functions"]
    assert sorted(k.removeprefix("lambda:") for k in DERIVED_CALLS if k.startswith("lambda:")) == sorted(keys)


# ---- slow: the applied stack ---------------------------------------------------------------------------
def apply_state(workdir: Path, var_file: str, variables: dict[str, str]) -> dict[str, Any]:
    """`tofu apply` of the root module with a var file on a fresh embedded AWS; `tofu show -json` of it."""
    from localaws.server import LocalAWS
    from localaws.terraform import StackApply, toolchain

    tools = toolchain()
    if tools is None:
        require(TOOLS_DIR / "ready", "the Terraform toolchain (scripts/tools.sh)")
        raise AssertionError("unreachable")
    with LocalAWS(workdir=workdir / "localaws") as aws:
        apply = StackApply(aws.endpoint_url, workdir, *tools, var_file=var_file, variables=variables).start()
        try:
            apply.join(1800)
            return apply.state()
        finally:
            apply.stop()


@pytest.fixture(scope="module")
def dev_state(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """dev.tfvars with the user's `-var training_backend=sagemaker` and the EC2 training capacity (as the
    workflow suite applies it): the state then holds every unit — the Fargate RunTask, the EC2 one and
    the SageMaker job."""
    return apply_state(
        tmp_path_factory.mktemp("dev"),
        "envs/dev.tfvars",
        {"training_backend": "sagemaker", "ec2_training": "{enabled=true}"},
    )


@pytest.fixture(scope="module")
def prod_state(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """prod.tfvars as it is (the embedded AWS applies it like dev: Multi-AZ, deletion protection and all)."""
    return apply_state(tmp_path_factory.mktemp("prod"), "envs/prod.tfvars", {})


def record(name: str, state: dict[str, Any], problems: list[r.Problem]) -> None:
    """reports/reachability-<env>.json: what was checked and found, for the CI artifacts."""
    path = Path(__file__).resolve().parents[2] / "reports" / f"reachability-{name}.json"
    path.parent.mkdir(exist_ok=True)
    units = [{"unit": u.name, "placement": r.describe(r.Stack.read(state), u.placement)} for u in r.units(state)]
    path.write_text(json.dumps({"units": units, "problems": [str(p) for p in problems]}, indent=2) + "\n")


def assert_every_unit(state: dict[str, Any], families: tuple[str, ...]) -> None:
    names = [u.name for u in r.units(state)]
    keys = yaml.safe_load(CONTRACT.read_text())["lambda_functions"]
    assert sorted(n.removeprefix("lambda ") for n in names if n.startswith("lambda ")) == sorted(keys)
    for family in families:
        assert any(f"-{family} (" in n for n in names), f"no ECS unit of the {family} family in {names}"


@pytest.mark.slow
@pytest.mark.infra
def test_dev_stack_every_call_gets_through(dev_state: dict[str, Any]) -> None:
    assert_every_unit(dev_state, ("serving", "mlflow", "train", "train-ec2"))
    assert any(u.kind == "sagemaker" for u in r.units(dev_state)), "training_backend=sagemaker: no training job"
    problems = r.check(dev_state, calls_for_state(dev_state))
    record("dev", dev_state, problems)
    assert not problems, "calls that would not get through in AWS:\n" + "\n".join(map(str, problems))


@pytest.mark.slow
@pytest.mark.infra
def test_prod_stack_every_call_gets_through(prod_state: dict[str, Any]) -> None:
    assert_every_unit(prod_state, ("serving", "mlflow", "train"))
    problems = r.check(prod_state, calls_for_state(prod_state))
    record("prod", prod_state, problems)
    assert not problems, "calls that would not get through in AWS:\n" + "\n".join(map(str, problems))


# ---- slow regressions: break the applied state in memory, one finding at a time --------------------------
def resources(doc: dict[str, Any]) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any]]]:
    """(the list holding it, resource) for every resource of a state, to edit or remove in place."""

    def walk(module: dict[str, Any]) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any]]]:
        for item in list(module.get("resources", [])):
            yield module["resources"], item
        for child in module.get("child_modules", []):
            yield from walk(child)

    yield from walk(doc["values"]["root_module"])


def without(doc: dict[str, Any], predicate: Any) -> dict[str, Any]:
    broken = copy.deepcopy(doc)
    for holder, item in resources(broken):
        if predicate(item):
            holder.remove(item)
    return broken


def endpoint_of(item: dict[str, Any], service: str) -> bool:
    return item["type"] == "aws_vpc_endpoint" and str(item["values"].get("service_name", "")).endswith(f".{service}")


@pytest.mark.slow
@pytest.mark.infra
def test_regression_no_elasticloadbalancing_endpoint(dev_state: dict[str, Any]) -> None:
    broken = without(dev_state, lambda x: endpoint_of(x, "elasticloadbalancing"))
    problems = r.check(broken, calls_for_state(broken))
    hits = found(
        problems, "lambda canary_check", "elasticloadbalancing:ModifyListener", "no elasticloadbalancing VPC endpoint"
    )
    assert hits, "\n".join(map(str, problems))


@pytest.mark.slow
@pytest.mark.infra
def test_regression_s3_endpoint_policy_without_the_layer_bucket(dev_state: dict[str, Any]) -> None:
    broken = copy.deepcopy(dev_state)
    for _, item in resources(broken):
        if endpoint_of(item, "s3") and item["values"].get("vpc_endpoint_type") == "Gateway":
            policy = json.loads(item["values"]["policy"])
            policy["Statement"] = [s for s in policy["Statement"] if "starport" not in json.dumps(s)]
            item["values"]["policy"] = json.dumps(policy)
    problems = found(r.check(broken, calls_for_state(broken)), "image pull (layers)", "starport-layer-bucket")
    families = {u.key for u in r.units(broken) if u.kind == "ecs"}
    assert families == {f"esteira-dev-{f}" for f in ("serving", "mlflow", "train", "train-ec2")}
    # Fargate pulls a task's image in the task's network; on EC2 the host's agent pulls it, and the
    # hosts are not a unit of this model (docs/training-capacity.md), so train-ec2 has no pull here.
    for family in families - {"esteira-dev-train-ec2"}:
        assert found(problems, f"ecs {family} ("), f"{family}: no layer-bucket problem in\n" + "\n".join(
            map(str, problems)
        )


@pytest.mark.slow
@pytest.mark.infra
def test_regression_sagemaker_job_outside_the_vpc(dev_state: dict[str, Any]) -> None:
    broken = copy.deepcopy(dev_state)
    for _, item in resources(broken):
        if item["type"] == "aws_sfn_state_machine":
            definition = json.loads(item["values"]["definition"])
            for state_ in definition["States"].values():
                (state_.get("Parameters") or {}).pop("VpcConfig", None)
            item["values"]["definition"] = json.dumps(definition)
    problems = r.check(broken, calls_for_state(broken))
    hits = found(
        problems, "sagemaker training job", "(outside the VPC)", "MLFLOW_TRACKING_URI", "mlflow.esteira-dev.internal"
    )
    assert hits, "\n".join(map(str, problems))


@pytest.mark.slow
@pytest.mark.infra
def test_regression_lambda_outside_the_vpc_calling_mlflow(dev_state: dict[str, Any]) -> None:
    broken = copy.deepcopy(dev_state)
    for _, item in resources(broken):
        if item["type"] == "aws_lambda_function" and item.get("index") == "promote":
            item["values"]["vpc_config"] = []
    problems = r.check(broken, calls_for_state(broken))
    assert found(
        problems, "lambda promote (outside the VPC)", "mlflow.esteira-dev.internal is a private Cloud Map name"
    )


@pytest.mark.slow
@pytest.mark.infra
def test_regression_endpoint_security_group_without_443(dev_state: dict[str, Any]) -> None:
    stack = r.Stack.read(dev_state)
    groups = {g for e in stack.endpoints if e.get("vpc_endpoint_type") == "Interface" for g in e["security_group_ids"]}

    def https_into_endpoints(item: dict[str, Any]) -> bool:
        v = item["values"]
        return item["type"] in ("aws_vpc_security_group_ingress_rule", "aws_security_group_rule") and (
            v.get("security_group_id") in groups
            and int(v.get("from_port") or 0) <= 443 <= int(v.get("to_port") or 65535)
        )

    broken = without(dev_state, https_into_endpoints)
    problems = r.check(broken, calls_for_state(broken))
    # Every unit in the VPC calls some interface endpoint: the Lambdas their APIs, the tasks logs and ECR.
    assert found(problems, "lambda canary_check", "cloudwatch:GetMetricData", "admit no 443")
    assert found(problems, "ecs esteira-dev-serving (service esteira-serving)", "awslogs", "admit no 443")
    assert not found(problems, "lambda smoke_test"), "smoke_test runs outside the VPC"
