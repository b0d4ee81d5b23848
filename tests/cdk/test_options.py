"""The optional parts of issue 22 in the CDK app: EC2 training capacity and CodePipeline delivery.

One synthesis of dev with both on (conftest.OPTIONS); test_parity.py compares the same template with
the Terraform plan of the same options. What is checked here is what the modules' own plan tests
check (tests/infra/test_ec2_capacity_plan.py, test_delivery_plan.py), on the CloudFormation side.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from .cfn import resolve
from .conftest import Synth, synthesise

pytestmark = pytest.mark.slow


def one(synth: Synth, cfn_type: str) -> dict[str, Any]:
    (resource,) = synth.resources(cfn_type).values()
    return resource["Properties"]


def test_the_hosts_launch_from_the_ecs_optimised_ami_with_imdsv2_and_encrypted_volumes(
    dev_with_options: Synth,
) -> None:
    template = one(dev_with_options, "AWS::EC2::LaunchTemplate")
    assert template["LaunchTemplateName"] == "esteira-dev-ec2-training"
    data = template["LaunchTemplateData"]
    parameter = resolve(data["ImageId"])
    (ssm,) = [p for p in dev_with_options.template["Parameters"].values() if "EC2::Image" in p["Type"]]
    assert ssm["Default"] == "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id", parameter
    metadata = data["MetadataOptions"]
    assert (metadata["HttpTokens"], metadata["HttpPutResponseHopLimit"]) == ("required", 1)
    (volume,) = data["BlockDeviceMappings"]
    assert volume["Ebs"]["Encrypted"] is True and volume["Ebs"]["VolumeType"] == "gp3"
    assert volume["Ebs"]["VolumeSize"] == 100 and "KmsKeyId" in volume["Ebs"]
    user_data = str(resolve(data["UserData"]))
    assert "ECS_CLUSTER=" in user_data and "ECS_AWSVPC_BLOCK_IMDS=true" in user_data
    assert "ECS_ENABLE_GPU_SUPPORT" not in user_data
    assert data["InstanceType"] == "m6i.8xlarge"
    assert data["Monitoring"] == {"Enabled": True}


def test_the_group_costs_nothing_idle_and_ecs_scales_it(dev_with_options: Synth) -> None:
    group = one(dev_with_options, "AWS::AutoScaling::AutoScalingGroup")
    assert (group["MinSize"], group["MaxSize"]) == ("0", "1")
    assert "DesiredCapacity" not in group, "ECS's managed scaling owns the desired capacity"
    assert group["NewInstancesProtectedFromScaleIn"] is True
    assert {"Key": "AmazonECSManaged", "Value": "true", "PropagateAtLaunch": True} in group["Tags"]
    provider = one(dev_with_options, "AWS::ECS::CapacityProvider")
    assert provider["Name"] == "esteira-dev-ec2-training"
    asg = provider["AutoScalingGroupProvider"]
    assert asg["ManagedTerminationProtection"] == "ENABLED" and asg["ManagedDraining"] == "ENABLED"
    assert asg["ManagedScaling"]["Status"] == "ENABLED" and asg["ManagedScaling"]["TargetCapacity"] == 100
    association = one(dev_with_options, "AWS::ECS::ClusterCapacityProviderAssociations")
    assert [resolve(p) for p in association["CapacityProviders"]][:2] == ["FARGATE", "FARGATE_SPOT"]
    assert len(association["CapacityProviders"]) == 3
    # The default strategy stays Fargate: serving and MLflow never land on the training hosts.
    assert [s["CapacityProvider"] for s in association["DefaultCapacityProviderStrategy"]] == ["FARGATE_SPOT"]


def test_the_state_machine_runs_the_ec2_task_on_the_capacity_provider(dev_with_options: Synth) -> None:
    machine = dev_with_options.state_machine()
    document = json.loads(resolve(machine["Properties"]["DefinitionString"]))
    state = document["States"]["TrainEc2"]
    params = state.get("Parameters") or state.get("Arguments")
    assert params["TaskDefinition"].startswith("<Ref:WorkflowTrainEc2TaskDefinition")
    assert params["CapacityProviderStrategy"][0]["CapacityProvider"].startswith("<Ref:Ec2CapacityCapacityProvider")
    assert '"ec2": "true"' in resolve(machine["Properties"]["DefinitionString"])
    task = next(
        r["Properties"]
        for r in dev_with_options.resources("AWS::ECS::TaskDefinition").values()
        if r["Properties"].get("Family") == "esteira-dev-train-ec2"
    )
    assert task["RequiresCompatibilities"] == ["EC2"] and task["NetworkMode"] == "awsvpc"
    assert (task["Cpu"], task["Memory"]) == ("30720", "114688")
    (policy,) = [
        r["Properties"]
        for k, r in dev_with_options.resources("AWS::IAM::Policy").items()
        if k.startswith("WorkflowStateMachinePolicy")
    ]
    (run,) = [s for s in policy["PolicyDocument"]["Statement"] if s.get("Sid") == "RunTraining"]
    families = sorted(re.sub(r".*task-definition/", "", str(resolve(arn))) for arn in run["Resource"])
    assert families == ["esteira-dev-train-ec2:*", "esteira-dev-train:*"]
    # Without a NAT the ECS agent needs its endpoints.
    endpoints = [
        str(resolve(r["Properties"]["ServiceName"]))
        for r in dev_with_options.resources("AWS::EC2::VPCEndpoint").values()
    ]
    assert any(e.endswith(".ecs-agent") for e in endpoints) and any(e.endswith(".ecs-telemetry") for e in endpoints)


def test_the_pipeline_applies_then_starts_the_workflow(dev_with_options: Synth) -> None:
    pipeline = one(dev_with_options, "AWS::CodePipeline::Pipeline")
    assert pipeline["Name"] == "esteira-dev-delivery"
    assert (pipeline["PipelineType"], pipeline["ExecutionMode"]) == ("V2", "QUEUED")
    assert [s["Name"] for s in pipeline["Stages"]] == ["Source", "Deploy"], "no approval outside prod"
    (source,) = pipeline["Stages"][0]["Actions"]
    assert source["Configuration"]["PollForSourceChanges"] == "false"
    assert source["Configuration"]["S3ObjectKey"] == "releases/release.zip"
    apply, workflow = pipeline["Stages"][1]["Actions"]
    assert (apply["ActionTypeId"]["Provider"], apply["RunOrder"]) == ("CodeBuild", 1)
    assert (workflow["ActionTypeId"]["Provider"], workflow["RunOrder"]) == ("StepFunctions", 2)
    assert workflow["Configuration"]["InputType"] == "FilePath"
    assert workflow["Configuration"]["Input"] == "workflow-input.json"
    project = one(dev_with_options, "AWS::CodeBuild::Project")
    assert project["Name"] == "esteira-dev-deploy" and project["Environment"]["PrivilegedMode"] is False
    assert "make release-deploy" in project["Source"]["BuildSpec"]
    rules = {r["Properties"]["Name"]: r["Properties"] for r in dev_with_options.resources("AWS::Events::Rule").values()}
    assert rules["esteira-dev-delivery-failed"]["EventPattern"]["detail"]["state"] == ["FAILED"]
    assert rules["esteira-dev-release-published"]["EventPattern"]["detail"]["object"] == {
        "key": ["releases/release.zip"]
    }
    bucket = next(
        r["Properties"]
        for r in dev_with_options.resources("AWS::S3::Bucket").values()
        if "delivery" in str(resolve(r["Properties"].get("BucketName", "")))
    )
    assert bucket["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    outputs = dev_with_options.template["Outputs"]
    assert {"DeliveryPipelineName", "ReleaseObject"} <= set(outputs)
    assert not dev_with_options.messages


def test_prod_asks_for_approval_and_gpu_hosts_use_the_gpu_ami(tmp_path_factory: pytest.TempPathFactory) -> None:
    prod = synthesise(
        tmp_path_factory.mktemp("cdk-prod-options"),
        "prod",
        {
            "ec2_training": {
                "enabled": True,
                "instance_type": "g5.2xlarge",
                "gpus": 1,
                "task_cpu": 8192,
                "task_memory": 28672,
            },
            "delivery": "codepipeline",
        },
    )
    pipeline = one(prod, "AWS::CodePipeline::Pipeline")
    assert [s["Name"] for s in pipeline["Stages"]] == ["Source", "Approve", "Deploy"]
    (approve,) = pipeline["Stages"][1]["Actions"]
    assert approve["ActionTypeId"]["Provider"] == "Manual" and "NotificationArn" in approve["Configuration"]
    (ssm,) = [p for p in prod.template["Parameters"].values() if "EC2::Image" in p["Type"]]
    assert ssm["Default"].endswith("/gpu/recommended/image_id")
    data = one(prod, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    assert "ECS_ENABLE_GPU_SUPPORT=true" in str(resolve(data["UserData"]))
    task = next(
        r["Properties"]
        for r in prod.resources("AWS::ECS::TaskDefinition").values()
        if r["Properties"].get("Family") == "esteira-prod-train-ec2"
    )
    assert task["ContainerDefinitions"][0]["ResourceRequirements"] == [{"Type": "GPU", "Value": "1"}]
    policies = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for k, r in prod.resources("AWS::IAM::Policy").items()
        if k.startswith("DeliveryPipelinePolicy")
    ]
    assert any(s.get("Sid") == "ApprovalNotice" for s in policies[0])
