"""The APIs the Terraform provider calls that moto 5.2.5 lacks, as the embedded AWS answers them.

CloudWatch is called here the way the provider (AWS SDK for Go v2) calls it: Smithy RPC-v2 CBOR at
`/service/GraniteServiceVersion20100801/operation/<Op>`. boto3 would pick JSON for the same client,
so the test client is switched to botocore's own CBOR serializer and parser.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import botocore.serialize
import pytest
from botocore.exceptions import ClientError

from localaws import LocalAWS


@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAWS]:
    with LocalAWS() as local:
        yield local


def cbor_cloudwatch(aws: LocalAWS) -> tuple[Any, list[str]]:
    client = aws.client("cloudwatch")
    client.meta.service_model.__dict__["resolved_protocol"] = "smithy-rpc-v2-cbor"  # a cached property
    client._serializer = botocore.serialize.create_serializer("smithy-rpc-v2-cbor", True)
    paths: list[str] = []
    client.meta.events.register("before-send", lambda request, **_: paths.append(request.url.split("/", 3)[-1]))
    return client, paths


def test_cloudwatch_alarms_and_dashboards_over_cbor(aws: LocalAWS) -> None:
    cw, paths = cbor_cloudwatch(aws)
    cw.put_metric_alarm(
        AlarmName="esteira-test-drift",
        Namespace="Esteira",
        MetricName="DriftScore",
        Dimensions=[{"Name": "Service", "Value": "esteira-serving"}],
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=2,
        DatapointsToAlarm=2,
        Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
        Tags=[{"Key": "project", "Value": "esteira"}],
    )
    assert paths[-1] == "service/GraniteServiceVersion20100801/operation/PutMetricAlarm"
    (alarm,) = cw.describe_alarms(AlarmNames=["esteira-test-drift"])["MetricAlarms"]
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"], alarm["TreatMissingData"]) == (2, 2, "notBreaching")
    assert alarm["AlarmConfigurationUpdatedTimestamp"].year >= 2024  # a CBOR timestamp (tag 1), parsed back
    assert cw.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"] == [{"Key": "project", "Value": "esteira"}]
    body = json.dumps({"widgets": []})
    cw.put_dashboard(DashboardName="esteira-test", DashboardBody=body)
    assert cw.get_dashboard(DashboardName="esteira-test")["DashboardBody"] == body


def test_cloudwatch_errors_keep_their_code_over_cbor(aws: LocalAWS) -> None:
    cw, _ = cbor_cloudwatch(aws)
    with pytest.raises(ClientError) as caught:
        cw.get_dashboard(DashboardName="no-such-dashboard")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFound"


def test_application_autoscaling_keeps_tags(aws: LocalAWS) -> None:
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName="tags")
    td = ecs.register_task_definition(
        family="tags", containerDefinitions=[{"name": "c", "image": "i", "command": ["true"], "memory": 128}]
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster="tags", serviceName="svc", taskDefinition=td, desiredCount=0)
    aas = aws.client("application-autoscaling")
    arn = aas.register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId="service/tags/svc",
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=1,
        MaxCapacity=2,
        Tags={"project": "esteira"},
    )["ScalableTargetARN"]
    aas.tag_resource(ResourceARN=arn, Tags={"env": "dev"})
    aas.untag_resource(ResourceARN=arn, TagKeys=["project"])
    assert aas.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"env": "dev"}


def test_state_machine_definitions_are_validated_as_aws_does(aws: LocalAWS) -> None:
    sfn = aws.client("stepfunctions")
    good = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    assert sfn.validate_state_machine_definition(definition=json.dumps(good))["result"] == "OK"
    bad = {
        "StartAt": "Work",
        "States": {
            "Work": {
                "Type": "Pass",
                "Next": "Done",
            },
            "Done": {"Type": "Succeed"},
            "Orphan": {"Type": "Succeed"},
        },
    }
    answer = sfn.validate_state_machine_definition(definition=json.dumps(bad))
    assert answer["result"] == "FAIL"
    assert any("/States/Orphan" in d["location"] for d in answer["diagnostics"]), answer["diagnostics"]


def states_role(aws: LocalAWS, name: str) -> str:
    """A role Step Functions may assume (CreateStateMachine needs one)."""
    trust = {
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    }
    return str(aws.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


def test_state_machine_versions_are_listed(aws: LocalAWS) -> None:
    role = states_role(aws, "versions")
    sfn = aws.client("stepfunctions")
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
    arn = sfn.create_state_machine(name="versions", definition=definition, roleArn=role, publish=True)[
        "stateMachineArn"
    ]
    (version,) = sfn.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
    assert version["stateMachineVersionArn"] == f"{arn}:1"


def test_an_invalid_definition_cannot_be_created(aws: LocalAWS) -> None:
    role = states_role(aws, "invalid")
    sfn = aws.client("stepfunctions")
    bad = json.dumps({"StartAt": "Missing", "States": {"Done": {"Type": "Succeed"}}})
    with pytest.raises(ClientError) as caught:
        sfn.create_state_machine(name="invalid", definition=bad, roleArn=role)
    assert caught.value.response["Error"]["Code"] == "InvalidDefinition"
    assert "/StartAt" in caught.value.response["Error"]["Message"]
