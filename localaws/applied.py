"""The stack `tofu apply` created, as the demo and the end-to-end suites drive it.

Nothing here defines a resource: every name and ARN is read from Terraform's outputs or from the
emulator, and the data planes run what the emulator holds (localaws.terraform says how the apply is
pointed at it). What this adds is what a person at a terminal would look up: where the load
balancer answers on this machine, which alarms the stack has, the messages on the workflow's topic
(through an SQS queue subscribed to it, as an operator would), and a way to change one function's
environment as an operator would with `aws lambda update-function-configuration`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localaws.server import LocalAWS
from localaws.terraform import StackApply, require_toolchain

# The names dev.tfvars gives MLflow's ECS service (modules/mlflow). Bound to this machine's MLflow
# before the apply creates the service, because its RDS database has no local data plane.
MLFLOW_CLUSTER, MLFLOW_SERVICE = "esteira-dev", "esteira-mlflow"
# dev.tfvars' region; the emulated account is moto's.
REGION = "us-east-1"
# Terraform variable of each image the local runs deploy from a built image: the serving and training
# tasks run from their images. Functions run in the emulator's own Lambda runtime (localaws.lambdas;
# tests/images runs the Lambda image through the runtime interface), MLflow outside the emulator.
IMAGE_VARIABLES = {"serving": "serving_image_uri", "training": "training_image_uri"}


def image_variables(names: tuple[str, ...] = tuple(IMAGE_VARIABLES)) -> dict[str, str]:
    """The `-var`s deploy.yml would pass for images built here: each one built (or reused) by oci.build,
    "pushed" to the emulated account's ECR repository and pinned by digest. Empty without OCI tools, and
    then the embedded ECS runs those tasks as processes (EcsPlane.modes says which way each ran)."""
    from moto.core import DEFAULT_ACCOUNT_ID

    from oci import build

    if build.missing_tools():
        return {}
    out = {}
    for name in names:
        build.ensure(name)
        repository = f"{DEFAULT_ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/{MLFLOW_CLUSTER}/{name}"
        ref = build.publish_local(name, repository)
        if ref:
            out[IMAGE_VARIABLES[name]] = ref
    return out


@dataclass
class AppliedStack:
    local: LocalAWS
    apply: StackApply
    cluster: str = ""
    service: str = ""
    buckets: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)  # the workflow's, as Terraform wrote it
    outputs: dict[str, Any] = field(default_factory=dict)
    queue_url: str = ""  # an SQS queue subscribed to the workflow's SNS topic

    def mlflow_credential(self, user: str = "workflow") -> dict[str, str]:
        """MLFLOW_TRACKING_USERNAME/PASSWORD of one of the stack's MLflow users, read from its secret with
        administrator keys, as an operator does (`aws secretsmanager get-secret-value`)."""
        arn = self.outputs["mlflow_credential_secret_arns"][user]
        value = json.loads(self.local.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])
        return {"MLFLOW_TRACKING_USERNAME": value["username"], "MLFLOW_TRACKING_PASSWORD": value["password"]}

    @classmethod
    def from_apply(cls, local: LocalAWS, apply: StackApply) -> AppliedStack:
        """Read the applied stack back (the apply must have finished) and route its load balancers."""
        out = apply.outputs
        cluster, service = out["ecs_cluster_name"], out["serving_service_name"]
        local.expose_load_balancers(cluster)
        alarms = [
            a["AlarmName"]
            for page in local.client("cloudwatch").get_paginator("describe_alarms").paginate(AlarmNamePrefix=cluster)
            for a in page["MetricAlarms"]
        ]
        functions = dict(out["lambda_function_names"])
        lam = local.client("lambda")
        env = dict(out["workflow_environment"])
        stack = cls(
            local=local,
            apply=apply,
            cluster=cluster,
            service=service,
            buckets=dict(out["bucket_names"]),
            environment=env,
            outputs={
                "state_machine_arn": out["state_machine_arn"],
                "serving_url": local.routers[_host(out["serving_url"])].url,  # the ALB's name, answered here
                "alb_url": out["serving_url"],
                "functions": functions,
                "function_arns": {
                    k: lam.get_function(FunctionName=v)["Configuration"]["FunctionArn"] for k, v in functions.items()
                },
                "alarms": alarms,
                "topic_arn": out["sns_topic_arn"],
                "mlflow_credential_secret_arns": dict(out["mlflow_credential_secret_arns"]),
                "lock_table": env["ESTEIRA_LOCK_TABLE"],
                "listener_arn": env["ESTEIRA_LISTENER_ARN"],
                "target_groups": {
                    "stable": env["ESTEIRA_STABLE_TARGET_GROUP_ARN"],
                    "canary": env["ESTEIRA_CANARY_TARGET_GROUP_ARN"],
                },
                "canary_service": env["ESTEIRA_CANARY_SERVICE"],
            },
        )
        stack.queue_url = stack._subscribe_queue()
        return stack

    @property
    def router(self) -> Any:
        """The load balancer as this machine answers it (requests served per ECS service in `served`)."""
        return self.local.routers[_host(self.outputs["alb_url"])]

    def _subscribe_queue(self) -> str:
        sqs = self.local.client("sqs")
        url = sqs.create_queue(QueueName=f"{self.cluster}-notifications-reader")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.local.client("sns").subscribe(TopicArn=self.outputs["topic_arn"], Protocol="sqs", Endpoint=arn)
        return str(url)

    def alarm(self, suffix: str) -> str:
        """An alarm's name as the monitoring module writes it: `<name>-<suffix>`."""
        return f"{self.cluster}-{suffix}"

    def update_function_env(self, fn: str, **changes: str) -> None:
        """Change some of one function's environment variables, keeping the rest (an operator's edit)."""
        lam = self.local.client("lambda")
        name = self.outputs["functions"][fn]
        env = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": {**env, **changes}})

    def notifications(self) -> list[dict[str, Any]]:
        """Messages published to the workflow topic since the last call, oldest first."""
        sqs = self.local.client("sqs")
        out: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            msgs = got.get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                out.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])


def _host(url: str) -> str:
    return url.split("://", 1)[1].rstrip("/")


@contextmanager
def applied_stack(
    workdir: Path,
    mlflow_uri: str,
    *,
    variables: dict[str, str] | None = None,
    on_mlflow_start: Callable[[dict[str, str]], None] | None = None,
) -> Iterator[AppliedStack]:
    """A fresh embedded AWS with `tofu apply` of infra/terraform + dev.tfvars on it, for a suite.

    `variables` are the user's own `-var` settings (for example `training_backend=sagemaker`), never a
    switch that exists for the emulator. `on_mlflow_start` receives the MLflow task's secrets when its
    service starts (MlflowServer.take_secrets: the server's users become the stack's). The emulator,
    the apply and its routers stop on exit."""
    tools = require_toolchain()
    # IAM is enforced as in AWS: the apply and the suite's driver use administrator keys, everything the
    # stack runs uses its own role (localaws.iam).
    with LocalAWS(workdir=workdir / "localaws", enforce_iam=True) as aws:
        assert aws.ecs is not None
        aws.ecs.bind_external(MLFLOW_CLUSTER, MLFLOW_SERVICE, mlflow_uri, on_start=on_mlflow_start)
        apply = StackApply(aws.endpoint_url, workdir, *tools, variables=dict(variables or {})).start()
        try:
            apply.join()
            yield AppliedStack.from_apply(aws, apply)
        finally:
            apply.stop()
            record_iam_usage(aws, f"{workdir.name}-{os.getpid()}")


def record_iam_usage(aws: LocalAWS, run: str) -> None:
    """Keep what each role was allowed and refused (docs/security.md is built from these records) and
    fail the run on any AccessDenied: in AWS it would have failed the same way."""
    report = aws.iam_report()
    out = Path(os.environ.get("ESTEIRA_IAM_USAGE_DIR", "reports/iam-usage"))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{run}.json").write_text(json.dumps(report, indent=1, sort_keys=True))
    denied = {role: r["denied"] for role, r in report.items() if r["denied"]}
    if denied:
        raise AssertionError(f"AccessDenied during the run (as AWS would refuse): {json.dumps(denied, indent=1)}")
