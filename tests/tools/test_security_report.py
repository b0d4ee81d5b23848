"""scripts/security_report.py: every grant is either used in a recorded run or kept with a reason."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import yaml

REPO = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("security_report", REPO / "scripts" / "security_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = _load()

RUN_A = {"x-deploy": {"granted": ["ecs:UpdateService", "ecs:Describe*", "logs:PutLogEvents"],
                      "allowed": {"ecs:UpdateService": 2}, "denied": {}}}  # fmt: skip
RUN_B = {"x-deploy": {"granted": ["ecs:UpdateService", "ecs:Describe*"],
                      "allowed": {"ecs:DescribeServices": 1}, "denied": {}}}  # fmt: skip


def test_runs_are_unioned_and_a_pattern_counts_as_used_by_any_matching_call() -> None:
    roles = report.merge([RUN_A, RUN_B])
    text, gaps = report.build(roles, {"grants": {"-*": {"logs:*": "the service writes logs"}}}, ["a", "b"])
    assert gaps == []
    assert "| `ecs:Describe*` | ecs:DescribeServices (1) | |" in text
    assert "| `logs:PutLogEvents` | | the service writes logs |" in text


def test_an_unused_grant_without_a_reason_and_any_access_denied_are_gaps() -> None:
    denied = {"x-deploy": {"granted": [], "allowed": {}, "denied": {"ecs:TagResource": ["arn:td"]}}}
    _, gaps = report.build(report.merge([RUN_A, denied]), {}, ["a"])
    assert any("logs:PutLogEvents is granted and never used" in g for g in gaps)
    assert any("AccessDenied" in g and "ecs:TagResource" in g for g in gaps)


def test_every_reason_names_an_action_pattern_and_a_role_pattern() -> None:
    reasons = yaml.safe_load((REPO / "infra" / "iam-unused-reasons.yaml").read_text())
    for role, grants in reasons["grants"].items():
        assert role.startswith("-") and grants, role
        assert all(":" in action or action == "*" for action in grants), (role, grants)
        assert all(str(why).strip() for why in grants.values()), role
    assert all(str(why).strip() for why in reasons["roles_not_run"].values())
