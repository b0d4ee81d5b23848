"""ECS capacity providers over an Auto Scaling group, run as ECS runs them: moto stores them, no more.

A RunTask whose capacity provider strategy names such a provider (the EC2 training backend,
infra/terraform/modules/ec2_capacity) goes through what ECS and the host do in AWS:

1. ECS refuses a provider the cluster is not associated with and a task definition that is not
   EC2-compatible.
2. Managed scaling: when no registered host of the provider has room for the task, the group's
   desired capacity grows by one, up to its max_size; moto launches the instance from the launch
   template.
3. The host boots as the ECS-optimised AMI does. Its user data must name this cluster
   (`ECS_CLUSTER=<name>`, else the agent joins `default` and the task is never placed), and its
   instance profile's role must be allowed `ecs:RegisterContainerInstance` (checked when IAM is
   enforced). A volume under a customer managed key needs the key policy to let EC2 Auto Scaling's
   service-linked role create grants. The host registers with its instance type's CPU (1,024 units
   a vCPU) and 90 % of its memory, the headroom modules/ec2_capacity's plan-time check assumes.
4. moto places the task on the host, or RunTask fails naming what does not fit.

A host that runs no task is deregistered and the group scaled in on the plane's next pass
(`idle_seconds`; ECS managed scaling takes about 15 minutes in AWS), so an idle provider costs
nothing, as in AWS. The task itself runs like a Fargate one (localaws.ecs).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from typing import Any

from localaws.iam import Check, evaluate

# The fraction of an instance type's memory a host registers for tasks (see the module docstring).
MEMORY_FOR_TASKS = 0.9
FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")

# With IAM enforced (localaws.iam): authorise what a role does for a service; set by LocalAWS.
authorize_role: Callable[[str, str, list[Check]], None] | None = None


class CapacityError(Exception):
    """RunTask cannot place the task on the provider's hosts; the message says why."""


def ec2_provider(strategy: list[dict[str, Any]] | None) -> str | None:
    """The first capacity provider of a strategy that is not Fargate's, or None."""
    for item in strategy or []:
        name = str(item.get("capacityProvider", ""))
        if name and name not in FARGATE_PROVIDERS:
            return name
    return None


def _parameter_error(message: str) -> Exception:
    from moto.ecs.exceptions import InvalidParameterException

    return InvalidParameterException(message)


def _autoscaling(ecs_backend: Any) -> Any:
    from moto.autoscaling.models import autoscaling_backends

    return autoscaling_backends[ecs_backend.account_id][ecs_backend.region_name]


def _group(ecs_backend: Any, provider: Any) -> Any:
    arn = str(provider.auto_scaling_group_provider.get("autoScalingGroupArn", ""))
    name = arn.rsplit("autoScalingGroupName/", 1)[-1]
    groups = _autoscaling(ecs_backend).autoscaling_groups
    if name not in groups:
        raise _parameter_error(f"capacity provider {provider.name}: Auto Scaling group {arn} does not exist")
    return groups[name]


def _launch_data(group: Any) -> dict[str, Any]:
    template = group.ec2_launch_template
    if template is None:
        raise CapacityError(f"Auto Scaling group {group.name} has no launch template")
    return dict(template.get_version(group.launch_template_version).data)  # moto resolves $Latest/$Default


def _instance_size(instance_type: str) -> tuple[int, int, int]:
    """(CPU units, MiB registered for tasks, GPUs) of an instance type, from moto's EC2 data."""
    from moto.ec2.models.instance_types import INSTANCE_TYPES

    info = INSTANCE_TYPES.get(instance_type)
    if info is None:
        raise CapacityError(f"instance type {instance_type!r} is not an EC2 instance type")
    gpus = sum(int(g.get("Count", 0)) for g in (info.get("GpuInfo") or {}).get("Gpus", []))
    cpu = int(info["VCpuInfo"]["DefaultVCpus"]) * 1024
    return cpu, int(info["MemoryInfo"]["SizeInMiB"] * MEMORY_FOR_TASKS), gpus


def _boot(ecs_backend: Any, cluster: Any, group: Any, instance: Any, data: dict[str, Any]) -> Any:
    """What the ECS-optimised AMI does at boot (`data`: its launch template version): the agent reads
    ecs.config and registers the host."""
    raw = data.get("UserData") or ""
    encoded = raw.as_bytes() if hasattr(raw, "as_bytes") else str(raw).encode()  # moto's Base64EncodedString
    try:
        user_data = base64.b64decode(encoded).decode("utf-8", "replace")
    except ValueError:
        user_data = encoded.decode("utf-8", "replace")
    joined = re.findall(r"(?:^|[\s\"'])ECS_CLUSTER=([A-Za-z0-9_:/.-]+)", user_data, re.M)
    target = joined[-1] if joined else "default"
    if target not in (cluster.name, cluster.arn):
        raise CapacityError(
            f"host {instance.id} of {group.name} joined ECS cluster {target!r}, not {cluster.name!r}: its user "
            f"data must write ECS_CLUSTER={cluster.name} to /etc/ecs/ecs.config"
        )
    profile = (data.get("IamInstanceProfile") or {}).get("Arn") or (data.get("IamInstanceProfile") or {}).get("Name")
    if not profile:
        raise CapacityError(
            f"host {instance.id}: no instance profile in its launch template: the agent cannot register"
        )
    if authorize_role is not None:
        role_arn = _profile_role(ecs_backend, str(profile))
        try:
            authorize_role(role_arn, "ec2.amazonaws.com", [Check("ecs:RegisterContainerInstance", cluster.arn)])
        except Exception as exc:
            raise CapacityError(f"host {instance.id}: the ECS agent cannot register: {exc}") from exc
    _check_volume_keys(ecs_backend, data, instance.id)
    cpu, memory, gpus = _instance_size(str(data.get("InstanceType") or instance.instance_type))
    host = ecs_backend.register_container_instance(cluster.name, instance.id)
    for resources in (host.registered_resources, host.remaining_resources):
        for item in resources:
            if item["name"] == "CPU":
                item["integerValue"] = cpu
            elif item["name"] == "MEMORY":
                item["integerValue"] = memory
    host.localaws_gpus = gpus
    host.localaws_group = group.name
    host.localaws_idle_since = time.monotonic()
    return host


def _principals(statement: dict[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    if principal == "*":
        return ["*"]
    aws_ids = (principal or {}).get("AWS", []) if isinstance(principal, dict) else []
    return [aws_ids] if isinstance(aws_ids, str) else list(aws_ids)


def _check_volume_keys(ecs_backend: Any, data: dict[str, Any], instance_id: str) -> None:
    """AWS launches an instance with a volume under a customer managed key only when EC2 Auto Scaling's
    service-linked role may create a grant on it; the key policy must say so (an IAM policy cannot).
    Otherwise the instance is terminated at launch (Client.InternalError) and the task never runs."""
    from moto.kms.models import kms_backends

    account, region = ecs_backend.account_id, ecs_backend.region_name
    kms = kms_backends[account][region]
    role = f"arn:aws:iam::{account}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    for mapping in data.get("BlockDeviceMappings") or []:
        key_id = str((mapping.get("Ebs") or {}).get("KmsKeyId") or "")
        if not key_id:
            continue
        key = kms.describe_key(key_id)
        policy = json.loads(kms.get_key_policy(key.id) or "{}")
        statements = [st for st in policy.get("Statement", []) if any(p in ("*", role) for p in _principals(st))]
        context = (("aws:PrincipalArn", role), ("kms:GrantIsForAWSResource", "true"))
        decision, _ = evaluate([{"Statement": statements}], Check("kms:CreateGrant", key.arn, context))
        if decision != "Allow":
            raise CapacityError(
                f"host {instance_id}: EC2 Auto Scaling may not use KMS key {key.arn} for the volume "
                f"{mapping.get('DeviceName')}; the key policy must allow AWSServiceRoleForAutoScaling "
                "kms:CreateGrant (with kms:GrantIsForAWSResource), or AWS terminates the instance at launch"
            )


def _profile_role(ecs_backend: Any, profile: str) -> str:
    from moto.iam.models import iam_backends

    iam = iam_backends[ecs_backend.account_id]["global"]
    name = profile.rsplit("/", 1)[-1]
    for candidate in iam.instance_profiles.values():
        if candidate.name == name:
            if not candidate.roles:
                raise CapacityError(f"instance profile {name} has no role")
            return str(candidate.roles[0].arn)
    raise CapacityError(f"instance profile {profile} does not exist")


def _hosts(ecs_backend: Any, cluster: Any, group: Any) -> list[Any]:
    return [
        host
        for host in ecs_backend.container_instances.get(cluster.name, {}).values()
        if getattr(host, "localaws_group", None) == group.name and host.status == "ACTIVE"
    ]


def _fits(host: Any, needs: dict[str, Any], gpus: int) -> bool:
    remaining = {r["name"]: r.get("integerValue", 0) for r in host.remaining_resources}
    return remaining["CPU"] >= needs["CPU"] and remaining["MEMORY"] >= needs["MEMORY"] and host.localaws_gpus >= gpus


def _gpus(task_definition: Any) -> int:
    return sum(
        int(r.get("value", 0))
        for c in task_definition.container_definitions
        for r in c.get("resourceRequirements") or []
        if r.get("type") == "GPU"
    )


def prepare(ecs_backend: Any, cluster_str: str, task_definition: Any, provider_name: str) -> None:
    """Make room for one task on the provider's hosts as ECS and managed scaling would, or raise."""
    cluster = ecs_backend._get_cluster(cluster_str)
    if provider_name not in (cluster.capacity_providers or []):
        raise _parameter_error(
            f"The specified capacity provider strategy cannot contain a capacity provider that is not associated "
            f"with the cluster. Associate the capacity provider with the cluster or specify a valid capacity "
            f"provider and try again. ({provider_name} on {cluster.name})"
        )
    provider = ecs_backend.capacity_providers.get(provider_name)
    if provider is None:
        raise _parameter_error(f"capacity provider {provider_name} does not exist")
    if "EC2" not in (task_definition.requires_compatibilities or ["EC2"]):
        raise _parameter_error(
            f"Task definition {task_definition.family}:{task_definition.revision} does not support the EC2 "
            f"launch type (requiresCompatibilities {task_definition.requires_compatibilities}), which capacity "
            f"provider {provider_name} places on"
        )
    group = _group(ecs_backend, provider)
    needs = ecs_backend._calculate_task_resource_requirements(task_definition)
    gpus = _gpus(task_definition)
    if any(_fits(host, needs, gpus) for host in _hosts(ecs_backend, cluster, group)):
        return
    data = _launch_data(group)
    cpu, memory, host_gpus = _instance_size(str(data.get("InstanceType") or ""))
    if needs["CPU"] > cpu or needs["MEMORY"] > memory or gpus > host_gpus:
        raise CapacityError(
            f"RESOURCE: the task (cpu {needs['CPU']}, memory {needs['MEMORY']} MiB, {gpus} GPU) never fits a "
            f"{data.get('InstanceType')} host of {group.name} (cpu {cpu}, memory {memory} MiB for tasks, "
            f"{host_gpus} GPU); in AWS it would wait in PROVISIONING"
        )
    if (provider.auto_scaling_group_provider.get("managedScaling") or {}).get("status") != "ENABLED":
        raise CapacityError(f"RESOURCE: no host of {group.name} has room; managed scaling is off for {provider_name}")
    before = {state.instance.id for state in group.instance_states}
    desired = int(group.desired_capacity or 0) + 1
    if desired > int(group.max_size):
        raise CapacityError(f"RESOURCE: {group.name} is at its max_size ({group.max_size}); the task waits for a host")
    _autoscaling(ecs_backend).set_desired_capacity(group.name, desired)
    for state in group.instance_states:
        if state.instance.id not in before:
            state.protected_from_scale_in = True  # managed termination protection
            _boot(ecs_backend, cluster, group, state.instance, data)


def scale_in_idle(ecs_backend: Any, idle_seconds: float) -> list[str]:
    """Deregister hosts that ran no task for idle_seconds and shrink their groups; the instance ids."""
    removed: list[str] = []
    now = time.monotonic()
    for cluster_name, hosts in list(ecs_backend.container_instances.items()):
        for host in list(hosts.values()):
            group_name = getattr(host, "localaws_group", None)
            if group_name is None:
                continue
            busy = any(
                t.container_instance_arn == host.container_instance_arn and t.last_status != "STOPPED"
                for t in ecs_backend.tasks.get(cluster_name, {}).values()
            )
            if busy:
                host.localaws_idle_since = now
                continue
            if now - host.localaws_idle_since < idle_seconds:
                continue
            ecs_backend.deregister_container_instance(cluster_name, host.container_instance_arn, force=True)
            autoscaling = _autoscaling(ecs_backend)
            group = autoscaling.autoscaling_groups.get(group_name)
            if group is not None:
                for state in group.instance_states:
                    if state.instance.id == host.ec2_instance_id:
                        state.protected_from_scale_in = False  # ECS lifts the protection of an idle host
                autoscaling.set_desired_capacity(group_name, max(0, int(group.desired_capacity or 0) - 1))
            removed.append(host.ec2_instance_id)
    return removed
