"""localaws makes moto's conditional DynamoDB writes atomic, as real DynamoDB's are.

The workflow lock and the retrain cooldown are one conditional write each; if the emulator let two
concurrent writers both pass the condition, tests of the storm guard would flake (CI saw it once).
A tiny thread switch interval makes moto's check-then-write race show up in most trials without the
lock, so this test fails if the lock stops covering a write path.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from localaws.atomic import serialise_dynamodb_writes

WRITERS = 8
TRIALS = 20


@pytest.fixture()
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    serialise_dynamodb_writes()
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="lock",
            KeySchema=[{"AttributeName": "lock_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "lock_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            yield ddb
        finally:
            sys.setswitchinterval(interval)


def _winners(ddb: object, key: str, write: str) -> int:
    barrier = threading.Barrier(WRITERS)

    def attempt(_: int) -> int:
        barrier.wait()
        try:
            if write == "put":
                ddb.put_item(  # type: ignore[attr-defined]
                    TableName="lock",
                    Item={"lock_id": {"S": key}},
                    ConditionExpression="attribute_not_exists(lock_id)",
                )
            else:
                ddb.update_item(  # type: ignore[attr-defined]
                    TableName="lock",
                    Key={"lock_id": {"S": key}},
                    UpdateExpression="SET owner_n = :one",
                    ConditionExpression="attribute_not_exists(owner_n)",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )
            return 1
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"
            return 0

    with ThreadPoolExecutor(WRITERS) as pool:
        return sum(pool.map(attempt, range(WRITERS)))


@pytest.mark.parametrize("write", ["put", "update"])
def test_exactly_one_concurrent_conditional_writer_wins(table: object, write: str) -> None:
    winners = [_winners(table, f"{write}-{trial}", write) for trial in range(TRIALS)]
    assert winners == [1] * TRIALS
