"""Deploy the workflow onto a LocalAWS the way infra/terraform/modules/workflow does in AWS.

Same template (stepfunctions/train_evaluate_deploy.asl.json, filled like Terraform's templatefile),
same Lambda names and image commands (`lambdas.<name>.handler`), same environment variable names,
a lock table with hash key `lock_id`, an SNS topic, an ECS cluster with a training task definition
and a serving service. What differs is only what cannot exist here: the container image (local
tasks run the container's command from this checkout) and the network (placeholder VPC/subnet).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localaws.server import LocalAWS

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "stepfunctions" / "train_evaluate_deploy.asl.json"
FUNCTIONS = (
    "lock",
    "validate_data",
    "evaluate",
    "promote",
    "deploy",
    "service_stable",
    "smoke_test",
    "rollback",
    "canary_check",
)
_VAR = re.compile(r"(\$\$\{)|\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")


def render(template: str, variables: dict[str, str]) -> str:
    """Terraform templatefile() for plain `${name}` interpolations: unknown names are errors, `$${` escapes."""
    if "%{" in template:
        raise ValueError("template directives (%{...}) are not supported by this renderer")
    missing: set[str] = set()

    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return "${"
        name = m.group(2)
        if name not in variables:
            missing.add(name)
            return ""
        return str(variables[name])

    out = _VAR.sub(sub, template)
    if missing:
        raise KeyError(f"template variables not provided: {sorted(missing)}")
    return out


@dataclass
class WorkflowStack:
    local: LocalAWS
    name: str = "esteira"
    training_backend: str = "ecs"
    # Environment every Lambda and task gets (MLFLOW_TRACKING_URI, ESTEIRA_MODEL_NAME, ...).
    environment: dict[str, str] = field(default_factory=dict)
    train_command: list[str] = field(default_factory=lambda: ["esteira", "train"])
    serving_command: list[str] = field(default_factory=lambda: ["python", "-m", "model.serving"])
    serving_port: int = 8080
    # Bucket names by role (data, artifacts, capture). Empty: "<name>-<role>", created here. Given (e.g.
    # from `tofu apply` of the storage module): used as they are, and created only if missing.
    buckets: dict[str, str] = field(default_factory=dict)
    # Release strategy defaults (Terraform variables of the same names); the execution input overrides them.
    deployment_strategy: str = "all_at_once"
    canary_steps: list[int] = field(default_factory=lambda: [10, 50, 100])
    canary_bake_seconds: int = 60
    shadow_seconds: int = 60
    outputs: dict[str, Any] = field(default_factory=dict)
    router: Any = None

    @property
    def cluster(self) -> str:
        return self.name

    @property
    def service(self) -> str:
        return f"{self.name}-serving"

    def ensure_buckets(self) -> dict[str, str]:
        """The data, artifacts and capture buckets (created if missing; names from `buckets` or the stack
        name). Public so that a caller can seed data before `deploy()`, as the demo does."""
        s3 = self.local.client("s3")
        names = {role: self.buckets.get(role) or f"{self.name}-{role}" for role in ("data", "artifacts", "capture")}
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        for bucket in names.values():
            if bucket not in existing:
                s3.create_bucket(Bucket=bucket)
        self.buckets = names
        return names

    @property
    def canary_service(self) -> str:
        return f"{self.name}-serving-canary"

    @property
    def canary_host(self) -> str:
        """The canary service's Cloud Map name (modules/serving: canary.<name>.internal)."""
        return f"canary.{self.name}.internal"

    def deploy(self, initial_model_uri: str = "") -> WorkflowStack:
        aws = self.local
        buckets = self.ensure_buckets()
        iam = aws.client("iam")
        trust = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "lambda.amazonaws.com"}}
                ],
            }
        )
        role = iam.create_role(RoleName=f"{self.name}-workflow", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        ec2 = aws.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24", AvailabilityZone=f"{aws.region}a")["Subnet"][
            "SubnetId"
        ]
        subnet_b = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.2.0/24", AvailabilityZone=f"{aws.region}b")["Subnet"][
            "SubnetId"
        ]
        sg = ec2.create_security_group(GroupName=f"{self.name}-workflow", Description="workflow", VpcId=vpc)["GroupId"]
        topic = aws.client("sns").create_topic(Name=f"{self.name}-workflow")["TopicArn"]
        sqs = aws.client("sqs")
        queue = sqs.create_queue(QueueName=f"{self.name}-notifications")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        aws.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        lock_table = f"{self.name}-workflow-lock"
        aws.client("dynamodb").create_table(
            TableName=lock_table,
            KeySchema=[{"AttributeName": "lock_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "lock_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ecs = aws.client("ecs")
        cluster_arn = ecs.create_cluster(clusterName=self.cluster)["cluster"]["clusterArn"]
        env_list = [{"name": k, "value": v} for k, v in sorted(self.environment.items())]
        train_td = ecs.register_task_definition(
            family=f"{self.name}-train",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="1024",
            memory="4096",
            containerDefinitions=[
                {
                    "name": "train",
                    "image": "esteira-training:local",
                    "essential": True,
                    "command": self.train_command,
                    "environment": env_list,
                }
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        # The shadow route of modules/serving: the canary service's Cloud Map name, on every serving task.
        serving_env = [
            *env_list,
            {"name": "PORT", "value": str(self.serving_port)},
            {"name": "SHADOW_URL", "value": f"http://{self.canary_host}:{self.serving_port}"},
        ]
        if initial_model_uri:
            serving_env.append({"name": "MODEL_URI", "value": initial_model_uri})
        serving_td = ecs.register_task_definition(
            family=f"{self.name}-serving",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="1024",
            memory="2048",
            containerDefinitions=[
                {
                    "name": "serving",
                    "image": "esteira-serving:local",
                    "essential": True,
                    "command": self.serving_command,
                    "environment": serving_env,
                    "portMappings": [{"containerPort": self.serving_port, "protocol": "tcp"}],
                }
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        # The ALB of modules/serving: stable and canary target groups behind one weighted forward action.
        elb = aws.client("elbv2")
        alb = elb.create_load_balancer(Name=f"{self.name}-serving", Subnets=[subnet, subnet_b])["LoadBalancers"][0]
        tgs = {
            group: elb.create_target_group(
                Name=f"{self.name}-{group}", Protocol="HTTP", Port=self.serving_port, VpcId=vpc, TargetType="ip"
            )["TargetGroups"][0]["TargetGroupArn"]
            for group in ("stable", "canary")
        }
        forward = {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [
                    {"TargetGroupArn": tgs["stable"], "Weight": 100},
                    {"TargetGroupArn": tgs["canary"], "Weight": 0},
                ]
            },
        }
        listener = elb.create_listener(
            LoadBalancerArn=alb["LoadBalancerArn"], Protocol="HTTP", Port=80, DefaultActions=[forward]
        )["Listeners"][0]["ListenerArn"]
        assert aws.ecs is not None
        aws.ecs.register_name(self.canary_host, self.cluster, self.canary_service)
        for service, group, count in ((self.service, "stable", 1), (self.canary_service, "canary", 0)):
            ecs.create_service(
                cluster=self.cluster,
                serviceName=service,
                taskDefinition=serving_td,
                desiredCount=count,
                launchType="FARGATE",
                networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [sg]}},
                loadBalancers=[
                    {"targetGroupArn": tgs[group], "containerName": "serving", "containerPort": self.serving_port}
                ],
            )
        from localaws.router import WeightedRouter

        self.router = WeightedRouter(aws, listener, self.cluster).start()
        aws._undo.append(self.router.stop)  # stopped with the emulator
        serving_url = self.router.url
        lambda_env = {
            **self.environment,
            "ESTEIRA_ECS_CLUSTER": self.cluster,
            "ESTEIRA_ECS_SERVICE": self.service,
            "ESTEIRA_SERVING_URL": serving_url,
            "ESTEIRA_SNS_TOPIC_ARN": topic,
            "ESTEIRA_LOCK_TABLE": lock_table,
            "ESTEIRA_CANARY_SERVICE": self.canary_service,
            "ESTEIRA_LISTENER_ARN": listener,
            "ESTEIRA_STABLE_TARGET_GROUP_ARN": tgs["stable"],
            "ESTEIRA_CANARY_TARGET_GROUP_ARN": tgs["canary"],
            "ESTEIRA_CANARY_ALARM_PREFIX": f"{self.name}-canary",
            **{k: v for k, v in self.environment.items() if k.startswith("ESTEIRA_CANARY_")},
        }
        lam = aws.client("lambda")
        arns = {}
        for fn in FUNCTIONS:
            arns[fn] = lam.create_function(
                FunctionName=f"{self.name}-{fn.replace('_', '-')}",
                Role=role,
                PackageType="Image",
                Code={"ImageUri": f"123456789012.dkr.ecr.{aws.region}.amazonaws.com/esteira-lambda:local"},
                ImageConfig={"Command": [f"lambdas.{fn}.handler"]},
                Timeout=900,
                MemorySize=3008,
                Environment={"Variables": lambda_env},
            )["FunctionArn"]
        variables = {f"{k}_function_arn": v for k, v in arns.items()} | {
            "sns_topic_arn": topic,
            "ecs_cluster_arn": cluster_arn,
            "train_task_definition_arn": train_td,
            "train_container_name": "train",
            "train_subnets": json.dumps([subnet]),
            "train_security_groups": json.dumps([sg]),
            "training_backend": self.training_backend,
            "sagemaker_role_arn": role,
            "training_image_uri": "esteira-training:local",
            "lock_table_name": lock_table,
            "data_bucket": buckets["data"],
            "artifacts_bucket": buckets["artifacts"],
            "deployment_strategy": self.deployment_strategy,
            "canary_steps": json.dumps(self.canary_steps),
            "canary_bake_seconds": str(self.canary_bake_seconds),
            "shadow_seconds": str(self.shadow_seconds),
        }
        definition = render(TEMPLATE.read_text(), variables)
        sm = aws.client("stepfunctions").create_state_machine(
            name=f"{self.name}-train-evaluate-deploy", definition=definition, roleArn=role
        )["stateMachineArn"]
        self.outputs = {
            "state_machine_arn": sm,
            "functions": {fn: f"{self.name}-{fn.replace('_', '-')}" for fn in FUNCTIONS},
            "function_arns": arns,
            "topic_arn": topic,
            "queue_url": queue,
            "lock_table": lock_table,
            "cluster_arn": cluster_arn,
            "serving_url": serving_url,
            "serving_task_definition": serving_td,
            "train_task_definition": train_td,
            "lambda_env": lambda_env,
            "buckets": buckets,
            "role_arn": role,
            "listener_arn": listener,
            "target_groups": tgs,
            "canary_service": self.canary_service,
        }
        return self

    def deploy_monitoring(
        self,
        *,
        drift_schedule: str = "rate(1 minute)",
        cooldown_seconds: int = 3600,
        alarm_period: int = 60,
        drift_periods: int = 1,
        low_confidence_threshold: float = 0.3,
        p99_latency_ms: float = 500.0,
        drift_env: dict[str, str] | None = None,
    ) -> WorkflowStack:
        """The model-health half of infra/terraform/modules/monitoring: the drift-check and retrain-trigger
        Lambdas, the alarms, the alarm -> retrain rule and the drift-check schedule.

        Same names, metrics and thresholds as Terraform, with periods short enough for a demo. The
        service alarms read the service's own EMF metrics (LatencyP99, Http5xx), because there is no
        ALB here to publish TargetResponseTime; in AWS they read the ALB's."""
        assert self.outputs, "deploy() first"
        aws = self.local
        lam, events, cw = aws.client("lambda"), aws.client("events"), aws.client("cloudwatch")
        service_name = self.environment.get("SERVICE_NAME", "esteira-serving")
        env = {
            **self.outputs["lambda_env"],
            "CAPTURE_S3_URI": f"s3://{self.buckets['capture']}/capture/",
            "ESTEIRA_ARTIFACTS_BUCKET": self.buckets["artifacts"],
            "ESTEIRA_STATE_MACHINE_ARN": self.outputs["state_machine_arn"],
            "ESTEIRA_RETRAIN_COOLDOWN_SECONDS": str(cooldown_seconds),
            "ESTEIRA_RETRAIN_ALARM_PREFIX": f"{self.name}-model-",
            "SERVICE_NAME": service_name,
            **(drift_env or {}),
        }
        arns = {}
        for fn in ("drift_check", "retrain_trigger"):
            name = f"{self.name}-{fn.replace('_', '-')}"
            arns[fn] = lam.create_function(
                FunctionName=name,
                Role=self.outputs["role_arn"],
                PackageType="Image",
                Code={"ImageUri": f"123456789012.dkr.ecr.{aws.region}.amazonaws.com/esteira-lambda:local"},
                ImageConfig={"Command": [f"lambdas.{fn}.handler"]},
                Timeout=300,
                MemorySize=1024,
                Environment={"Variables": env},
            )["FunctionArn"]
            self.outputs["functions"][fn] = name
            self.outputs["function_arns"][fn] = arns[fn]
        dims = [{"Name": "Service", "Value": service_name}]
        alarms = {
            f"{self.name}-model-drift": dict(
                MetricName="DriftScore",
                Statistic="Maximum",
                EvaluationPeriods=drift_periods,
                DatapointsToAlarm=drift_periods,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
                Threshold=1.0,
            ),
            f"{self.name}-model-low-confidence": dict(
                MetricName="LowConfidenceRate",
                Statistic="Average",
                EvaluationPeriods=3,
                DatapointsToAlarm=2,
                ComparisonOperator="GreaterThanThreshold",
                Threshold=low_confidence_threshold,
            ),
            f"{self.name}-service-p99-latency": dict(
                MetricName="LatencyP99",
                Statistic="Maximum",
                EvaluationPeriods=3,
                DatapointsToAlarm=2,
                ComparisonOperator="GreaterThanThreshold",
                Threshold=p99_latency_ms,
            ),
            f"{self.name}-service-5xx": dict(
                MetricName="Http5xx",
                Statistic="Sum",
                EvaluationPeriods=1,
                ComparisonOperator="GreaterThanThreshold",
                Threshold=0.0,
            ),
        }
        for alarm_name, spec in alarms.items():
            cw.put_metric_alarm(
                AlarmName=alarm_name,
                Namespace="Esteira",
                Dimensions=dims,
                # The emulator divides periods by its time scale (alarms.py); this keeps alarm_period real.
                Period=int(alarm_period * aws.time_scale),
                TreatMissingData="notBreaching",
                **spec,
            )
        model_alarms = [
            cw.describe_alarms(AlarmNames=[n])["MetricAlarms"][0]["AlarmArn"] for n in alarms if "-model-" in n
        ]
        pattern = {
            "source": ["aws.cloudwatch"],
            "detail-type": ["CloudWatch Alarm State Change"],
            "resources": model_alarms,
            "detail": {"state": {"value": ["ALARM"]}},
        }
        events.put_rule(Name=f"{self.name}-model-health-alarm", EventPattern=json.dumps(pattern))
        events.put_targets(
            Rule=f"{self.name}-model-health-alarm", Targets=[{"Id": "retrain-trigger", "Arn": arns["retrain_trigger"]}]
        )
        events.put_rule(Name=f"{self.name}-drift-check", ScheduleExpression=drift_schedule)
        events.put_targets(Rule=f"{self.name}-drift-check", Targets=[{"Id": "drift-check", "Arn": arns["drift_check"]}])
        self.outputs["alarms"] = list(alarms)
        self.outputs["monitoring_env"] = env
        return self

    def update_function_env(self, fn: str, **changes: str) -> None:
        lam = self.local.client("lambda")
        name = self.outputs["functions"][fn]
        env = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": {**env, **changes}})

    def notifications(self) -> list[dict[str, Any]]:
        """Messages published to the workflow topic (through its SQS subscription), oldest first."""
        sqs = self.local.client("sqs")
        out: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(QueueUrl=self.outputs["queue_url"], MaxNumberOfMessages=10, WaitTimeSeconds=0)
            msgs = got.get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                out.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=self.outputs["queue_url"], ReceiptHandle=m["ReceiptHandle"])
