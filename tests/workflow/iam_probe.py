"""A Lambda handler for tests/workflow/test_iam_enforcement.py: one DynamoDB write with its own role."""

from __future__ import annotations

import os
from typing import Any

import boto3


def put_item(event: dict[str, Any], context: Any) -> dict[str, str]:
    ddb = boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    ddb.put_item(TableName=os.environ["TABLE"], Item={"k": {"S": "v"}})
    return {"ok": "yes"}
