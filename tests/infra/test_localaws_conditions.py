"""localaws.iam evaluates the condition keys the drift loop's grants use as strictly as AWS does.

The drift check may list the artifacts bucket only under `drift-reports/` (StringLike on s3:prefix) and
put only the lock table's "retrain-paused" item (ForAllValues:StringEquals on dynamodb:LeadingKeys);
the training roles list with the same prefix condition. A request outside the condition is refused,
a key AWS sets but the emulator cannot tell fails the condition, and a missing object is NoSuchKey only
for a caller who may list it (AccessDenied otherwise), as in AWS. Fast evaluator tests, then one run on
the emulator with an assumed role's credentials. (tests/workflow/test_iam_enforcement.py has the rest.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from localaws import LocalAWS
from localaws.iam import UNTOLD, Check, checks_for, evaluate, s3_checks

from .iam_policies import decision

ACCOUNT, REGION = "123456789012", "us-east-1"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/esteira-dev-workflow-lock"
BUCKET = "arn:aws:s3:::esteira-dev-artifacts"
PAUSE = {
    "Effect": "Allow",
    "Action": "dynamodb:PutItem",
    "Resource": TABLE,
    "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["retrain-paused"]}},
}
LIST_DRIFT = {
    "Effect": "Allow",
    "Action": "s3:ListBucket",
    "Resource": BUCKET,
    "Condition": {"StringLike": {"s3:prefix": ["drift-reports/*"]}},
}


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def put(*keys: str) -> Check:
    return Check("dynamodb:PutItem", TABLE, (("dynamodb:LeadingKeys", tuple(keys)),))


def listing(prefix: str | None) -> Check:
    return Check("s3:ListBucket", BUCKET, () if prefix is None else (("s3:prefix", prefix),))


def test_for_all_values_allows_only_the_listed_partition_keys() -> None:
    policy = doc(PAUSE)
    assert evaluate([policy], put("retrain-paused"))[0] == "Allow"
    assert evaluate([policy], put("workflow"))[0] == "Neutral"
    assert evaluate([policy], put("retrain-paused", "workflow"))[0] == "Neutral"
    # AWS: ForAllValues holds on an absent key (the empty set); a key AWS sets but localaws cannot
    # tell (a Query's partition key) fails the condition instead, and the refusal says so.
    assert evaluate([policy], Check("dynamodb:PutItem", TABLE))[0] == "Allow"
    decision_, missing = evaluate([policy], Check("dynamodb:PutItem", TABLE, (("dynamodb:LeadingKeys", UNTOLD),)))
    assert decision_ == "Neutral" and any("dynamodb:LeadingKeys" in m for m in missing)


def test_for_any_value_and_single_valued_operators_on_a_set() -> None:
    any_value = {**PAUSE, "Condition": {"ForAnyValue:StringEquals": {"dynamodb:LeadingKeys": ["retrain-paused"]}}}
    assert evaluate([doc(any_value)], put("workflow", "retrain-paused"))[0] == "Allow"
    assert evaluate([doc(any_value)], put("workflow"))[0] == "Neutral"
    assert evaluate([doc(any_value)], Check("dynamodb:PutItem", TABLE))[0] == "Neutral"
    single = {**PAUSE, "Condition": {"StringEquals": {"dynamodb:LeadingKeys": ["retrain-paused"]}}}
    assert evaluate([doc(single)], put("retrain-paused"))[0] == "Neutral"
    unknown = {**PAUSE, "Condition": {"ForEachValue:StringEquals": {"dynamodb:LeadingKeys": ["retrain-paused"]}}}
    decision_, missing = evaluate([doc(unknown)], put("retrain-paused"))
    assert decision_ == "Neutral" and missing == {"ForEachValue:StringEquals (operator)"}


def test_string_like_on_s3_prefix_admits_only_the_folder() -> None:
    policy = doc(LIST_DRIFT)
    for prefix in ("drift-reports/", "drift-reports/model_version=3/", "drift-reports/model_version=3/state.json"):
        assert evaluate([policy], listing(prefix))[0] == "Allow", prefix
    for other in ("", "drift-reports", "models/", "capture/drift-reports/", None):
        assert evaluate([policy], listing(other))[0] == "Neutral", other
    # tests/infra/iam_policies.py (the plan-time evaluator) agrees.
    for prefix, expected in (("drift-reports/x", "Allow"), ("models/", "Neutral")):
        assert decision([policy], "s3:ListBucket", BUCKET, {"s3:prefix": prefix}) == expected
    assert decision([doc(PAUSE)], "dynamodb:PutItem", TABLE, {"dynamodb:LeadingKeys": ["retrain-paused"]}) == "Allow"
    assert decision([doc(PAUSE)], "dynamodb:PutItem", TABLE, {"dynamodb:LeadingKeys": ["workflow"]}) == "Neutral"


def test_requests_carry_their_condition_keys() -> None:
    (list_v2,) = s3_checks("ListBucket", BUCKET, {"list-type": ["2"], "prefix": ["drift-reports/"]}, ACCOUNT)
    assert dict(list_v2.context) == {"s3:prefix": "drift-reports/"}
    (no_prefix,) = s3_checks("ListBucket", BUCKET, {"list-type": ["2"]}, ACCOUNT)
    assert dict(no_prefix.context) == {"s3:prefix": ""}
    # A Query's partition key is not read from KeyConditionExpression: untold, never assumed.
    (query,) = checks_for("dynamodb", "Query", {"TableName": "t"}, "/", ACCOUNT, REGION)
    assert dict(query.context) == {"dynamodb:LeadingKeys": UNTOLD}
    (scan,) = checks_for("dynamodb", "Scan", {"TableName": "t"}, "/", ACCOUNT, REGION)
    assert scan.context == ()


def _as_role(aws: LocalAWS, role: str, service: Any) -> Any:
    creds = aws.client("sts").assume_role(RoleArn=role, RoleSessionName="probe")["Credentials"]
    return boto3.client(
        service,
        endpoint_url=aws.endpoint_url,
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def _code(call: Any, **kwargs: Any) -> str:
    try:
        call(**kwargs)
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "OK"


def test_the_emulator_enforces_the_prefix_and_the_leading_key(tmp_path: Path) -> None:
    with LocalAWS(workdir=tmp_path, enforce_iam=True) as aws:
        s3, ddb, iam = aws.client("s3"), aws.client("dynamodb"), aws.client("iam")
        s3.create_bucket(Bucket="artifacts")
        s3.put_object(Bucket="artifacts", Key="drift-reports/model_version=1/state.json", Body=b"{}")
        s3.put_object(Bucket="artifacts", Key="models/1/model.pkl", Body=b"x")
        table = ddb.create_table(
            TableName="lock",
            KeySchema=[{"AttributeName": "lock_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "lock_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )["TableDescription"]["TableArn"]
        trust = doc({"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"})
        role = iam.create_role(RoleName="drift", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        policy = doc(
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::artifacts/*"},
            {**LIST_DRIFT, "Resource": "arn:aws:s3:::artifacts"},
            {**PAUSE, "Resource": table},
        )
        iam.put_role_policy(RoleName="drift", PolicyName="p", PolicyDocument=json.dumps(policy))
        s3_as, ddb_as = _as_role(aws, role, "s3"), _as_role(aws, role, "dynamodb")

        # An existing object; a missing one under the listable prefix is NoSuchKey, elsewhere AccessDenied.
        assert _code(s3_as.get_object, Bucket="artifacts", Key="drift-reports/model_version=1/state.json") == "OK"
        assert _code(s3_as.get_object, Bucket="artifacts", Key="drift-reports/model_version=2/state.json") == (
            "NoSuchKey"
        )
        assert _code(s3_as.get_object, Bucket="artifacts", Key="models/2/model.pkl") == "AccessDenied"
        assert _code(s3_as.list_objects_v2, Bucket="artifacts", Prefix="drift-reports/") == "OK"
        assert _code(s3_as.list_objects_v2, Bucket="artifacts", Prefix="models/") == "AccessDenied"
        assert _code(s3_as.list_objects_v2, Bucket="artifacts") == "AccessDenied"

        paused = {"lock_id": {"S": "retrain-paused"}, "reason": {"S": "drift persisted"}}
        assert _code(ddb_as.put_item, TableName="lock", Item=paused) == "OK"
        for other in ("workflow", "retrain-cooldown"):
            code = _code(ddb_as.put_item, TableName="lock", Item={"lock_id": {"S": other}})
            assert code == "AccessDeniedException", other
        denied = aws.iam_report()["drift"]["denied"]
        assert set(denied) == {"s3:ListBucket", "dynamodb:PutItem"}


@pytest.mark.parametrize("prefix", ["drift-reports/", "drift-reports/model_version=9/"])
def test_prefix_of_a_listing_is_what_the_condition_sees(prefix: str) -> None:
    (check,) = s3_checks("ListBucket", BUCKET, {"prefix": prefix}, ACCOUNT)
    assert evaluate([doc(LIST_DRIFT)], check)[0] == "Allow"
