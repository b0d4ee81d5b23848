"""No path to privilege escalation through the stack's IAM: read from the rendered plan of infra/terraform.

Every role the stack creates carries one permissions boundary (`<name>-boundary`); the CI deploy role,
which runs `terraform apply` and so manages the stack's roles, may create a role or add to a role's
policies only with that boundary on it, may never remove a boundary, rewrite the boundary policy or
touch the CI roles, and may create no user or access key. The policies are evaluated, not grepped
(tests/infra/iam_policies.py: actions, resources, conditions, explicit denies, boundary intersection).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .iam_policies import allows, decision, escalations, roles_without_boundary
from .planned import account_id, dev_plan, read_documents, resources

pytestmark = [pytest.mark.infra, pytest.mark.slow]

NAME = "esteira-dev"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return dev_plan(tmp_path_factory)


@pytest.fixture(scope="module")
def account(plan: dict[str, Any]) -> str:
    return account_id(plan)


def document(plan: dict[str, Any], address: str) -> dict[str, Any]:
    documents = read_documents(plan)
    assert address in documents, f"{address} was not rendered at plan time (an input became unknown)"
    return json.loads(documents[address]["json"])


def iam(account: str, kind: str, name: str) -> str:
    return f"arn:aws:iam::{account}:{kind}/{name}"


def test_every_role_of_the_stack_carries_the_boundary(plan: dict[str, Any], account: str) -> None:
    roles = resources(plan, "aws_iam_role")
    assert len(roles) >= 23, f"only {len(roles)} roles planned: {sorted(roles)}"  # SageMaker backend: all of them
    assert not roles_without_boundary(plan, iam(account, "policy", f"{NAME}-boundary"))
    # ... and the boundary is the policy the plan creates, with the rendered document.
    (policy,) = resources(plan, "aws_iam_policy").values()
    assert policy["name"] == f"{NAME}-boundary"
    assert json.loads(policy["policy"]) == document(plan, "data.aws_iam_policy_document.boundary")


def test_the_deploy_role_cannot_get_past_the_boundary(plan: dict[str, Any], account: str) -> None:
    deploy = document(plan, "module.ci[0].data.aws_iam_policy_document.deploy")
    boundary = document(plan, "data.aws_iam_policy_document.boundary")
    boundary_arn = iam(account, "policy", f"{NAME}-boundary")
    new_role = iam(account, "role", f"{NAME}-anything")
    ci_roles = [iam(account, "role", f"{NAME}-github-{r}") for r in ("deploy", "plan", "train")]
    kwargs: dict[str, Any] = {
        "boundary_arn": boundary_arn,
        "stack_role": new_role,
        "ci_roles": ci_roles,
        "other_policy": ADMIN,
    }
    # Its own policy is enough (defence in depth), and so is the boundary it carries.
    assert escalations([deploy], None, **kwargs) == []
    assert escalations([deploy], boundary, **kwargs) == []
    # It can still do its job: create and change the stack's roles, with the boundary on them.
    with_boundary = {"iam:PermissionsBoundary": boundary_arn}
    for action in ("iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy"):
        assert allows([deploy], action, new_role, with_boundary, boundary), action
    assert allows([deploy], "iam:PassRole", new_role, {}, boundary)
    assert allows([deploy], "iam:GetPolicy", boundary_arn, {}, boundary)


def test_a_bounded_role_cannot_get_past_the_boundary_whatever_its_own_policies(
    plan: dict[str, Any], account: str
) -> None:
    """A role of the stack that somebody gives AdministratorAccess is still held by the boundary."""
    boundary = document(plan, "data.aws_iam_policy_document.boundary")
    everything = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    problems = escalations(
        [everything],
        boundary,
        boundary_arn=iam(account, "policy", f"{NAME}-boundary"),
        stack_role=iam(account, "role", f"{NAME}-deploy"),
        ci_roles=[iam(account, "role", f"{NAME}-github-deploy")],
        other_policy=ADMIN,
    )
    assert problems == []
    # Services the stack does not use are outside it, whatever the role's policies say.
    assert not allows([everything], "ssm:GetParameter", "*", {}, boundary)
    assert not allows([everything], "iam:PassRole", iam(account, "role", "OrganizationAccountAccessRole"), {}, boundary)


def test_the_plan_role_reads_the_state_but_no_data(plan: dict[str, Any], account: str) -> None:
    attached = {a["role"]: a["policy_arn"] for a in resources(plan, "aws_iam_role_policy_attachment").values()}
    assert attached[f"{NAME}-github-plan"].endswith(":policy/ReadOnlyAccess")
    plan_policy = document(plan, "module.ci[0].data.aws_iam_policy_document.plan")
    boundary = document(plan, "data.aws_iam_policy_document.boundary")
    # ReadOnlyAccess, as far as data goes: reads of every object, item, secret and log event.
    read_only = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:Get*", "s3:List*", "dynamodb:GetItem", "dynamodb:Scan", "logs:GetLogEvents"],
                "Resource": "*",
            }
        ]
    }
    documents = [read_only, plan_policy]
    state = "arn:aws:s3:::esteira-tfstate-123456789012/esteira/dev/terraform.tfstate"
    assert allows(documents, "s3:GetObject", state, {}, boundary)
    assert allows(documents, "s3:PutObject", f"{state}.tflock", {}, boundary)  # the plan's lock
    assert not allows(documents, "s3:PutObject", state, {}, boundary)
    assert allows(documents, "s3:GetBucketPolicy", f"arn:aws:s3:::{NAME}-data-{account}", {}, boundary)
    for action, resource in (
        ("s3:GetObject", f"arn:aws:s3:::{NAME}-data-{account}/train/banking77.csv"),
        ("s3:GetObject", f"arn:aws:s3:::{NAME}-capture-{account}/capture/x.jsonl"),
        ("dynamodb:GetItem", f"arn:aws:dynamodb:us-east-1:{account}:table/{NAME}-workflow-lock"),
        ("logs:GetLogEvents", f"arn:aws:logs:us-east-1:{account}:log-group:/esteira/{NAME}/serving:*"),
    ):
        assert decision(documents, action, resource) == "Deny", (action, resource)
