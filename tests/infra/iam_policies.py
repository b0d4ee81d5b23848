"""Find IAM policy documents in `tofu show -json` output and flag statements that allow everything.

Policies come from three places: values known in the plan or state (aws_iam_role_policy.policy,
assume_role_policy, bucket/topic/key policies, rendered aws_iam_policy_document.json), and - for
documents whose values are still unknown at plan time - the configuration itself, where a literal
"*" in both actions and resources of an aws_iam_policy_document statement is visible.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

POLICY_ATTRIBUTES = ("policy", "assume_role_policy", "json")
FORBIDDEN_MANAGED = ("/AdministratorAccess", "/PowerUserAccess", "/IAMFullAccess")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def is_allow_all(statement: dict[str, Any]) -> bool:
    """True when a statement allows every action on every resource (or NotAction on everything)."""
    if statement.get("Effect", "Allow") != "Allow":
        return False
    resources = _as_list(statement.get("Resource"))
    everything = "*" in resources or ("NotResource" in statement and not resources)
    if not everything:
        return False
    return "*" in _as_list(statement.get("Action")) or "NotAction" in statement


def _modules(module: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    if not module:
        return
    yield module
    for child in module.get("child_modules", []):
        yield from _modules(child)


def _resources(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(address, values) for every resource whose values are known, in a plan or a state."""
    roots = [
        document.get("planned_values", {}).get("root_module"),
        document.get("prior_state", {}).get("values", {}).get("root_module"),
        document.get("values", {}).get("root_module"),
    ]
    for root in roots:
        for module in _modules(root):
            for resource in module.get("resources", []):
                yield resource["address"], resource.get("values") or {}
    for change in document.get("resource_changes", []):
        after = (change.get("change") or {}).get("after")
        if isinstance(after, dict):
            yield change["address"], after


def policy_documents(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Known policy documents keyed by '<address>.<attribute>'."""
    found: dict[str, dict[str, Any]] = {}
    for address, values in _resources(document):
        candidates = [(attr, values.get(attr)) for attr in POLICY_ATTRIBUTES]
        candidates += [
            (f"inline_policy[{i}]", p.get("policy")) for i, p in enumerate(values.get("inline_policy") or [])
        ]
        for attr, raw in candidates:
            if not isinstance(raw, str) or "Statement" not in raw:
                continue
            parsed = json.loads(raw)
            if isinstance(parsed, dict) and "Statement" in parsed:
                found[f"{address}.{attr}"] = parsed
    return found


def managed_policy_arns(document: dict[str, Any]) -> dict[str, str]:
    return {
        address: values["policy_arn"]
        for address, values in _resources(document)
        if isinstance(values.get("policy_arn"), str)
    }


def _config_modules(module: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield prefix, module
    for name, call in module.get("module_calls", {}).items():
        yield from _config_modules(call.get("module", {}), f"{prefix}module.{name}.")


def configured_allow_all(document: dict[str, Any]) -> list[str]:
    """aws_iam_policy_document statements whose literal actions and resources are both '*'."""
    bad: list[str] = []
    root = document.get("configuration", {}).get("root_module", {})
    for prefix, module in _config_modules(root):
        for resource in module.get("resources", []):
            if resource.get("type") != "aws_iam_policy_document":
                continue
            for i, statement in enumerate(resource.get("expressions", {}).get("statement", [])):
                effect = statement.get("effect", {}).get("constant_value", "Allow")
                actions = statement.get("actions", {}).get("constant_value") or []
                resources = statement.get("resources", {}).get("constant_value") or []
                not_actions = "not_actions" in statement
                if effect == "Allow" and "*" in resources and ("*" in actions or not_actions):
                    bad.append(f"{prefix}{resource['address']}.statement[{i}]")
    return bad


def violations(document: dict[str, Any]) -> list[str]:
    """Every place in a plan/state JSON where IAM grants '*' on '*' (or attaches an admin policy)."""
    bad = [
        f"{where}: {json.dumps(statement)}"
        for where, policy in policy_documents(document).items()
        for statement in _as_list(policy.get("Statement"))
        if is_allow_all(statement)
    ]
    bad += [f"{a}: {arn}" for a, arn in managed_policy_arns(document).items() if arn.endswith(FORBIDDEN_MANAGED)]
    bad += configured_allow_all(document)
    return bad
