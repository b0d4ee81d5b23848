"""Find IAM policy documents in `tofu show -json` output and flag statements that allow everything.

Policies come from three places: values known in the plan or state (aws_iam_role_policy.policy,
assume_role_policy, bucket/topic/key policies, rendered aws_iam_policy_document.json), and - for
documents whose values are still unknown at plan time - the configuration itself, where a literal
"*" in both actions and resources of an aws_iam_policy_document statement is visible.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
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


# ---- evaluation: would these policies allow one request? (enough of IAM's logic for the escalation checks)
def _glob(pattern: str, value: str, *, case: bool) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _condition_holds(operator: str, key: str, wanted: list[str], context: Mapping[str, str | list[str]]) -> bool:
    """One condition; a multivalued key (a list in `context`) takes a set operator, as in AWS:
    ForAllValues holds when every value matches (and on an absent key or no values), ForAnyValue when
    one does; a single-valued operator on a list, or a set operator on a single value, never holds."""
    qualifier, _, rest = operator.rpartition(":")
    if qualifier:
        if qualifier not in ("ForAllValues", "ForAnyValue"):
            raise ValueError(f"condition operator {operator} is not modelled")
        if key not in context:
            return qualifier == "ForAllValues"
        values = context[key]
        if not isinstance(values, list):
            return False
        hits = [_condition_holds(rest, key, wanted, {key: v}) for v in values]
        return all(hits) if qualifier == "ForAllValues" else any(hits)
    if_exists = operator.endswith("IfExists")
    op = operator.removesuffix("IfExists")
    if op == "Null":
        return (key not in context) == (str(wanted[0]).lower() == "true")
    if isinstance(context.get(key), list):
        return False
    negated = op.startswith(("StringNot", "ArnNot"))
    if key not in context:  # AWS: a missing key fails a condition, except a negated or ...IfExists one
        return if_exists or negated
    actual = str(context[key])
    if op in ("StringEquals", "ArnEquals", "StringNotEquals", "ArnNotEquals"):
        hit = actual in wanted
    elif op in ("StringLike", "ArnLike", "StringNotLike", "ArnNotLike"):
        hit = any(_glob(w, actual, case=True) for w in wanted)
    elif op in ("StringEqualsIgnoreCase", "Bool"):
        hit = actual.lower() in (w.lower() for w in wanted)
    else:
        raise ValueError(f"condition operator {operator} is not modelled")
    return not hit if negated else hit


def statement_applies(
    statement: dict[str, Any], action: str, resource: str, context: Mapping[str, str | list[str]]
) -> bool:
    """Does the statement (whatever its effect) match this action, resource and request context?"""
    if "Action" in statement:
        if not any(_glob(a, action, case=False) for a in _as_list(statement["Action"])):
            return False
    elif any(_glob(a, action, case=False) for a in _as_list(statement.get("NotAction"))):
        return False
    if "Resource" in statement:
        if not any(_glob(r, resource, case=True) for r in _as_list(statement["Resource"])):
            return False
    elif any(_glob(r, resource, case=True) for r in _as_list(statement.get("NotResource"))):
        return False
    for operator, pairs in (statement.get("Condition") or {}).items():
        for key, wanted in pairs.items():
            if not _condition_holds(operator, key, [str(w) for w in _as_list(wanted)], context):
                return False
    return True


def decision(
    documents: list[dict[str, Any]], action: str, resource: str, context: Mapping[str, str | list[str]] | None = None
) -> str:
    """'Deny' (explicit), 'Allow' or 'Neutral' (implicitly denied) under these policy documents."""
    allowed = False
    for document in documents:
        for statement in _as_list(document.get("Statement")):
            if statement_applies(statement, action, resource, context or {}):
                if statement.get("Effect", "Allow") == "Deny":
                    return "Deny"
                allowed = True
    return "Allow" if allowed else "Neutral"


def allows(
    identity: list[dict[str, Any]],
    action: str,
    resource: str,
    context: dict[str, str] | None = None,
    boundary: dict[str, Any] | None = None,
) -> bool:
    """Allowed by the identity policies and, when the role has one, by its permissions boundary."""
    if decision(identity, action, resource, context) != "Allow":
        return False
    return boundary is None or decision([boundary], action, resource, context) == "Allow"


# Every IAM action that creates a role or makes a role able to do more: each must carry the boundary.
ROLE_GROWTH = ("iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary")
# Everything that changes a role in any way (the CI roles must not change from inside the stack).
ROLE_CHANGES = (
    *ROLE_GROWTH,
    "iam:DeleteRole",
    "iam:UpdateRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:DeleteRolePermissionsBoundary",
    "iam:TagRole",
    "iam:PassRole",
)
POLICY_CHANGES = (
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:DeletePolicy",
    "iam:DeletePolicyVersion",
)
# Identities outside any role's boundary: a user or an access key is a way around every boundary.
UNBOUNDED_IDENTITIES = ("iam:CreateUser", "iam:CreateAccessKey", "iam:CreateLoginProfile", "iam:CreateGroup")


def escalations(
    identity: list[dict[str, Any]],
    boundary: dict[str, Any] | None,
    *,
    boundary_arn: str,
    stack_role: str,
    ci_roles: list[str],
    other_policy: str,
) -> list[str]:
    """Ways this principal (identity policies capped by its boundary) could get past the boundary:
    create or widen a role without it, remove a boundary, rewrite the boundary, touch the CI roles,
    or create an identity no boundary applies to. `stack_role`: the ARN of a role of the stack
    (existing or new); `other_policy`: the ARN of some other managed policy."""
    found = []
    for action in ROLE_GROWTH:
        for context, what in (({}, "no boundary"), ({"iam:PermissionsBoundary": other_policy}, "another boundary")):
            if allows(identity, action, stack_role, context, boundary):
                found.append(f"{action} on {stack_role} with {what}")
    if allows(identity, "iam:DeleteRolePermissionsBoundary", stack_role, {}, boundary):
        found.append(f"iam:DeleteRolePermissionsBoundary on {stack_role}")
    for action in POLICY_CHANGES:
        if allows(identity, action, boundary_arn, {}, boundary):
            found.append(f"{action} on the boundary {boundary_arn}")
    for role in ci_roles:
        for action in ROLE_CHANGES:
            if allows(identity, action, role, {"iam:PermissionsBoundary": boundary_arn}, boundary):
                found.append(f"{action} on the CI role {role}")
    account = boundary_arn.split(":")[4]
    for action in UNBOUNDED_IDENTITIES:
        if allows(identity, action, f"arn:aws:iam::{account}:user/someone", {}, boundary):
            found.append(f"{action}: an identity outside every boundary")
    return found


_ROLE_ADDRESS = re.compile(r"(^|\.)aws_iam_role\.[\w-]+(\[[^\]]*\])?$")


def roles_without_boundary(document: dict[str, Any], boundary_arn: str) -> list[str]:
    """Every aws_iam_role of a plan or state whose permissions boundary is not `boundary_arn`."""
    return sorted(
        {
            f"{address} ({values.get('name')}): {values.get('permissions_boundary')!r}"
            for address, values in _resources(document)
            if _ROLE_ADDRESS.search(address) and values.get("permissions_boundary") != boundary_arn
        }
    )
