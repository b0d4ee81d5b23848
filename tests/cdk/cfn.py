"""Read a synthesised CloudFormation template: resolve intrinsics to readable placeholders."""

from __future__ import annotations

import re
from typing import Any


def resolve(value: Any) -> Any:
    """Turn Fn::Join/Ref/GetAtt into plain strings ("<Ref:Id>", "<GetAtt:Id.Attr>") so tests can read them."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return f"<Ref:{arg}>"
        if key == "Fn::GetAtt":
            return f"<GetAtt:{'.'.join(arg) if isinstance(arg, list) else arg}>"
        if key == "Fn::Join":
            sep, parts = arg
            return sep.join(str(resolve(p)) for p in parts)
        if key == "Fn::Select":
            return f"<Select:{arg[0]}:{resolve(arg[1])}>"
        if key == "Fn::GetAZs":
            return "<AZs>"
        if key == "Fn::Split":
            return f"<Split:{resolve(arg[1])}>"
    if isinstance(value, dict):
        return {k: resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v) for v in value]
    return value


def boundaries(template: dict[str, Any]) -> set[str]:
    """Logical ids of the managed policies that are some role's permissions boundary."""
    return {
        ref
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::IAM::Role"
        and isinstance(ref := resource.get("Properties", {}).get("PermissionsBoundary", {}).get("Ref"), str)
    }


def statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every identity-policy statement in the template, with the logical id that holds it.

    A permissions boundary grants nothing (it caps the roles' own policies), so it is not one."""
    found: list[tuple[str, dict[str, Any]]] = []
    ceilings = boundaries(template)
    for logical_id, resource in template["Resources"].items():
        if logical_id in ceilings:
            continue
        props = resource.get("Properties", {})
        docs = []
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            docs.append(props["PolicyDocument"])
        if resource["Type"] == "AWS::IAM::Role":
            docs.extend(p["PolicyDocument"] for p in props.get("Policies", []))
        for doc in docs:
            for statement in doc["Statement"]:
                found.append((logical_id, statement))
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


_STRING_SPLIT = re.compile(r"^States\.StringSplit\('([^']*)', ','\)$")


def string_split(value: str) -> list[str]:
    """The items of an ASL `States.StringSplit('a,b', ',')` (how the templates pass lists as strings)."""
    match = _STRING_SPLIT.match(value)
    assert match, f"not a States.StringSplit of a literal: {value!r}"
    return match[1].split(",")
