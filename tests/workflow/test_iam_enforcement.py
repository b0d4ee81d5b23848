"""localaws.iam: the embedded AWS refuses what AWS would refuse, and says which action was missing.

Fast tests of the policy evaluator and the request -> authorisation mapping, then one end-to-end check
on a running emulator: a Lambda whose role lacks one statement fails with AccessDenied naming the
action, and the same call succeeds once the statement is back.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from localaws import LocalAWS
from localaws.iam import Check, checks_for, evaluate

ACCOUNT, REGION = "123456789012", "us-east-1"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/lock"


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_resource_scoped_allow_matches_only_its_resource() -> None:
    policy = doc({"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": TABLE})
    assert evaluate([policy], Check("dynamodb:PutItem", TABLE))[0] == "Allow"
    assert evaluate([policy], Check("dynamodb:PutItem", TABLE + "2"))[0] == "Neutral"
    assert evaluate([policy], Check("dynamodb:DeleteItem", TABLE))[0] == "Neutral"


def test_actions_match_case_insensitively_with_wildcards_and_deny_wins() -> None:
    allow = doc({"Effect": "Allow", "Action": "ECS:Describe*", "Resource": "*"})
    assert evaluate([allow], Check("ecs:DescribeServices", "arn:x"))[0] == "Allow"
    deny = doc({"Effect": "Deny", "Action": "ecs:DescribeServices", "Resource": "*"})
    assert evaluate([allow, deny], Check("ecs:DescribeServices", "arn:x"))[0] == "Deny"


def test_conditions_are_evaluated_and_a_missing_key_does_not_match() -> None:
    policy = doc(
        {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": "arn:aws:iam::123456789012:role/task",
            "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        }
    )
    role = "arn:aws:iam::123456789012:role/task"
    ok = Check("iam:PassRole", role, (("iam:PassedToService", "ecs-tasks.amazonaws.com"),))
    wrong = Check("iam:PassRole", role, (("iam:PassedToService", "lambda.amazonaws.com"),))
    assert evaluate([policy], ok)[0] == "Allow"
    assert evaluate([policy], wrong)[0] == "Neutral"
    decision, missing = evaluate([policy], Check("iam:PassRole", role))
    assert decision == "Neutral" and missing == {"iam:PassedToService"}


def test_register_task_definition_with_tags_needs_tag_resource_and_pass_role() -> None:
    params = {
        "family": "esteira-dev-serving",
        "tags": [{"key": "model_version", "value": "3"}],
        "taskRoleArn": "arn:aws:iam::123456789012:role/serving-task",
        "executionRoleArn": "arn:aws:iam::123456789012:role/serving-exec",
    }
    checks = checks_for("ecs", "RegisterTaskDefinition", params, "/", ACCOUNT, REGION)
    actions = [c.action for c in checks]
    assert actions == ["ecs:RegisterTaskDefinition", "ecs:TagResource", "iam:PassRole", "iam:PassRole"]
    tag = checks[1]
    assert tag.resource == f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/esteira-dev-serving:*"
    assert dict(tag.context) == {"ecs:CreateAction": "RegisterTaskDefinition"}


def test_query_protocol_lists_and_lambda_paths_become_resources() -> None:
    elb = checks_for(
        "elasticloadbalancing",
        "AddTags",
        {"ResourceArns.member.1": "arn:tg/a", "ResourceArns.member.2": "arn:tg/b"},
        "/",
        ACCOUNT,
        REGION,
    )
    assert [c.resource for c in elb] == ["arn:tg/a", "arn:tg/b"]
    invoke = checks_for("lambda", "Invoke", {}, "/2015-03-31/functions/esteira-dev-lock/invocations", ACCOUNT, REGION)
    assert invoke == [Check("lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:esteira-dev-lock")]


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("noop.py", "")
    return buf.getvalue()


HANDLER = "tests.workflow.iam_probe.put_item"


def test_a_missing_statement_is_an_access_denied_naming_the_action(tmp_path: Path) -> None:
    """The emulator end to end: the function runs with its own role's credentials."""
    with LocalAWS(workdir=tmp_path, enforce_iam=True) as aws:
        ddb, iam, lam = aws.client("dynamodb"), aws.client("iam"), aws.client("lambda")
        table = ddb.create_table(
            TableName="probe",
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )["TableDescription"]["TableArn"]
        trust = doc({"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"})
        role = iam.create_role(RoleName="probe", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        read_only = doc({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": table})
        iam.put_role_policy(RoleName="probe", PolicyName="p", PolicyDocument=json.dumps(read_only))
        lam.create_function(
            FunctionName="probe",
            Runtime="python3.11",
            Role=role,
            Handler=HANDLER,
            Code={"ZipFile": _zip()},
            Timeout=60,
            Environment={"Variables": {"TABLE": "probe"}},
        )
        out = lam.invoke(FunctionName="probe", Payload=b"{}")
        error = json.loads(out["Payload"].read())
        assert out.get("FunctionError") == "Unhandled"
        assert "AccessDenied" in error["errorMessage"] and "dynamodb:PutItem" in error["errorMessage"]
        assert f"on resource: {table}" in error["errorMessage"]
        assert aws.iam_report()["probe"]["denied"] == {"dynamodb:PutItem": [table]}

        both = doc({"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"], "Resource": table})
        iam.put_role_policy(RoleName="probe", PolicyName="p", PolicyDocument=json.dumps(both))
        out = lam.invoke(FunctionName="probe", Payload=b"{}")
        assert "FunctionError" not in out, out["Payload"].read()
        assert aws.iam_report()["probe"]["allowed"]["dynamodb:PutItem"] == 1


def test_a_role_that_does_not_trust_lambda_cannot_run_the_function(tmp_path: Path) -> None:
    with LocalAWS(workdir=tmp_path, enforce_iam=True) as aws:
        iam, lam = aws.client("iam"), aws.client("lambda")
        trust = doc(
            {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}
        )
        role = iam.create_role(RoleName="tasks-only", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        lam.create_function(
            FunctionName="probe", Runtime="python3.11", Role=role, Handler=HANDLER, Code={"ZipFile": _zip()}
        )
        out = lam.invoke(FunctionName="probe", Payload=b"{}")
        assert out.get("FunctionError") == "Unhandled"
        assert "does not name lambda.amazonaws.com" in json.loads(out["Payload"].read())["errorMessage"]


def test_administrator_keys_are_not_checked(tmp_path: Path) -> None:
    with LocalAWS(workdir=tmp_path, enforce_iam=True) as aws:
        assert aws.client("s3").list_buckets()["Buckets"] == []
        with pytest.raises(Exception, match="InvalidClientTokenId|does not exist"):
            boto3.client(
                "sqs",
                endpoint_url=aws.endpoint_url,
                region_name=REGION,
                aws_access_key_id="ASIAUNKNOWN",
                aws_secret_access_key="x",
            ).list_queues()


def test_a_secret_is_read_only_by_the_roles_granted_its_arn(tmp_path: Path) -> None:
    """The MLflow credentials (modules/mlflow): the workflow's secret is readable with a grant on its ARN
    (by name or by ARN, as pipelines.registry.use_credentials_from_secret reads it), and serving's role,
    granted only the reader's secret, is refused the workflow's. A secret under a customer managed key
    also needs kms:Decrypt on that key."""
    from pipelines.registry import use_credentials_from_secret

    with LocalAWS(workdir=tmp_path, enforce_iam=True) as aws:
        assert aws.iam is not None
        iam, sm, kms = aws.client("iam"), aws.client("secretsmanager"), aws.client("kms")
        key = kms.create_key()["KeyMetadata"]["Arn"]
        arns = {
            who: sm.create_secret(
                Name=f"esteira-dev/mlflow/{who}",
                KmsKeyId=key,
                SecretString=json.dumps({"username": f"esteira-{who}", "password": f"{who}-password-123"}),
            )["ARN"]
            for who in ("workflow", "reader")
        }
        trust = doc({"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"})

        def client_as(role: str, *statements: dict[str, Any]) -> Any:
            arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
            iam.put_role_policy(RoleName=role, PolicyName="p", PolicyDocument=json.dumps(doc(*statements)))
            assert aws.iam is not None
            creds = aws.iam.credentials(arn, "lambda.amazonaws.com", role)
            return boto3.client(
                "secretsmanager",
                endpoint_url=aws.endpoint_url,
                region_name=REGION,
                aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=creds["AWS_SESSION_TOKEN"],
            )

        decrypt = {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key}
        workflow = client_as(
            "workflow",
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": arns["workflow"]},
            decrypt,
        )
        env: dict[str, str] = {"ESTEIRA_MLFLOW_CREDENTIALS_SECRET": arns["workflow"]}
        assert use_credentials_from_secret(env, workflow)
        assert env["MLFLOW_TRACKING_USERNAME"] == "esteira-workflow"
        assert json.loads(workflow.get_secret_value(SecretId="esteira-dev/mlflow/workflow")["SecretString"])

        serving = client_as(
            "serving",
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": arns["reader"]},
            decrypt,
        )
        assert "esteira-reader" in serving.get_secret_value(SecretId=arns["reader"])["SecretString"]
        for secret_id in (arns["workflow"], "esteira-dev/mlflow/workflow"):
            with pytest.raises(Exception, match="AccessDenied") as refused:
                serving.get_secret_value(SecretId=secret_id)
            assert arns["workflow"] in str(refused.value)

        no_key = client_as(
            "no-key", {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": arns["reader"]}
        )
        with pytest.raises(Exception, match="AccessDenied.*kms:Decrypt"):
            no_key.get_secret_value(SecretId=arns["reader"])
