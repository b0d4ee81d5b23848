"""The prod settings (envs/prod.tfvars + a certificate): protection, HTTPS, Multi-AZ. One more synthesis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aws_cdk.assertions import Match

from .conftest import Synth, synthesise

pytestmark = pytest.mark.slow

CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield synthesise(
        tmp_path_factory.mktemp("cdk-prod"),
        "prod",
        {"certificate_arn": CERTIFICATE, "alarm_emails": ["oncall@example.com"]},
    )


def test_https_with_redirect(prod: Synth) -> None:
    t = prod.assertions
    t.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 443,
            "Protocol": "HTTPS",
            "SslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
            "Certificates": [{"CertificateArn": CERTIFICATE}],
        },
    )
    t.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 80,
            "DefaultActions": [
                Match.object_like(
                    {"Type": "redirect", "RedirectConfig": Match.object_like({"Protocol": "HTTPS", "Port": "443"})}
                )
            ],
        },
    )
    ingress = [
        r
        for sg in prod.resources("AWS::EC2::SecurityGroup").values()
        for r in sg["Properties"].get("SecurityGroupIngress", [])
    ]
    assert {(r["CidrIp"], r["FromPort"]) for r in ingress if r.get("CidrIp") == "0.0.0.0/0"} == {
        ("0.0.0.0/0", 80),
        ("0.0.0.0/0", 443),
    }


def test_production_data_is_protected(prod: Synth) -> None:
    t = prod.assertions
    t.has_resource(
        "AWS::RDS::DBInstance",
        {"DeletionPolicy": "Snapshot", "Properties": Match.object_like({"MultiAZ": True, "DeletionProtection": True})},
    )
    t.has_resource_properties("AWS::DynamoDB::Table", {"DeletionProtectionEnabled": True})
    t.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        {"LoadBalancerAttributes": Match.array_with([{"Key": "deletion_protection.enabled", "Value": "true"}])},
    )
    for logical_id, bucket in prod.resources("AWS::S3::Bucket").items():
        assert bucket["DeletionPolicy"] == "Retain", logical_id
    assert not prod.resources("Custom::S3AutoDeleteObjects"), "prod buckets must not be emptied on delete"
    t.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "oncall@example.com"})
    t.has_resource_properties(
        "AWS::ECS::Service", {"ServiceName": "esteira-serving", "LaunchType": "FARGATE", "DesiredCount": 2}
    )


def test_registry_only_is_the_first_deploy(tmp_path_factory: pytest.TempPathFactory) -> None:
    first = synthesise(tmp_path_factory.mktemp("cdk-registry"), "dev", {"registry_only": True})
    types = {r["Type"] for r in first.template["Resources"].values()}
    assert "AWS::ECR::Repository" in types and "AWS::KMS::Key" in types
    assert not types & {"AWS::ECS::Service", "AWS::Lambda::Function", "AWS::EC2::VPC"} - {"AWS::Lambda::Function"}
    assert len(first.resources("AWS::ECR::Repository")) == 4
