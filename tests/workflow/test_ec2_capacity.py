"""The embedded ECS places tasks on an EC2 capacity provider as ECS and the host do (localaws.ec2_capacity).

Built here with the API calls Terraform makes (modules/ec2_capacity), without an apply: a launch
template, an Auto Scaling group at 0, a capacity provider with managed scaling, the cluster's
association. The applied stack's training run on EC2 is tests/workflow/test_workflow_local.py.
"""

from __future__ import annotations

import base64
import itertools
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localaws import LocalAWS

TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


@dataclass
class Capacity:
    aws: LocalAWS
    cluster: str
    group: str
    provider: str
    subnet: str
    security_group: str

    def client(self, name: str) -> Any:
        return self.aws.client(name)

    def desired(self) -> int:
        asg = self.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[self.group])
        return int(asg["AutoScalingGroups"][0]["DesiredCapacity"])

    def task_definition(self, family: str, *, cpu: str = "1024", memory: str = "2048", **extra: Any) -> str:
        container = {"name": "main", "image": "x", "command": [sys.executable, "-c", "print('trained')"], **extra}
        return str(
            self.client("ecs").register_task_definition(
                family=family, requiresCompatibilities=["EC2"], networkMode="awsvpc", cpu=cpu, memory=memory,
                containerDefinitions=[container],
            )["taskDefinition"]["taskDefinitionArn"]
        )  # fmt: skip

    def run(self, task_definition: str, provider: str | None = None) -> dict[str, Any]:
        return dict(
            self.client("ecs").run_task(
                cluster=self.cluster, taskDefinition=task_definition,
                capacityProviderStrategy=[{"capacityProvider": provider or self.provider, "weight": 1}],
                networkConfiguration={
                    "awsvpcConfiguration": {"subnets": [self.subnet], "securityGroups": [self.security_group]}
                },
            )
        )  # fmt: skip


_COUNT = itertools.count()


def _capacity(
    aws: LocalAWS, *, cluster_in_user_data: str = "", instance_type: str = "m6i.large", volume_key: str = ""
) -> Capacity:
    """A cluster, a group at 0 and a provider with managed scaling, named apart from other tests' (n)."""
    n = next(_COUNT)
    cluster, host, group_name, provider = f"c{n}", f"host{n}", f"hosts{n}", f"training{n}"
    cluster_in_user_data = cluster_in_user_data or cluster
    ec2, iam = aws.client("ec2"), aws.client("iam")
    volume: dict[str, Any] = {"VolumeSize": 30, "VolumeType": "gp3", "Encrypted": True}
    if volume_key:
        volume["KmsKeyId"] = volume_key
    vpc = ec2.create_vpc(CidrBlock=f"10.{n}.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{n}.1.0/24", AvailabilityZone="us-east-1a")["Subnet"][
        "SubnetId"
    ]
    group = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)["GroupId"]
    iam.create_role(RoleName=host, AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.create_instance_profile(InstanceProfileName=host)
    iam.add_role_to_instance_profile(InstanceProfileName=host, RoleName=host)
    user_data = f"#!/bin/bash\necho ECS_CLUSTER={cluster_in_user_data} >> /etc/ecs/ecs.config\n"
    ec2.create_launch_template(
        LaunchTemplateName=host,
        LaunchTemplateData={
            "ImageId": "ami-12345678", "InstanceType": instance_type,
            "IamInstanceProfile": {"Name": host}, "UserData": base64.b64encode(user_data.encode()).decode(),
            "MetadataOptions": {"HttpTokens": "required"},
            "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": volume}],
        },
    )  # fmt: skip
    autoscaling = aws.client("autoscaling")
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=group_name, MinSize=0, MaxSize=1, DesiredCapacity=0, VPCZoneIdentifier=subnet,
        LaunchTemplate={"LaunchTemplateName": host, "Version": "$Latest"}, NewInstancesProtectedFromScaleIn=True,
    )  # fmt: skip
    arn = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"][0][
        "AutoScalingGroupARN"
    ]
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName=cluster)
    ecs.create_capacity_provider(
        name=provider,
        autoScalingGroupProvider={
            "autoScalingGroupArn": arn, "managedTerminationProtection": "ENABLED",
            "managedScaling": {"status": "ENABLED", "targetCapacity": 100},
        },
    )  # fmt: skip
    ecs.put_cluster_capacity_providers(
        cluster=cluster, capacityProviders=["FARGATE", provider],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}],
    )  # fmt: skip
    return Capacity(aws, cluster, group_name, provider, subnet, group)


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAWS]:
    """One emulator for the module (each test builds its own cluster, group and provider)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOCALAWS_HOST_IDLE_SECONDS", "0.5")
        with LocalAWS(workdir=tmp_path_factory.mktemp("localaws")) as local:
            yield local


def _wait_stopped(cap: Capacity, arn: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        task = cap.client("ecs").describe_tasks(cluster=cap.cluster, tasks=[arn])["tasks"][0]
        if task["lastStatus"] == "STOPPED":
            return dict(task)
        assert time.monotonic() < deadline, task
        time.sleep(0.2)


def test_managed_scaling_adds_a_host_for_the_task_and_removes_it_when_idle(aws: LocalAWS) -> None:
    cap = _capacity(aws)
    assert cap.desired() == 0
    started = cap.run(cap.task_definition("train"))
    assert cap.desired() == 1  # scaled out for the task
    hosts = cap.client("ecs").list_container_instances(cluster=cap.cluster)["containerInstanceArns"]
    assert len(hosts) == 1
    (host,) = cap.client("ecs").describe_container_instances(cluster=cap.cluster, containerInstances=hosts)[
        "containerInstances"
    ]
    registered = {r["name"]: r.get("integerValue") for r in host["registeredResources"]}
    assert registered["CPU"] == 2 * 1024 and registered["MEMORY"] == int(8192 * 0.9)  # m6i.large
    task = _wait_stopped(cap, started["tasks"][0]["taskArn"])
    assert task["containers"][0]["exitCode"] == 0
    assert task["capacityProviderName"] == cap.provider
    deadline = time.monotonic() + 20
    while cap.desired() != 0:  # idle: deregistered and scaled in, as managed scaling does
        assert time.monotonic() < deadline, "the idle host was never removed"
        time.sleep(0.2)
    assert cap.client("ecs").list_container_instances(cluster=cap.cluster)["containerInstanceArns"] == []


def test_a_host_whose_user_data_names_another_cluster_never_takes_the_task(aws: LocalAWS) -> None:
    cap = _capacity(aws, cluster_in_user_data="default")
    with pytest.raises(ClientError, match=r"joined ECS cluster 'default', not 'c\d+'.*ECS_CLUSTER=c\d+"):
        cap.run(cap.task_definition("train"))


def test_a_task_larger_than_a_host_is_refused_with_the_sizes(aws: LocalAWS) -> None:
    cap = _capacity(aws)
    too_big = cap.task_definition("big", cpu="4096", memory="4096")  # m6i.large: 2 vCPU
    with pytest.raises(ClientError, match=r"RESOURCE: the task \(cpu 4096.*never fits a m6i.large host"):
        cap.run(too_big)
    gpu = cap.task_definition("gpu", resourceRequirements=[{"type": "GPU", "value": "1"}])
    with pytest.raises(ClientError, match=r"1 GPU\) never fits"):
        cap.run(gpu)
    assert cap.desired() == 0  # nothing was launched for a task that can never fit


def test_a_provider_the_cluster_does_not_use_and_a_fargate_only_definition_are_refused(aws: LocalAWS) -> None:
    cap = _capacity(aws)
    cap.client("ecs").put_cluster_capacity_providers(
        cluster=cap.cluster, capacityProviders=["FARGATE"], defaultCapacityProviderStrategy=[]
    )
    with pytest.raises(ClientError, match="not associated with the cluster"):
        cap.run(cap.task_definition("train"))
    cap.client("ecs").put_cluster_capacity_providers(
        cluster=cap.cluster, capacityProviders=["FARGATE", cap.provider], defaultCapacityProviderStrategy=[]
    )
    fargate_only = cap.client("ecs").register_task_definition(
        family="f", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=[{"name": "main", "image": "x", "command": ["true"]}],
    )["taskDefinition"]["taskDefinitionArn"]  # fmt: skip
    with pytest.raises(ClientError, match="does not support the EC2 launch type"):
        cap.run(fargate_only)


def test_the_max_size_bounds_the_hosts(aws: LocalAWS) -> None:
    cap = _capacity(aws)
    sleeper = cap.task_definition(
        "long", cpu="2048", memory="7000", command=[sys.executable, "-c", "import time; time.sleep(30)"]
    )
    first = cap.run(sleeper)
    try:
        with pytest.raises(ClientError, match=r"at its max_size \(1\)"):
            cap.run(sleeper)  # the one host is full and the group may not grow
    finally:
        cap.client("ecs").stop_task(cluster=cap.cluster, task=first["tasks"][0]["taskArn"], reason="test over")


def test_a_volume_key_autoscaling_may_not_use_stops_the_launch(aws: LocalAWS) -> None:
    """AWS terminates such an instance at launch; the key policy must name the service-linked role."""
    kms = aws.client("kms")
    account = aws.client("sts").get_caller_identity()["Account"]
    root = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:*", "Resource": "*"}
    closed = kms.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": [root]}))["KeyMetadata"]["Arn"]
    cap = _capacity(aws, volume_key=closed)
    with pytest.raises(ClientError, match="EC2 Auto Scaling may not use KMS key.*AWSServiceRoleForAutoScaling"):
        cap.run(cap.task_definition("train"))
    slr = f"arn:aws:iam::{account}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    grant = {
        "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:CreateGrant", "Resource": "*",
        "Condition": {"ArnEquals": {"aws:PrincipalArn": slr}, "Bool": {"kms:GrantIsForAWSResource": "true"}},
    }  # fmt: skip
    kms.put_key_policy(KeyId=closed, PolicyName="default", Policy=json.dumps({"Statement": [root, grant]}))
    cap = _capacity(aws, volume_key=closed)
    started = cap.run(cap.task_definition("train"))
    assert _wait_stopped(cap, started["tasks"][0]["taskArn"])["containers"][0]["exitCode"] == 0
