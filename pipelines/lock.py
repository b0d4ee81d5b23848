"""Step: one workflow execution at a time, through a conditional put in DynamoDB.

A second execution does not fail: it learns who holds the lock and stops early with a clear status.
The lock carries a TTL so an execution killed without releasing it cannot wedge the pipeline forever.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from model.config import Settings
from pipelines import aws

LOCK_ID = "train-evaluate-deploy"


def acquire(owner: str, *, settings: Settings | None = None, wf: aws.WorkflowSettings | None = None) -> dict[str, Any]:
    wf = wf or aws.WorkflowSettings.from_env()
    ddb = aws.client("dynamodb", settings)
    now = int(time.time())
    try:
        ddb.put_item(
            TableName=wf.lock_table,
            Item={
                "lock_id": {"S": LOCK_ID},
                "owner": {"S": owner},
                "acquired_at": {"N": str(now)},
                "expires_at": {"N": str(now + wf.lock_ttl_seconds)},
            },
            # Free, expired, or already ours (a retried acquire must not lock its own execution out).
            ConditionExpression="attribute_not_exists(lock_id) OR expires_at < :now OR #o = :owner",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":now": {"N": str(now)}, ":owner": {"S": owner}},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        item = ddb.get_item(TableName=wf.lock_table, Key={"lock_id": {"S": LOCK_ID}}, ConsistentRead=True).get(
            "Item", {}
        )
        holder = item.get("owner", {}).get("S", "unknown")
        return {"step": "lock", "acquired": False, "owner": owner, "holder": holder, "status": "already-running"}
    return {"step": "lock", "acquired": True, "owner": owner, "holder": owner, "status": "acquired"}


def release(owner: str, *, settings: Settings | None = None, wf: aws.WorkflowSettings | None = None) -> dict[str, Any]:
    """Release only our own lock; releasing a lock someone else holds is a no-op, reported as such."""
    wf = wf or aws.WorkflowSettings.from_env()
    ddb = aws.client("dynamodb", settings)
    try:
        ddb.delete_item(
            TableName=wf.lock_table,
            Key={"lock_id": {"S": LOCK_ID}},
            ConditionExpression="attribute_not_exists(lock_id) OR #o = :owner",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":owner": {"S": owner}},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return {"step": "lock", "released": False, "owner": owner, "status": "held-by-another"}
    return {"step": "lock", "released": True, "owner": owner, "status": "released"}
