"""The stack `tofu apply` created, as the demo and the end-to-end suites drive it.

Nothing here defines a resource: every name and ARN is read from Terraform's outputs or from the
emulator, and the data planes run what the emulator holds (localaws.terraform says how the apply is
pointed at it). What this adds is what a person at a terminal would look up: where the load
balancer answers on this machine, which alarms the stack has, and a way to change one function's
environment as an operator would with `aws lambda update-function-configuration`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from localaws.server import LocalAWS
from localaws.terraform import StackApply


@dataclass
class AppliedStack:
    local: LocalAWS
    apply: StackApply
    cluster: str = ""
    service: str = ""
    buckets: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)  # the workflow's, as Terraform wrote it
    outputs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_apply(cls, local: LocalAWS, apply: StackApply) -> AppliedStack:
        """Read the applied stack back (the apply must have finished) and route its load balancers."""
        out = apply.outputs
        cluster, service = out["ecs_cluster_name"], out["serving_service_name"]
        local.expose_load_balancers(cluster)
        host = out["serving_url"].split("://", 1)[1].rstrip("/")
        alarms = [
            a["AlarmName"]
            for page in local.client("cloudwatch").get_paginator("describe_alarms").paginate(AlarmNamePrefix=cluster)
            for a in page["MetricAlarms"]
        ]
        functions = dict(out["lambda_function_names"])
        lam = local.client("lambda")
        return cls(
            local=local,
            apply=apply,
            cluster=cluster,
            service=service,
            buckets=dict(out["bucket_names"]),
            environment=dict(out["workflow_environment"]),
            outputs={
                "state_machine_arn": out["state_machine_arn"],
                "serving_url": local.routers[host].url,  # the ALB's DNS name, answered on this machine
                "alb_url": out["serving_url"],
                "functions": functions,
                "function_arns": {
                    k: lam.get_function(FunctionName=v)["Configuration"]["FunctionArn"] for k, v in functions.items()
                },
                "alarms": alarms,
            },
        )

    def alarm(self, suffix: str) -> str:
        """An alarm's name as the monitoring module writes it: `<name>-<suffix>`."""
        return f"{self.cluster}-{suffix}"

    def update_function_env(self, fn: str, **changes: str) -> None:
        """Change some of one function's environment variables, keeping the rest (an operator's edit)."""
        lam = self.local.client("lambda")
        name = self.outputs["functions"][fn]
        env = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": {**env, **changes}})
