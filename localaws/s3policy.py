"""Bucket policies as AWS applies them to requests that arrive over TLS.

moto 5.2.5 evaluates a bucket policy's Deny statements on PutObject but ignores their Condition, so
the standard "deny s3:* unless aws:SecureTransport" statement (infra/terraform/modules/storage)
denies every upload. In AWS every SDK call uses HTTPS and that statement never matches; the emulator
speaks HTTP only because it is on 127.0.0.1. So before moto evaluates a policy, statements whose only
condition is `aws:SecureTransport = false` are dropped: exactly the requests they would deny in AWS
(plain HTTP) cannot happen there. Any other conditional statement is left as moto treats it.
"""

from __future__ import annotations

import json
from typing import Any


def _insecure_only(statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition") or {}
    if list(condition) != ["Bool"] or list(condition["Bool"]) != ["aws:SecureTransport"]:
        return False
    value = condition["Bool"]["aws:SecureTransport"]
    values = value if isinstance(value, list) else [value]
    return [str(v).lower() for v in values] == ["false"]


def as_over_tls(policy: str) -> str:
    doc = json.loads(policy)
    statements = doc.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    doc["Statement"] = [s for s in statements if not _insecure_only(s)]
    return json.dumps(doc)


def install() -> Any:
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    original = FakeBucket.get_permission

    def get_permission(bucket: Any, action: str, resource: str) -> Any:
        if bucket.policy is None:
            return PermissionResult.NEUTRAL
        return IAMPolicy(as_over_tls(bucket.policy.decode())).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign,assignment]

    def undo() -> None:
        FakeBucket.get_permission = original  # type: ignore[method-assign]

    return undo
