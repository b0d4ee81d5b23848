"""Terraform resource types -> CloudFormation resource types, and the comparison the parity test runs.

The mapping is a fact table (what CloudFormation calls the same thing). Where a Terraform resource
is a *property* of another CloudFormation resource (S3 bucket sub-resources, ECR lifecycle, event
targets, policy attachments), or CloudFormation needs a resource Terraform does not, the difference
must be listed with a reason in infra/cdk/parity_exceptions.yaml; anything else fails the test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

TF_TO_CFN: dict[str, str] = {
    "aws_appautoscaling_policy": "AWS::ApplicationAutoScaling::ScalingPolicy",
    "aws_appautoscaling_target": "AWS::ApplicationAutoScaling::ScalableTarget",
    "aws_cloudwatch_dashboard": "AWS::CloudWatch::Dashboard",
    "aws_cloudwatch_event_rule": "AWS::Events::Rule",
    "aws_cloudwatch_log_group": "AWS::Logs::LogGroup",
    "aws_cloudwatch_metric_alarm": "AWS::CloudWatch::Alarm",
    "aws_db_instance": "AWS::RDS::DBInstance",
    "aws_db_parameter_group": "AWS::RDS::DBParameterGroup",
    "aws_db_subnet_group": "AWS::RDS::DBSubnetGroup",
    "aws_default_security_group": "Custom::VpcRestrictDefaultSG",
    "aws_dynamodb_table": "AWS::DynamoDB::Table",
    "aws_ecr_repository": "AWS::ECR::Repository",
    "aws_ecs_cluster": "AWS::ECS::Cluster",
    "aws_ecs_cluster_capacity_providers": "AWS::ECS::ClusterCapacityProviderAssociations",
    "aws_ecs_service": "AWS::ECS::Service",
    "aws_ecs_task_definition": "AWS::ECS::TaskDefinition",
    "aws_eip": "AWS::EC2::EIP",
    "aws_flow_log": "AWS::EC2::FlowLog",
    "aws_iam_openid_connect_provider": "AWS::IAM::OIDCProvider",
    "aws_iam_role": "AWS::IAM::Role",
    "aws_iam_role_policy": "AWS::IAM::Policy",
    "aws_internet_gateway": "AWS::EC2::InternetGateway",
    "aws_kms_alias": "AWS::KMS::Alias",
    "aws_kms_key": "AWS::KMS::Key",
    "aws_lambda_function": "AWS::Lambda::Function",
    "aws_lambda_permission": "AWS::Lambda::Permission",
    "aws_lb": "AWS::ElasticLoadBalancingV2::LoadBalancer",
    "aws_lb_listener": "AWS::ElasticLoadBalancingV2::Listener",
    "aws_lb_target_group": "AWS::ElasticLoadBalancingV2::TargetGroup",
    "aws_nat_gateway": "AWS::EC2::NatGateway",
    "aws_route": "AWS::EC2::Route",
    "aws_route_table": "AWS::EC2::RouteTable",
    "aws_route_table_association": "AWS::EC2::SubnetRouteTableAssociation",
    "aws_s3_bucket": "AWS::S3::Bucket",
    "aws_s3_bucket_policy": "AWS::S3::BucketPolicy",
    "aws_security_group": "AWS::EC2::SecurityGroup",
    "aws_service_discovery_private_dns_namespace": "AWS::ServiceDiscovery::PrivateDnsNamespace",
    "aws_service_discovery_service": "AWS::ServiceDiscovery::Service",
    "aws_sfn_state_machine": "AWS::StepFunctions::StateMachine",
    "aws_sns_topic": "AWS::SNS::Topic",
    "aws_sns_topic_policy": "AWS::SNS::TopicPolicy",
    "aws_sns_topic_subscription": "AWS::SNS::Subscription",
    "aws_subnet": "AWS::EC2::Subnet",
    "aws_vpc": "AWS::EC2::VPC",
    "aws_vpc_endpoint": "AWS::EC2::VPCEndpoint",
    "aws_vpc_security_group_egress_rule": "AWS::EC2::SecurityGroupEgress",
    "aws_vpc_security_group_ingress_rule": "AWS::EC2::SecurityGroupIngress",
}


def load_exceptions(path: Path) -> dict[str, Any]:
    """Read the allow-list and insist on a reason for every entry (an unexplained exception is a defect)."""
    data = yaml.safe_load(path.read_text()) or {}
    for section in ("terraform_only", "cloudformation_only", "count_differences"):
        data.setdefault(section, {})
    problems = []
    for section in ("terraform_only", "cloudformation_only"):
        for key, reason in data[section].items():
            if not isinstance(reason, str) or len(reason.strip()) < 10:
                problems.append(f"{section}.{key}: needs a reason")
    for key, entry in data["count_differences"].items():
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("delta"), int)
            or len(str(entry.get("reason", ""))) < 10
        ):
            problems.append(
                f"count_differences.{key}: needs an integer delta (CloudFormation minus Terraform) and a reason"
            )
    if problems:
        raise ValueError("; ".join(problems))
    return data


def terraform_types_from_plan(plan: Mapping[str, Any]) -> Counter[str]:
    """Managed resource instances the plan creates (or keeps), by Terraform type."""
    counts: Counter[str] = Counter()
    for change in plan.get("resource_changes", []):
        if change.get("mode") == "managed" and change["change"]["actions"] != ["delete"]:
            counts[change["type"]] += 1
    return counts


def terraform_types_from_source(tf_dir: Path) -> Counter[str]:
    """LOCAL FALLBACK ONLY: resource blocks in the .tf source (python-hcl2), one per block.

    count/for_each are not evaluated, so only type presence is meaningful; CI uses the plan.
    """
    import hcl2

    counts: Counter[str] = Counter()
    for path in sorted(tf_dir.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        with path.open() as handle:
            document = hcl2.load(handle)
        for block in document.get("resource", []):
            for tf_type in block:
                counts[tf_type.strip('"')] += 1
    return counts


def cloudformation_types(template: Mapping[str, Any]) -> Counter[str]:
    return Counter(resource["Type"] for resource in template["Resources"].values())


def compare(
    terraform: Counter[str],
    cloudformation: Counter[str],
    exceptions: Mapping[str, Any],
    *,
    counts: bool,
    source_only: bool = False,
) -> list[str]:
    """Every unexplained difference (and every exception that no longer explains anything).

    source_only (the local fallback): Terraform types come from the source, where count = 0 resources
    (NAT in dev, the SageMaker role with the ECS backend) still appear, so a mapped type missing from
    the template is not reported; mapping gaps and unexplained CloudFormation types still are.
    """
    problems: list[str] = []
    tf_only: Mapping[str, str] = exceptions["terraform_only"]
    cfn_only: Mapping[str, str] = exceptions["cloudformation_only"]
    deltas: Mapping[str, Mapping[str, Any]] = exceptions["count_differences"]

    expected: Counter[str] = Counter()
    for tf_type, n in sorted(terraform.items()):
        if tf_type in tf_only:
            continue
        cfn_type = TF_TO_CFN.get(tf_type)
        if cfn_type is None:
            problems.append(f"{tf_type}: no CloudFormation equivalent mapped and not listed in terraform_only")
            continue
        expected[cfn_type] += n

    for cfn_type in sorted(set(expected) | set(cloudformation)):
        want, got = expected[cfn_type], cloudformation[cfn_type]
        if want and not got:
            if source_only:
                continue
            sources = sorted(t for t, c in TF_TO_CFN.items() if c == cfn_type and t in terraform)
            problems.append(f"{cfn_type}: Terraform creates {want} ({', '.join(sources)}), the CDK template none")
        elif got and not want:
            if cfn_type not in cfn_only:
                problems.append(
                    f"{cfn_type}: {got} in the CDK template, no Terraform counterpart and not in cloudformation_only"
                )
        elif counts and got != want:
            allowed = deltas.get(cfn_type, {}).get("delta")
            if allowed != got - want:
                problems.append(f"{cfn_type}: Terraform {want}, CDK {got} (delta {got - want:+d}; allowed {allowed})")

    # Stale entries hide future drift: each must still explain something.
    problems += [f"terraform_only.{t}: Terraform no longer has it" for t in tf_only if t not in terraform]
    problems += [f"cloudformation_only.{c}: the template no longer has it" for c in cfn_only if c not in cloudformation]
    if counts:
        for cfn_type, entry in deltas.items():
            actual = cloudformation[cfn_type] - expected[cfn_type]
            reported = any(p.startswith(f"{cfn_type}:") for p in problems)
            if actual != entry["delta"] and not reported:
                problems.append(f"count_differences.{cfn_type}: delta is now {actual:+d}, listed {entry['delta']:+d}")
    return problems


def present(types: Iterable[str]) -> Counter[str]:
    """Presence only (fallback mode): every type counted once."""
    return Counter(set(types))
