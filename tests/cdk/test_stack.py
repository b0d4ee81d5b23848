"""What the synthesised dev stack must contain: same resources, least privilege, the retraining wiring."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import hcl2
import yaml
from aws_cdk.assertions import Match

from .cfn import as_list, resolve, statements, string_split
from .conftest import RELEASE, REPO, Synth

# Actions that have no resource-level permissions in IAM, so "Resource": "*" is the only option.
# A new entry here needs the same justification (AWS Service Authorization Reference).
NO_RESOURCE_LEVEL = {
    "cloudwatch:PutMetricData",  # scoped by the cloudwatch:namespace condition where we grant it
    "cloudwatch:GetMetricData",
    "cloudwatch:DescribeAlarms",
    "cloudwatch:ListMetrics",  # canary checks find the per-intent metrics of a model version
    "ecs:RegisterTaskDefinition",
    "ecs:DescribeTaskDefinition",
    "ecs:ListTaskDefinitions",
    "ecs:ListTasks",
    "ecs:DescribeTasks",
    "ecr:GetAuthorizationToken",
    "ec2:DescribeNetworkInterfaces",  # the SageMaker training job's VPC mode
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


def function_by_name(dev: Synth, suffix: str) -> tuple[str, dict[str, Any]]:
    for logical_id, fn in dev.resources("AWS::Lambda::Function").items():
        if fn["Properties"].get("FunctionName") == f"esteira-dev-{suffix}":
            return logical_id, fn
    raise AssertionError(f"no function esteira-dev-{suffix}")


# ---------------------------------------------------------------- resources


def test_synthesis_has_no_warnings(dev: Synth) -> None:
    assert not dev.messages, "\n".join(dev.messages)


def test_workflow_lambdas_are_the_one_image_with_one_handler_each(dev: Synth) -> None:
    tf_functions = hcl2.load((REPO / "infra/terraform/modules/workflow/variables.tf").open())
    tf_keys = {
        key.strip('"')
        for block in tf_functions["variable"]
        for name, var in block.items()
        if name.strip('"') == "functions"
        for key in var["default"]
    }
    assert len(tf_keys) == 11
    images = set()
    for key in tf_keys:
        _, fn = function_by_name(dev, key.replace("_", "-"))
        props = fn["Properties"]
        assert props["PackageType"] == "Image"
        assert props["ImageConfig"]["Command"] == [f"lambdas.{key}.handler"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        if key == "smoke_test":  # calls only the internet-facing ALB, unreachable from private subnets
            assert "VpcConfig" not in props, "the smoke test must run outside the VPC (no NAT by default)"
        else:
            assert props["VpcConfig"]["SubnetIds"], f"{key} is not in the VPC"
        images.add(json.dumps(resolve(props["Code"]["ImageUri"])))
    assert len(images) == 1, f"the Lambdas use different images: {images}"
    (image,) = images
    assert "<Ref:ImageTag>" in image and "RegistryLambdas" in image


def test_every_terraform_module_has_its_core_resources(dev: Synth) -> None:
    t = dev.assertions
    t.resource_count_is("AWS::ECR::Repository", 4)
    t.has_resource_properties(
        "AWS::ECR::Repository", {"RepositoryName": "esteira-dev/lambdas", "ImageTagMutability": "IMMUTABLE"}
    )
    t.resource_count_is("AWS::S3::Bucket", 4)
    t.resource_count_is("AWS::RDS::DBInstance", 1)
    t.has_resource_properties(
        "AWS::RDS::DBInstance",
        {"Engine": "postgres", "ManageMasterUserPassword": True, "StorageEncrypted": True, "PubliclyAccessible": False},
    )
    t.resource_count_is("AWS::ECS::Service", 3)  # serving, serving-canary, mlflow
    t.resource_count_is("AWS::ECS::TaskDefinition", 3)
    t.resource_count_is("AWS::StepFunctions::StateMachine", 2)  # the workflow and the release it starts
    t.resource_count_is("AWS::CloudWatch::Alarm", 6)
    t.resource_count_is("AWS::IAM::OIDCProvider", 1)
    t.has_resource_properties("AWS::EC2::FlowLog", {"TrafficType": "ALL", "MaxAggregationInterval": 600})
    t.has_resource_properties(
        "AWS::DynamoDB::Table", {"TableName": "esteira-dev-workflow-lock", "BillingMode": "PAY_PER_REQUEST"}
    )


def test_subnets_use_the_terraform_address_layout(dev: Synth) -> None:
    net = ipaddress.ip_network("10.40.0.0/16")
    blocks = [str(b) for b in net.subnets(prefixlen_diff=4)]
    cidrs = sorted(s["Properties"]["CidrBlock"] for s in dev.resources("AWS::EC2::Subnet").values())
    assert cidrs == sorted(blocks[0:2] + blocks[8:10])
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in dev.resources("AWS::EC2::Subnet").values())


def test_data_at_rest_is_encrypted_with_the_stack_key(dev: Synth) -> None:
    (key_id,) = dev.resources("AWS::KMS::Key")
    key_ref = f"<GetAtt:{key_id}.Arn>"
    for logical_id, group in dev.resources("AWS::Logs::LogGroup").items():
        assert resolve(group["Properties"].get("KmsKeyId")) == key_ref, f"log group {logical_id} is not KMS-encrypted"
    for logical_id, bucket in dev.resources("AWS::S3::Bucket").items():
        rules = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rules, f"bucket {logical_id} is not encrypted"
    kms_buckets = [b for b in dev.resources("AWS::S3::Bucket").values() if "aws:kms" in json.dumps(b)]
    assert len(kms_buckets) == 3  # data, artifacts, capture; the access-log bucket must be SSE-S3
    dev.assertions.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    dev.assertions.has_resource_properties(
        "AWS::DynamoDB::Table", {"SSESpecification": {"SSEEnabled": True, "SSEType": "KMS"}}
    )
    dev.assertions.has_resource_properties(
        "AWS::StepFunctions::StateMachine", {"EncryptionConfiguration": {"Type": "CUSTOMER_MANAGED_KMS_KEY"}}
    )
    for repo in dev.resources("AWS::ECR::Repository").values():
        assert repo["Properties"]["EncryptionConfiguration"]["EncryptionType"] == "KMS"


# ---------------------------------------------------------------- IAM


def test_no_policy_allows_every_action_on_every_resource(dev: Synth) -> None:
    found = statements(dev.template)
    assert len(found) > 40, "policy statements were not found: the test would pass vacuously"
    for logical_id, statement in found:
        if statement.get("Effect") != "Allow":
            continue
        actions = as_list(statement.get("Action", []))
        resources = as_list(statement.get("Resource", []))
        assert not ("*" in actions and "*" in resources), f"{logical_id} allows * on *: {statement}"
        assert "NotAction" not in statement and "NotResource" not in statement, f"{logical_id}: {statement}"
        if "*" in resources:
            wildcard = set(actions) - NO_RESOURCE_LEVEL
            assert not wildcard, f"{logical_id} grants {sorted(wildcard)} on '*' although they support resource ARNs"


def test_put_metric_data_is_limited_to_the_esteira_namespace(dev: Synth) -> None:
    grants = [s for _, s in statements(dev.template) if "cloudwatch:PutMetricData" in as_list(s["Action"])]
    assert len(grants) >= 2  # serving task and workflow Lambdas
    for statement in grants:
        assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Esteira"}}


def test_github_roles_trust_only_this_repository(dev: Synth) -> None:
    roles = {
        r["Properties"]["RoleName"]: r
        for r in dev.resources("AWS::IAM::Role").values()
        if "RoleName" in r["Properties"]
    }
    deploy = roles["esteira-dev-github-deploy"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert deploy["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert (
        deploy["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
        == "repo:esteira-mlops/esteira:environment:production"  # the environment deploy.yml applies in
    )
    plan = roles["esteira-dev-github-plan"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert plan["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == [
        "repo:esteira-mlops/esteira:pull_request",
        "repo:esteira-mlops/esteira:ref:refs/heads/main",  # deploy.yml's plan job, dispatched on main
    ]
    train = roles["esteira-dev-github-train"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert (
        train["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
        == "repo:esteira-mlops/esteira:ref:refs/heads/main"
    )


# ---------------------------------------------------------------- alarm -> EventBridge -> retrain_trigger -> SFN


def matches(pattern: Any, event: Any) -> bool:
    """The subset of EventBridge pattern matching the rules use: equality lists, prefix, nesting; an
    array in the event matches when any of its elements does."""
    if isinstance(pattern, dict):
        return isinstance(event, dict) and all(k in event and matches(v, event[k]) for k, v in pattern.items())
    if isinstance(pattern, list) and isinstance(event, list):
        return any(matches(pattern, e) for e in event)
    if isinstance(pattern, list):
        for option in pattern:
            if isinstance(option, dict) and "prefix" in option:
                if isinstance(event, str) and event.startswith(option["prefix"]):
                    return True
            elif option == event:
                return True
        return False
    raise AssertionError(f"unsupported pattern {pattern!r}")


def alarm_event(name: str, state: str, arn: str | None = None) -> dict[str, Any]:
    return {
        "source": "aws.cloudwatch",
        "detail-type": "CloudWatch Alarm State Change",
        "resources": [arn or f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"],
        "detail": {"alarmName": name, "state": {"value": state}},
    }


def test_model_alarms_start_retraining_through_eventbridge(dev: Synth) -> None:
    contract = yaml.safe_load((REPO / "contract.yaml").read_text())["alarms"]
    by_id = {k: a["Properties"]["AlarmName"] for k, a in dev.resources("AWS::CloudWatch::Alarm").items()}
    # Terraform's naming, from contract.yaml: <name>-<suffix>; model health is <name><retrain_prefix>*.
    assert sorted(by_id.values()) == sorted(f"esteira-dev-{s}" for s in contract["suffixes"].values())
    model_prefix = f"esteira-dev{contract['retrain_prefix']}"
    model_alarms = {k: n for k, n in by_id.items() if n.startswith(model_prefix)}
    assert sorted(model_alarms.values()) == ["esteira-dev-model-drift", "esteira-dev-model-low-confidence"]

    rules = [r for r in dev.resources("AWS::Events::Rule").values() if "EventPattern" in r["Properties"]]
    assert len(rules) == 1
    (rule_id,) = [k for k, r in dev.resources("AWS::Events::Rule").items() if "EventPattern" in r["Properties"]]
    pattern = resolve(rules[0]["Properties"]["EventPattern"])
    # As Terraform's rule: the two model-health alarms by ARN, state ALARM.
    assert sorted(pattern["resources"]) == sorted(f"<GetAtt:{k}.Arn>" for k in model_alarms)
    for logical_id, name in by_id.items():
        arn = f"<GetAtt:{logical_id}.Arn>"
        retrains = logical_id in model_alarms
        assert matches(pattern, alarm_event(name, "ALARM", arn)) == retrains, f"{name} entering ALARM"
        assert not matches(pattern, alarm_event(name, "OK", arn))
    other = alarm_event("esteira-prod-model-drift", "ALARM")
    assert not matches(pattern, other), "another environment's alarm matches"
    # retrain_trigger checks the prefix it is given, which is the monitoring's model-health prefix.
    _, trigger_fn = function_by_name(dev, "retrain-trigger")
    assert trigger_fn["Properties"]["Environment"]["Variables"]["ESTEIRA_RETRAIN_ALARM_PREFIX"] == model_prefix

    trigger_id, trigger = function_by_name(dev, "retrain-trigger")
    (target,) = rules[0]["Properties"]["Targets"]
    assert resolve(target["Arn"]) == f"<GetAtt:{trigger_id}.Arn>"
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600}
    dev.assertions.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "Principal": "events.amazonaws.com",
            "FunctionName": {"Fn::GetAtt": [trigger_id, "Arn"]},
            "SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]},
        },
    )

    # retrain_trigger knows the state machine and may start it; the ARN names the real machine.
    machine = dev.state_machine()
    machine_name = machine["Properties"]["StateMachineName"]
    env_arn = resolve(trigger["Properties"]["Environment"]["Variables"]["ESTEIRA_STATE_MACHINE_ARN"])
    assert env_arn.endswith(f":stateMachine:{machine_name}") and env_arn.startswith("arn:")
    lambda_role = resolve(trigger["Properties"]["Role"])
    role_id = lambda_role.removeprefix("<GetAtt:").removesuffix(".Arn>")
    grants = [
        resolve(s["Resource"])
        for holder, s in statements(dev.template)
        if "states:StartExecution" in as_list(s["Action"])
        and any(
            role_id in json.dumps(p["Properties"].get("Roles", []))
            for k, p in dev.template["Resources"].items()
            if k == holder
        )
    ]
    assert [env_arn] in [as_list(g) for g in grants], f"the trigger's role cannot start {env_arn}: {grants}"


def test_drift_check_runs_on_the_configured_schedule(dev: Synth) -> None:
    check_id, _ = function_by_name(dev, "drift-check")
    dev.assertions.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "rate(6 hours)",
            "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [check_id, "Arn"]}})],
        },
    )


# ---------------------------------------------------------------- state machine


def test_state_machine_is_the_shared_asl_with_every_variable_filled(dev: Synth) -> None:
    machine = dev.state_machine()
    definition = resolve(machine["Properties"]["DefinitionString"])
    assert "${" not in re.sub(r"<[^>]+>", "", definition), "an ASL template variable was left unrendered"
    document = json.loads(definition)
    source_text = (REPO / "stepfunctions/train_evaluate_deploy.asl.json").read_text()
    source = json.loads(re.sub(r"\$\{[a-z_]+\}", "0", source_text))
    assert document["StartAt"] == source["StartAt"]
    assert set(document["States"]) == set(source["States"])

    # Every Lambda the template names is filled with that function's ARN, and no other function is.
    functions = set(dev.resources("AWS::Lambda::Function"))
    expected = {
        function_by_name(dev, k.replace("_", "-"))[0] for k in re.findall(r"\$\{([a-z_]+)_function_arn\}", source_text)
    }
    assert expected, "the ASL names no Lambda"
    referenced = set(re.findall(r"<GetAtt:([A-Za-z0-9]+)\.Arn>", definition)) & functions
    assert referenced == expected, f"wired {sorted(referenced)}, expected {sorted(expected)}"

    tasks = {k: s for k, s in document["States"].items() if "ecs:runTask" in str(s.get("Resource", ""))}
    assert set(tasks) == {"TrainEcs", "TrainEc2"}
    params = tasks["TrainEcs"].get("Parameters") or tasks["TrainEcs"].get("Arguments")
    network = params["NetworkConfiguration"]["AwsvpcConfiguration"]
    subnets = string_split(network["Subnets.$"])
    assert len(subnets) == 2 and all(s.startswith("<Ref:") for s in subnets)
    (group,) = string_split(network["SecurityGroups.$"])
    assert group.startswith("<GetAtt:WorkflowSg") and group.endswith(".GroupId>")
    assert params["TaskDefinition"].startswith("<Ref:WorkflowTrainTaskDefinition")
    # The EC2 backend is off in dev: its state is rendered with Terraform's values for "off".
    ec2 = tasks["TrainEc2"].get("Parameters") or tasks["TrainEc2"].get("Arguments")
    assert ec2["TaskDefinition"] == "" and ec2["CapacityProviderStrategy"][0]["CapacityProvider"] == ""
    assert '"ec2": "false"' in definition and '"sagemaker": "false"' in definition
    assert machine["Properties"]["LoggingConfiguration"]["Level"] == "ALL"
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}


# A Step Functions ARN prefix in the resolved template (the region may be literal or a Ref).
STATES_ARN = r"arn:<Ref:AWS::Partition>:states:[^:]+:<Ref:AWS::AccountId>"


def _machine_id(dev: Synth, machine: dict[str, Any]) -> str:
    (logical_id,) = [k for k, r in dev.template["Resources"].items() if r is machine]
    return logical_id


def test_the_workflow_starts_the_release_machine_with_the_same_role_and_settings(dev: Synth) -> None:
    """modules/workflow aws_sfn_state_machine.release: the child the workflow starts (startExecution.sync:2)."""
    parent, child = dev.state_machine(), dev.state_machine(RELEASE)
    assert child["Properties"]["StateMachineName"] == "esteira-dev-release"
    assert child["Properties"]["StateMachineType"] == "STANDARD"
    for field in ("RoleArn", "TracingConfiguration", "EncryptionConfiguration"):
        assert child["Properties"][field] == parent["Properties"][field], field
    assert child["Properties"]["EncryptionConfiguration"]["KmsDataKeyReusePeriodSeconds"] == 300
    logging = child["Properties"]["LoggingConfiguration"]
    assert (logging["Level"], logging["IncludeExecutionData"]) == ("ALL", True)
    (destination,) = logging["Destinations"]
    log_group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    assert dev.template["Resources"][log_group_id]["Properties"]["LogGroupName"] == (
        "/aws/vendedlogs/states/esteira-dev-release"
    )
    parent_log = parent["Properties"]["LoggingConfiguration"]["Destinations"][0]["CloudWatchLogsLogGroup"]
    assert parent_log["LogGroupArn"]["Fn::GetAtt"][0] != log_group_id

    # The release machine exists before the workflow can start it (Terraform's depends_on).
    assert _machine_id(dev, child) in as_list(parent.get("DependsOn", []))

    # Its definition is release.asl.json with every variable filled.
    definition = resolve(child["Properties"]["DefinitionString"])
    assert "${" not in re.sub(r"<[^>]+>", "", definition), "a release template variable was left unrendered"
    document = json.loads(definition)
    source_text = (REPO / "stepfunctions/release.asl.json").read_text()
    source = json.loads(source_text)
    assert document["StartAt"] == source["StartAt"] and set(document["States"]) == set(source["States"])
    expected = {
        function_by_name(dev, k.replace("_", "-"))[0] for k in re.findall(r"\$\{([a-z_]+)_function_arn\}", source_text)
    }
    referenced = set(re.findall(r"<GetAtt:([A-Za-z0-9]+)\.Arn>", definition)) & set(
        dev.resources("AWS::Lambda::Function")
    )
    assert expected and referenced == expected, f"wired {sorted(referenced)}, expected {sorted(expected)}"
    assert "States.StringToJson('[10,50,100]')" in definition, "canary_steps as Terraform's jsonencode() writes it"

    # The parent's Release state starts exactly that machine, by the ARN built from its name.
    parent_document = json.loads(resolve(parent["Properties"]["DefinitionString"]))
    (start,) = [
        s for s in parent_document["States"].values() if str(s.get("Resource", "")).endswith("startExecution.sync:2")
    ]
    arn = start["Parameters"]["StateMachineArn"]
    assert re.fullmatch(rf"{STATES_ARN}:stateMachine:esteira-dev-release", arn), arn
    outputs = dev.template["Outputs"]
    assert outputs["ReleaseStateMachineArn"]["Value"] == {"Ref": _machine_id(dev, child)}


def test_the_workflow_role_may_start_and_watch_only_the_release(dev: Synth) -> None:
    (policy,) = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for k, r in dev.resources("AWS::IAM::Policy").items()
        if k.startswith("WorkflowStateMachinePolicy")
    ]
    by_sid = {s.get("Sid"): s for s in policy}
    assert by_sid["StartRelease"]["Action"] == "states:StartExecution"
    start = resolve(by_sid["StartRelease"]["Resource"])
    assert re.fullmatch(rf"{STATES_ARN}:stateMachine:esteira-dev-release", start), start
    assert sorted(as_list(by_sid["WatchRelease"]["Action"])) == ["states:DescribeExecution", "states:StopExecution"]
    watch = resolve(by_sid["WatchRelease"]["Resource"])
    assert re.fullmatch(rf"{STATES_ARN}:execution:esteira-dev-release:\*", watch), watch
    rules = sorted(str(resolve(r)).rsplit("/", 1)[1] for r in as_list(by_sid["SyncIntegrationRules"]["Resource"]))
    assert rules == [
        "StepFunctionsGetEventsForECSTaskRule",
        "StepFunctionsGetEventsForSageMakerTrainingJobsRule",
        "StepFunctionsGetEventsForStepFunctionsExecutionRule",
    ]
    # No other statement anywhere lets this role start or stop executions.
    starts = [
        s
        for holder, s in statements(dev.template)
        if holder.startswith("WorkflowStateMachine") and any(str(a).startswith("states:") for a in as_list(s["Action"]))
    ]
    assert [s.get("Sid") for s in starts] == ["StartRelease", "WatchRelease"]


# ---------------------------------------------------------------- ECS


def test_serving_deploys_roll_back_on_failure(dev: Synth) -> None:
    dev.assertions.has_resource_properties(
        "AWS::ECS::Service",
        {
            "ServiceName": "esteira-serving",
            "DeploymentConfiguration": Match.object_like(
                {
                    "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
                    "MinimumHealthyPercent": 100,
                    "MaximumPercent": 200,
                }
            ),
            "NetworkConfiguration": {"AwsvpcConfiguration": Match.object_like({"AssignPublicIp": "DISABLED"})},
            "LoadBalancers": [Match.object_like({"ContainerName": "serving", "ContainerPort": 8080})],
            "HealthCheckGracePeriodSeconds": 60,
        },
    )
    dev.assertions.has_resource_properties(
        "AWS::ECS::Service",
        {
            "ServiceName": "esteira-mlflow",
            "DeploymentConfiguration": Match.object_like(
                {"DeploymentCircuitBreaker": {"Enable": True, "Rollback": True}}
            ),
        },
    )


def test_serving_container_is_read_only_with_the_contract_environment(dev: Synth) -> None:
    (serving,) = [
        t
        for t in dev.resources("AWS::ECS::TaskDefinition").values()
        if t["Properties"]["Family"] == "esteira-dev-serving"
    ]
    (container,) = serving["Properties"]["ContainerDefinitions"]
    assert container["ReadonlyRootFilesystem"] is True
    env = {e["Name"]: resolve(e["Value"]) for e in container["Environment"]}
    assert env["ESTEIRA_MODEL_URI"] == "models:/esteira-intent@champion"
    assert env["ESTEIRA_SERVICE_NAME"] == "esteira-serving" and env["ESTEIRA_SERVING_PORT"] == "8080"
    assert env["ESTEIRA_CAPTURE_S3_URI"].startswith("s3://") and env["ESTEIRA_CAPTURE_S3_URI"].endswith("/capture/")
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.esteira-dev.internal:5000"


# ---------------------------------------------------------------- the first real deploy (docs/deploy.md)


def _role_actions(template: dict[str, Any], role_id: str) -> set[str]:
    return {
        a
        for holder, s in statements(template)
        if s.get("Effect", "Allow") == "Allow"
        and role_id in json.dumps(template["Resources"][holder]["Properties"].get("Roles", []))
        for a in as_list(s["Action"])
    }


def _role_of(dev: Synth, suffix: str) -> tuple[str, dict[str, Any]]:
    _, fn = function_by_name(dev, suffix)
    role_id = resolve(fn["Properties"]["Role"]).removeprefix("<GetAtt:").removesuffix(".Arn>")
    return role_id, dev.template["Resources"][role_id]


def test_every_role_carries_the_stack_boundary(dev: Synth) -> None:
    (boundary_id,) = [
        k
        for k, r in dev.resources("AWS::IAM::ManagedPolicy").items()
        if r["Properties"].get("ManagedPolicyName") == "esteira-dev-boundary"
    ]
    roles = dev.resources("AWS::IAM::Role")
    assert len(roles) >= 24  # 11 Lambdas, 6 task roles, state machine, flow logs, 3 CI, 2 custom-resource providers
    unbounded = [k for k, r in roles.items() if r["Properties"].get("PermissionsBoundary") != {"Ref": boundary_id}]
    assert not unbounded, f"roles without the boundary: {unbounded}"
    denies = dev.template["Resources"][boundary_id]["Properties"]["PolicyDocument"]["Statement"]
    sids = {s["Sid"] for s in denies if s["Effect"] == "Deny"}
    assert sids == {"NoRoleWithoutThisBoundary", "KeepBoundaries", "BoundaryIsFixed", "CiRolesAreFixed"}


def test_each_function_has_a_role_of_its_own_with_what_its_code_calls(dev: Synth) -> None:
    functions = [f["Properties"].get("FunctionName") for f in dev.resources("AWS::Lambda::Function").values()]
    functions = [f for f in functions if isinstance(f, str)]  # not the custom-resource providers
    assert len(functions) == 11
    roles = {}
    for name in functions:
        role_id, role = _role_of(dev, name.removeprefix("esteira-dev-"))
        assert role["Properties"]["RoleName"] == name
        roles[name] = role_id
    assert len(set(roles.values())) == len(functions), "functions share a role"
    vpc_policy = "service-role/AWSLambdaVPCAccessExecutionRole"
    smoke_id, smoke = _role_of(dev, "smoke-test")
    assert vpc_policy not in json.dumps(smoke["Properties"].get("ManagedPolicyArns", []))
    smoke_actions = _role_actions(dev.template, smoke_id)
    for action in ("ecs:UpdateService", "elasticloadbalancing:ModifyListener", "states:StartExecution"):
        assert action not in smoke_actions, action
    for name, role_id in roles.items():
        if name != "esteira-dev-smoke-test":
            assert vpc_policy in json.dumps(dev.template["Resources"][role_id]["Properties"]["ManagedPolicyArns"])
    # Only the canary moves traffic, only the trigger starts the workflow.
    movers = {n for n, r in roles.items() if "elasticloadbalancing:ModifyListener" in _role_actions(dev.template, r)}
    starters = {n for n, r in roles.items() if "states:StartExecution" in _role_actions(dev.template, r)}
    assert movers == {"esteira-dev-canary-check"} and starters == {"esteira-dev-retrain-trigger"}


def test_tagging_create_calls_may_tag(dev: Synth) -> None:
    for suffix in ("deploy", "canary-check"):
        role_id, _ = _role_of(dev, suffix)
        tags = [
            s
            for holder, s in statements(dev.template)
            if role_id in json.dumps(dev.template["Resources"][holder]["Properties"].get("Roles", []))
            and "ecs:TagResource" in as_list(s["Action"])
        ]
        assert tags and tags[0]["Condition"] == {"StringEquals": {"ecs:CreateAction": "RegisterTaskDefinition"}}
    canary_id, _ = _role_of(dev, "canary-check")
    assert {"cloudwatch:PutMetricAlarm", "cloudwatch:TagResource"} <= _role_actions(dev.template, canary_id)


def test_private_subnets_reach_every_api_they_call(dev: Synth) -> None:
    services = [resolve(e["Properties"]["ServiceName"]) for e in dev.resources("AWS::EC2::VPCEndpoint").values()]
    assert any(str(s).endswith(".elasticloadbalancing") for s in services), services
    (s3,) = [
        e
        for e in dev.resources("AWS::EC2::VPCEndpoint").values()
        if str(resolve(e["Properties"]["ServiceName"])).endswith("s3")
    ]
    layers = [st for st in s3["Properties"]["PolicyDocument"]["Statement"] if "starport" in json.dumps(st)]
    assert len(layers) == 1 and layers[0]["Action"] == "s3:GetObject" and layers[0]["Principal"] in ("*", {"AWS": "*"})


def test_the_sagemaker_job_runs_in_the_vpc(tmp_path_factory: Any) -> None:
    from .conftest import synthesise

    sagemaker = synthesise(tmp_path_factory.mktemp("cdk-sagemaker"), "dev", {"training_backend": "sagemaker"})
    machine = sagemaker.state_machine()
    document = json.loads(resolve(machine["Properties"]["DefinitionString"]))
    (job,) = [s for s in document["States"].values() if "createTrainingJob" in str(s.get("Resource", ""))]
    vpc_config = job["Parameters"]["VpcConfig"]
    assert len(string_split(vpc_config["Subnets.$"])) == 2 and len(string_split(vpc_config["SecurityGroupIds.$"])) == 1
    (role_id,) = [
        k
        for k, r in sagemaker.resources("AWS::IAM::Role").items()
        if r["Properties"].get("RoleName") == "esteira-dev-sagemaker-train"
    ]
    actions = _role_actions(sagemaker.template, role_id)
    assert {
        "ec2:CreateNetworkInterface",
        "ec2:CreateNetworkInterfacePermission",
        "ec2:DeleteNetworkInterface",
    } <= actions


# ---------------------------------------------------------------- MLflow authentication (modules/mlflow)


def _secrets(dev: Synth) -> dict[str, str]:
    """The MLflow auth secrets' logical ids by name suffix (workflow, reader, flask-secret-key)."""
    return {
        s["Properties"]["Name"].removeprefix("esteira-dev/mlflow/"): k
        for k, s in dev.resources("AWS::SecretsManager::Secret").items()
    }


def _secrets_readable_by(dev: Synth, role_id: str) -> set[str]:
    """Logical ids (or resolved ARNs) of the secrets a role's policies allow GetSecretValue on."""
    return {
        r[len("<Ref:") : -1] if str(r).startswith("<Ref:") else str(r)
        for holder, s in statements(dev.template)
        if s.get("Effect", "Allow") == "Allow"
        and role_id in json.dumps(dev.template["Resources"][holder]["Properties"].get("Roles", []))
        and "secretsmanager:GetSecretValue" in as_list(s["Action"])
        for r in as_list(resolve(s["Resource"]))
    }


def _role_id(dev: Synth, role_name: str) -> str:
    (role_id,) = [k for k, r in dev.resources("AWS::IAM::Role").items() if r["Properties"].get("RoleName") == role_name]
    return role_id


def _container(dev: Synth, family: str) -> dict[str, Any]:
    (task,) = [t for t in dev.resources("AWS::ECS::TaskDefinition").values() if t["Properties"]["Family"] == family]
    return task["Properties"]["ContainerDefinitions"][0]


def test_mlflow_credentials_are_generated_by_secrets_manager_under_the_stack_key(dev: Synth) -> None:
    secrets = _secrets(dev)
    assert set(secrets) == {"workflow", "reader", "flask-secret-key"}
    (key_id,) = dev.resources("AWS::KMS::Key")
    for name, logical_id in secrets.items():
        props = dev.template["Resources"][logical_id]["Properties"]
        assert resolve(props["KmsKeyId"]) == f"<GetAtt:{key_id}.Arn>", name
        assert "SecretString" not in props, f"{name}: a value in the template"
        generator = props["GenerateSecretString"]
        assert generator["ExcludePunctuation"] is True
        if name == "flask-secret-key":
            assert generator == {"ExcludePunctuation": True, "PasswordLength": 64}
        else:
            assert generator["PasswordLength"] == 40 and generator["GenerateStringKey"] == "password"
            assert json.loads(generator["SecretStringTemplate"]) == {"username": f"esteira-{name}"}
    # Who reads a secret decrypts with its own IAM policy; the key policy is Terraform's, unchanged.
    (key,) = dev.resources("AWS::KMS::Key").values()
    assert "secretsmanager" not in json.dumps(key["Properties"]["KeyPolicy"])


def test_each_mlflow_credential_is_readable_only_by_who_uses_it(dev: Synth) -> None:
    from esteira_cdk.workflow import FUNCTIONS, MLFLOW_CREDENTIALS_VARIABLE, MLFLOW_USERS

    secrets = _secrets(dev)
    for key in FUNCTIONS:
        _, fn = function_by_name(dev, key.replace("_", "-"))
        role_id, _ = _role_of(dev, key.replace("_", "-"))
        env = fn["Properties"]["Environment"]["Variables"]
        user = MLFLOW_USERS.get(key)
        if user is None:
            assert MLFLOW_CREDENTIALS_VARIABLE not in env, key
            assert _secrets_readable_by(dev, role_id) == set(), key
            continue
        assert resolve(env[MLFLOW_CREDENTIALS_VARIABLE]) == f"<Ref:{secrets[user]}>", key
        assert _secrets_readable_by(dev, role_id) == {secrets[user]}, key
        assert "kms:Decrypt" in _role_actions(dev.template, role_id), key
    assert set(MLFLOW_USERS.values()) == {"workflow", "reader"}
    # Only the workflow's user may move an alias: the reader is drift_check's, nothing else calling MLflow.
    assert [k for k, u in MLFLOW_USERS.items() if u == "reader"] == ["drift_check"]

    assert _secrets_readable_by(dev, _role_id(dev, "esteira-dev-serving-exec")) == {secrets["reader"]}
    assert _secrets_readable_by(dev, _role_id(dev, "esteira-dev-train-exec")) == {secrets["workflow"]}
    (db_id,) = dev.resources("AWS::RDS::DBInstance")
    assert _secrets_readable_by(dev, _role_id(dev, "esteira-dev-mlflow-exec")) == {
        *secrets.values(),
        f"<GetAtt:{db_id}.MasterUserSecret.SecretArn>",
    }
    for role_name in ("esteira-dev-serving-task", "esteira-dev-train-task", "esteira-dev-mlflow-task"):
        assert _secrets_readable_by(dev, _role_id(dev, role_name)) == set(), role_name


def test_containers_get_their_mlflow_user_as_ecs_secrets(dev: Synth) -> None:
    secrets = _secrets(dev)

    def injected(family: str) -> dict[str, str]:
        return {s["Name"]: resolve(s["ValueFrom"]) for s in _container(dev, family).get("Secrets", [])}

    def field(user: str, key: str) -> str:
        return f"<Ref:{secrets[user]}>:{key}::"

    assert injected("esteira-dev-serving") == {
        "MLFLOW_TRACKING_USERNAME": field("reader", "username"),
        "MLFLOW_TRACKING_PASSWORD": field("reader", "password"),
    }
    assert injected("esteira-dev-train") == {
        "MLFLOW_TRACKING_USERNAME": field("workflow", "username"),
        "MLFLOW_TRACKING_PASSWORD": field("workflow", "password"),
    }
    mlflow = injected("esteira-dev-mlflow")
    assert {k: v for k, v in mlflow.items() if k != "DB_PASSWORD"} == {
        "MLFLOW_AUTH_ADMIN_USERNAME": field("workflow", "username"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": field("workflow", "password"),
        "ESTEIRA_MLFLOW_READER_USERNAME": field("reader", "username"),
        "ESTEIRA_MLFLOW_READER_PASSWORD": field("reader", "password"),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": f"<Ref:{secrets['flask-secret-key']}>",
    }
    container = _container(dev, "esteira-dev-mlflow")
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["ESTEIRA_MLFLOW_DEFAULT_PERMISSION"] == "READ"
    (command,) = resolve(container["Command"])
    assert command.startswith("exec python /opt/esteira/mlflow_start.py ") and "mlflow server" not in command


def test_the_workflow_tells_training_jobs_the_workflow_credential(dev: Synth) -> None:
    secrets = _secrets(dev)
    machine = dev.state_machine()
    document = json.loads(resolve(machine["Properties"]["DefinitionString"]))
    environment = document["States"]["MergeInput"]["Parameters"]["training_image_environment"]
    assert environment["ESTEIRA_MLFLOW_CREDENTIALS_SECRET"] == f"<Ref:{secrets['workflow']}>"
    output = dev.template["Outputs"]["MlflowCredentialSecretArns"]["Value"]
    assert json.dumps(output).count("Ref") == 2 and secrets["workflow"] in json.dumps(output)


def test_the_sagemaker_job_reads_the_workflow_credential(tmp_path_factory: Any) -> None:
    from .conftest import synthesise

    sagemaker = synthesise(tmp_path_factory.mktemp("cdk-sagemaker-mlflow"), "dev", {"training_backend": "sagemaker"})
    secrets = _secrets(sagemaker)
    assert _secrets_readable_by(sagemaker, _role_id(sagemaker, "esteira-dev-sagemaker-train")) == {secrets["workflow"]}
