"""VPC (modules/network): public and private subnets, gateway and interface endpoints, flow logs."""

from __future__ import annotations

import ipaddress

from aws_cdk import Aws, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from .common import log_group

PRIVATE = "private"
PUBLIC = "public"
# IAM action prefix of an endpoint's service where it differs from the endpoint's name.
ACTION_PREFIX = {
    "ecr.api": "ecr", "ecr.dkr": "ecr", "monitoring": "cloudwatch", "sagemaker.api": "sagemaker",
    "ecs-agent": "ecs", "ecs-telemetry": "ecs",  # the ECS agent's endpoints serve ecs: actions
}  # fmt: skip


def subnet_cidrs(vpc_cidr: str, count: int) -> tuple[list[str], list[str]]:
    """The Terraform layout: cidrsubnet(cidr, 4, i) for public, cidrsubnet(cidr, 4, i + 8) for private."""
    net = ipaddress.ip_network(vpc_cidr)
    blocks = list(net.subnets(prefixlen_diff=4))
    return [str(blocks[i]) for i in range(count)], [str(blocks[i + 8]) for i in range(count)]


class Network(Construct):
    """No NAT by default: private tasks and Lambdas reach AWS APIs through VPC endpoints."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        cidr_block: str,
        availability_zones: list[str],
        az_count: int,
        enable_nat_gateway: bool,
        interface_endpoints: list[str],
        endpoint_subnet_count: int,
        key: kms.IKey,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        private_type = ec2.SubnetType.PRIVATE_WITH_EGRESS if enable_nat_gateway else ec2.SubnetType.PRIVATE_ISOLATED
        mask = ipaddress.ip_network(cidr_block).prefixlen + 4
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            vpc_name=name,
            ip_addresses=ec2.IpAddresses.cidr(cidr_block),
            availability_zones=availability_zones or None,
            max_azs=None if availability_zones else az_count,
            nat_gateways=(1 if enable_nat_gateway else 0),
            enable_dns_hostnames=True,
            enable_dns_support=True,
            # Nothing may use the default security group: CDK strips its rules (Terraform's
            # aws_default_security_group does the same).
            restrict_default_security_group=True,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name=PUBLIC, subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=mask, map_public_ip_on_launch=False
                ),
                ec2.SubnetConfiguration(name=PRIVATE, subnet_type=private_type, cidr_mask=mask),
            ],
        )
        # Same addresses as Terraform, so the two paths are interchangeable for peering and firewalls.
        public_cidrs, private_cidrs = subnet_cidrs(cidr_block, len(self.vpc.public_subnets))
        for subnet, cidr in zip(self.vpc.public_subnets, public_cidrs, strict=True):
            subnet.node.default_child.cidr_block = cidr  # type: ignore[union-attr]
            Tags.of(subnet).add("Tier", PUBLIC)
        for subnet, cidr in zip(self.vpc.isolated_subnets or self.vpc.private_subnets, private_cidrs, strict=True):
            subnet.node.default_child.cidr_block = cidr  # type: ignore[union-attr]
            Tags.of(subnet).add("Tier", PRIVATE)

        self.private_subnets = ec2.SubnetSelection(subnet_group_name=PRIVATE)
        self.public_subnets = ec2.SubnetSelection(subnet_group_name=PUBLIC)
        private = self.vpc.select_subnets(subnet_group_name=PRIVATE).subnets

        # Endpoints admit only this account's principals, and only the endpoint's own service.
        def this_account_only(service: str) -> iam.PolicyStatement:
            return iam.PolicyStatement(
                sid="ThisAccountOnly",
                actions=[f"{ACTION_PREFIX.get(service, service.split('.')[0])}:*"],
                resources=["*"],
                principals=[iam.AnyPrincipal()],
                conditions={"StringEquals": {"aws:PrincipalAccount": Aws.ACCOUNT_ID}},
            )

        # Gateway endpoints are free: S3 (data, artifacts, capture, ECR layers) and DynamoDB (lock).
        for service, endpoint in (
            ("s3", ec2.GatewayVpcEndpointAwsService.S3),
            ("dynamodb", ec2.GatewayVpcEndpointAwsService.DYNAMODB),
        ):
            gateway = self.vpc.add_gateway_endpoint(
                f"{service.capitalize()}Endpoint", service=endpoint, subnets=[self.private_subnets]
            )
            gateway.add_to_policy(this_account_only(service))
            if service == "s3":
                # ECR serves image layers from an AWS-owned bucket through URLs it pre-signs (not as
                # this account's principal): the minimum AWS documents, or no image pull works.
                gateway.add_to_policy(
                    iam.PolicyStatement(
                        sid="EcrImageLayers",
                        actions=["s3:GetObject"],
                        resources=[f"arn:{Aws.PARTITION}:s3:::prod-{Aws.REGION}-starport-layer-bucket/*"],
                        principals=[iam.AnyPrincipal()],
                    )
                )

        self.endpoints_sg = ec2.SecurityGroup(
            self,
            "EndpointsSg",
            vpc=self.vpc,
            security_group_name=f"{name}-vpc-endpoints",
            description="HTTPS from inside the VPC to interface VPC endpoints",
            allow_all_outbound=False,
        )
        self.endpoints_sg.add_ingress_rule(
            ec2.Peer.ipv4(self.vpc.vpc_cidr_block), ec2.Port.tcp(443), "HTTPS from the VPC"
        )
        endpoint_subnets = ec2.SubnetSelection(subnets=private[: min(endpoint_subnet_count, len(private))])
        for service in sorted(interface_endpoints):
            interface = self.vpc.add_interface_endpoint(
                "Endpoint" + "".join(part.capitalize() for part in service.split(".")),
                service=ec2.InterfaceVpcEndpointAwsService(service),
                private_dns_enabled=True,
                subnets=endpoint_subnets,
                security_groups=[self.endpoints_sg],
                open=False,
            )
            interface.add_to_policy(this_account_only(service))

        # VPC flow logs (accepted and rejected traffic) into an encrypted log group.
        flow_group = log_group(
            self, "FlowLogs", name=f"/esteira/{name}/vpc-flow-logs", key=key, days=log_retention_days
        )
        flow_role = iam.Role(
            self,
            "FlowLogsRole",
            role_name=f"{name}-vpc-flow-logs",
            assumed_by=iam.ServicePrincipal("vpc-flow-logs.amazonaws.com"),
        )
        # The flow log grants the role CreateLogStream/PutLogEvents/DescribeLogStreams on this group.
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_group, flow_role),
            traffic_type=ec2.FlowLogTrafficType.ALL,
            max_aggregation_interval=ec2.FlowLogMaxAggregationInterval.TEN_MINUTES,
        )
