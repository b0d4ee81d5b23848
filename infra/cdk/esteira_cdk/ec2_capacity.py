"""EC2 capacity for heavy training (modules/ec2_capacity, docs/training-capacity.md).

An ECS capacity provider over an Auto Scaling group of ECS-optimised instances. Managed scaling keeps
the group at 0 instances until a training task is placed on it, and managed termination protection
keeps ECS from scaling in an instance that is still running one. The training task itself is the
workflow's EC2 task definition; what runs here is only the host and its ECS agent.

L1 resources, one per Terraform resource: the L2 AutoScalingGroup and AsgCapacityProvider add their
own role, instance profile and draining hook Lambda, which Terraform does not have (ECS's managed
draining does that work).
"""

from __future__ import annotations

from aws_cdk import Fn
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
GPU_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"


def ami_parameter(gpus: int, override: str | None = None) -> str:
    """The public SSM parameter of the ECS-optimised AMI (its GPU variant when gpus > 0)."""
    if override is not None:
        if not override.startswith("/aws/service/ecs/optimized-ami/"):
            raise ValueError("ami_parameter must be one of the public /aws/service/ecs/optimized-ami/... parameters.")
        return override
    return GPU_AMI_PARAMETER if gpus > 0 else AMI_PARAMETER


class Ec2Capacity(Construct):
    """`<name>-ec2-training`: role, instance profile, security group, launch template, group, capacity provider."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        cluster_name: str,
        vpc: ec2.IVpc,
        private_subnets: ec2.SubnetSelection,
        instance_type: str,
        gpus: int,
        max_instances: int,
        volume_size_gb: int,
        key: kms.IKey,
        tags: dict[str, str],
        ami_parameter_name: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        resource_name = f"{name}-ec2-training"
        parameter = ami_parameter(gpus, ami_parameter_name)
        # The agent's configuration: the cluster to join, no instance metadata for awsvpc tasks (they use
        # their task role, never the host's), GPU support on GPU hosts.
        ecs_config = [
            f"ECS_CLUSTER={cluster_name}",
            "ECS_AWSVPC_BLOCK_IMDS=true",
            "ECS_ENABLE_TASK_IAM_ROLE=true",
            *(["ECS_ENABLE_GPU_SUPPORT=true"] if gpus > 0 else []),
        ]
        user_data = "#!/bin/bash\ncat >> /etc/ecs/ecs.config <<'CONFIG'\n" + "\n".join(ecs_config) + "\nCONFIG\n"

        # ---- the host's role: what the ECS agent needs (AWS's managed policy for container instances)
        self.instance_role = iam.Role(
            self,
            "InstanceRole",
            role_name=resource_name,
            description="ECS agent on the EC2 training hosts",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonEC2ContainerServiceforEC2Role")
            ],
        )
        profile = iam.CfnInstanceProfile(
            self, "InstanceProfile", instance_profile_name=resource_name, roles=[self.instance_role.role_name]
        )

        # ---- network: the host only calls out (the ECS agent, image pulls); tasks have their own ENIs
        self.security_group = ec2.SecurityGroup(
            self,
            "Sg",
            vpc=vpc,
            security_group_name=resource_name,
            description="EC2 training hosts: outbound HTTPS only (ECS agent, ECR, logs)",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs (VPC endpoints, the S3 gateway)"
        )

        # Resolved by CloudFormation at each deployment (Terraform reads it at plan time).
        image_id = ec2.MachineImage.from_ssm_parameter(parameter).get_image(self).image_id
        host_tags = [{"key": k, "value": v} for k, v in sorted({**tags, "Name": resource_name}.items())]
        self.launch_template = ec2.CfnLaunchTemplate(
            self,
            "LaunchTemplate",
            launch_template_name=resource_name,
            version_description=f"ECS-optimised host for training tasks ({parameter})",
            launch_template_data=ec2.CfnLaunchTemplate.LaunchTemplateDataProperty(
                image_id=image_id,
                instance_type=instance_type,
                security_group_ids=[self.security_group.security_group_id],
                user_data=Fn.base64(user_data),
                iam_instance_profile=ec2.CfnLaunchTemplate.IamInstanceProfileProperty(arn=profile.attr_arn),
                # IMDSv2 only, and one hop: a container cannot reach the host's credentials.
                metadata_options=ec2.CfnLaunchTemplate.MetadataOptionsProperty(
                    http_endpoint="enabled",
                    http_tokens="required",
                    http_put_response_hop_limit=1,
                    instance_metadata_tags="disabled",
                ),
                block_device_mappings=[
                    ec2.CfnLaunchTemplate.BlockDeviceMappingProperty(
                        device_name="/dev/xvda",
                        ebs=ec2.CfnLaunchTemplate.EbsProperty(
                            volume_type="gp3",
                            volume_size=volume_size_gb,
                            encrypted=True,
                            kms_key_id=key.key_arn,
                            delete_on_termination=True,
                        ),
                    )
                ],
                monitoring=ec2.CfnLaunchTemplate.MonitoringProperty(enabled=True),
                tag_specifications=[
                    ec2.CfnLaunchTemplate.TagSpecificationProperty(resource_type=kind, tags=host_tags)
                    for kind in ("instance", "volume")
                ],
            ),
        )

        subnet_ids = vpc.select_subnets(subnet_group_name=private_subnets.subnet_group_name).subnet_ids
        self.group = autoscaling.CfnAutoScalingGroup(
            self,
            "Group",
            auto_scaling_group_name=resource_name,
            vpc_zone_identifier=subnet_ids,
            min_size="0",
            max_size=str(max_instances),
            # ECS sets the desired capacity (managed scaling): no DesiredCapacity here, so a deployment
            # never resets it. Managed termination protection needs every instance protected.
            new_instances_protected_from_scale_in=True,
            health_check_type="EC2",
            launch_template=autoscaling.CfnAutoScalingGroup.LaunchTemplateSpecificationProperty(
                launch_template_id=self.launch_template.ref,
                version=self.launch_template.attr_latest_version_number,
            ),
            # The stack's tags reach the group through Tags.of(stack) and propagate to the instances.
            tags=[
                autoscaling.CfnAutoScalingGroup.TagPropertyProperty(
                    key="AmazonECSManaged", value="true", propagate_at_launch=True
                )
            ],
        )

        self.capacity_provider = ecs.CfnCapacityProvider(
            self,
            "CapacityProvider",
            name=resource_name,
            auto_scaling_group_provider=ecs.CfnCapacityProvider.AutoScalingGroupProviderProperty(
                auto_scaling_group_arn=self.group.ref,  # CloudFormation takes the group's name or ARN
                managed_termination_protection="ENABLED",
                managed_draining="ENABLED",
                managed_scaling=ecs.CfnCapacityProvider.ManagedScalingProperty(
                    status="ENABLED",
                    target_capacity=100,
                    minimum_scaling_step_size=1,
                    maximum_scaling_step_size=max_instances,
                    instance_warmup_period=300,
                ),
            ),
        )
        self.capacity_provider_name = resource_name
