"""Terraform resource types -> CloudFormation resource types, and the comparison the parity test runs.

The mapping is a fact table (what CloudFormation calls the same thing). Where a Terraform resource
is a *property* of another CloudFormation resource (S3 bucket sub-resources, ECR lifecycle, event
targets, policy attachments), or CloudFormation needs a resource Terraform does not, the difference
must be listed with a reason in infra/cdk/parity_exceptions.yaml; anything else fails the test.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

TF_TO_CFN: dict[str, str] = {
    "aws_appautoscaling_policy": "AWS::ApplicationAutoScaling::ScalingPolicy",
    "aws_appautoscaling_target": "AWS::ApplicationAutoScaling::ScalableTarget",
    "aws_autoscaling_group": "AWS::AutoScaling::AutoScalingGroup",
    "aws_codebuild_project": "AWS::CodeBuild::Project",
    "aws_codepipeline": "AWS::CodePipeline::Pipeline",
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
    "aws_ecs_capacity_provider": "AWS::ECS::CapacityProvider",
    "aws_ecs_cluster_capacity_providers": "AWS::ECS::ClusterCapacityProviderAssociations",
    "aws_ecs_service": "AWS::ECS::Service",
    "aws_ecs_task_definition": "AWS::ECS::TaskDefinition",
    "aws_eip": "AWS::EC2::EIP",
    "aws_flow_log": "AWS::EC2::FlowLog",
    "aws_iam_instance_profile": "AWS::IAM::InstanceProfile",
    "aws_iam_openid_connect_provider": "AWS::IAM::OIDCProvider",
    "aws_iam_policy": "AWS::IAM::ManagedPolicy",
    "aws_iam_role": "AWS::IAM::Role",
    "aws_iam_role_policy": "AWS::IAM::Policy",
    "aws_internet_gateway": "AWS::EC2::InternetGateway",
    "aws_kms_alias": "AWS::KMS::Alias",
    "aws_kms_key": "AWS::KMS::Key",
    "aws_lambda_function": "AWS::Lambda::Function",
    "aws_lambda_permission": "AWS::Lambda::Permission",
    "aws_launch_template": "AWS::EC2::LaunchTemplate",
    "aws_lb": "AWS::ElasticLoadBalancingV2::LoadBalancer",
    "aws_lb_listener": "AWS::ElasticLoadBalancingV2::Listener",
    "aws_lb_target_group": "AWS::ElasticLoadBalancingV2::TargetGroup",
    "aws_nat_gateway": "AWS::EC2::NatGateway",
    "aws_route": "AWS::EC2::Route",
    "aws_route_table": "AWS::EC2::RouteTable",
    "aws_route_table_association": "AWS::EC2::SubnetRouteTableAssociation",
    "aws_s3_bucket": "AWS::S3::Bucket",
    "aws_s3_bucket_policy": "AWS::S3::BucketPolicy",
    "aws_secretsmanager_secret": "AWS::SecretsManager::Secret",
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


SECTIONS = ("terraform_only", "cloudformation_only", "count_differences", "details", "iam")
# The comparison with the optional parts on (ec2_training, delivery = codepipeline): its extra entries.
WITH_OPTIONS = "with_options"


def load_exceptions(path: Path) -> dict[str, Any]:
    """Read the allow-list and insist on a reason for every entry (an unexplained exception is a defect).

    The `with_options` section holds the same sections again, for the comparison with every optional
    part switched on; with_options() merges it over the rest.
    """
    data = yaml.safe_load(path.read_text()) or {}
    options = data.pop(WITH_OPTIONS, None) or {}
    unknown = sorted(set(data) - set(SECTIONS)) + [f"{WITH_OPTIONS}.{k}" for k in sorted(set(options) - set(SECTIONS))]
    if unknown:
        raise ValueError(f"unknown section(s) {', '.join(unknown)}")
    checked = _checked(data)
    checked[WITH_OPTIONS] = _checked(options, prefix=f"{WITH_OPTIONS}.")
    return checked


def with_options(exceptions: Mapping[str, Any]) -> dict[str, Any]:
    """The allow-list of the comparison with the optional parts on: the base entries, then `with_options`
    (a type's count delta is replaced; a role's lists are added to, with the option's reason)."""
    options = exceptions.get(WITH_OPTIONS) or {section: {} for section in SECTIONS}
    merged: dict[str, Any] = {section: {**exceptions[section], **options[section]} for section in SECTIONS}
    merged["iam"] = {name: dict(entry) for name, entry in exceptions["iam"].items()}
    for name, entry in options["iam"].items():
        base = merged["iam"].get(name, {})
        combined: dict[str, Any] = {"reason": entry["reason"]}
        for key in (set(base) | set(entry)) - {"reason"}:
            combined[key] = sorted({*base.get(key, []), *entry.get(key, [])})
        merged["iam"][name] = combined
    return merged


def _checked(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    for section in SECTIONS:
        data[section] = data.get(section) or {}
    problems = []
    for section in ("terraform_only", "cloudformation_only", "details"):
        for key, reason in data[section].items():
            if not isinstance(reason, str) or len(reason.strip()) < 10:
                problems.append(f"{prefix}{section}.{key}: needs a reason")
    for key, entry in data["count_differences"].items():
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("delta"), int)
            or len(str(entry.get("reason", ""))) < 10
        ):
            problems.append(
                f"{prefix}count_differences.{key}: needs an integer delta (CloudFormation minus Terraform) and a reason"
            )
    lists = {
        f"{side}_{field}" for side in ("terraform_only", "cloudformation_only") for field in ("actions", "managed")
    }
    for role, entry in data["iam"].items():
        if not isinstance(entry, dict) or len(str(entry.get("reason", ""))) < 10:
            problems.append(f"{prefix}iam.{role}: needs a reason")
        elif set(entry) - lists - {"reason"} or not all(isinstance(entry[k], list) for k in set(entry) & lists):
            problems.append(f"{prefix}iam.{role}: only a reason and lists named {sorted(lists)}")
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


# ---- beyond resource types: the names and settings both paths must agree on
#
# Terraform: the plan (`tofu show -json`), planned values where they are known. What holds an ARN is
# unknown until apply (a Lambda's environment, most policy documents, some alarm dimensions); there
# the plan still has the configuration (which role a policy is attached to, which policy document it
# is), the documents' actions, and the root output lambda_environment_names (the variable names).
# Unknown values are not compared. CDK: the synthesised template, where it holds literal strings.

PARTITION_REF = "<Ref:AWS::Partition>"
Detail = dict[str, dict[str, Any]]


def _changes(plan: Mapping[str, Any], tf_type: str, mode: str = "managed") -> dict[str, dict[str, Any]]:
    """Planned `after` values of the instances of one type, by address (deletions left out)."""
    return {
        c["address"]: c["change"]["after"] or {}
        for c in plan.get("resource_changes", [])
        if c["type"] == tf_type and c.get("mode") == mode and c["change"]["actions"] != ["delete"]
    }


def _read_data_sources(plan: Mapping[str, Any], tf_type: str) -> dict[str, dict[str, Any]]:
    """Data sources already read during the plan (their inputs were known), by address."""

    def walk(module: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        yield from module.get("resources", [])
        for child in module.get("child_modules", []):
            yield from walk(child)

    root = plan.get("prior_state", {}).get("values", {}).get("root_module", {})
    return {r["address"]: r["values"] for r in walk(root) if r.get("mode") == "data" and r["type"] == tf_type}


def _split(address: str) -> tuple[str, str, str]:
    """'module.ci[0].aws_iam_role_policy.deploy["x"]' -> ('module.ci[0].', 'aws_iam_role_policy.deploy', '["x"]')."""
    parts = address.split(".")
    i = 0
    while i < len(parts) and parts[i] == "module":
        i += 2
    module_prefix = "".join(f"{p}." for p in parts[:i])
    local = ".".join(parts[i:])
    bare = local.split("[", 1)[0]
    return module_prefix, bare, local[len(bare) :]


def _reference(plan: Mapping[str, Any], address: str, attribute: str, kind: str) -> str | None:
    """What `attribute` of the resource at `address` refers to in the configuration, e.g. aws_iam_role.lambda."""
    module_prefix, bare, _ = _split(address)
    config: Mapping[str, Any] = plan.get("configuration", {}).get("root_module", {})
    for name in re.findall(r"module\.([^.\[]+)", module_prefix):
        config = config.get("module_calls", {}).get(name, {}).get("module", {})
    for resource in config.get("resources", []):
        if resource.get("address") == bare:
            for ref in resource.get("expressions", {}).get(attribute, {}).get("references", []):
                if ref.startswith(f"{kind}."):
                    return ".".join(ref.split(".")[: kind.count(".") + 2])
    return None


def _instance(values: Mapping[str, Any], module_prefix: str, local: str, index: str) -> Any:
    """The instance of `local` in the module: the one with the same index, else the only one."""
    if f"{module_prefix}{local}{index}" in values:
        return values[f"{module_prefix}{local}{index}"]
    found = [v for a, v in values.items() if _split(a)[:2] == (module_prefix, local.split("[", 1)[0])]
    return found[0] if len(found) == 1 else None


def _allowed_actions(statements: Any) -> set[str]:
    """Allowed actions of policy statements (template or plan spelling), lower-cased as IAM compares them."""
    actions: set[str] = set()
    for statement in statements if isinstance(statements, list) else [statements]:
        if statement.get("Effect", statement.get("effect")) in (None, "Allow"):
            raw = statement.get("Action", statement.get("actions")) or []
            actions |= {a.lower() for a in ([raw] if isinstance(raw, str) else raw)}
    return actions


def terraform_lambdas(plan: Mapping[str, Any]) -> Detail:
    """Lambdas by function name: environment variable names, handler command, timeout, memory."""
    env_names = plan.get("output_changes", {}).get("lambda_environment_names", {}).get("after") or {}
    found: Detail = {}
    for address, after in _changes(plan, "aws_lambda_function").items():
        key = _split(address)[2].strip('[]"')
        found[after["function_name"]] = {
            "environment": sorted(env_names[key]) if key in env_names else None,
            "command": (after.get("image_config") or [{}])[0].get("command"),
            "timeout": after.get("timeout"),
            "memory_size": after.get("memory_size"),
        }
    return found


def cloudformation_lambdas(template: Mapping[str, Any]) -> Detail:
    """Lambdas with a literal FunctionName (the custom-resource providers have none), by that name."""
    found: Detail = {}
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::Function" and isinstance(props.get("FunctionName"), str):
            found[props["FunctionName"]] = {
                "environment": sorted(props.get("Environment", {}).get("Variables", {})),
                "command": props.get("ImageConfig", {}).get("Command"),
                "timeout": props.get("Timeout", 3),  # CloudFormation's defaults
                "memory_size": props.get("MemorySize", 128),
            }
    return found


def _alarm(threshold: Any, periods: Any, datapoints: Any, operator: Any, missing: Any, metrics: list[Any]) -> Any:
    return {
        "threshold": float(threshold),
        "evaluation_periods": int(periods),
        "datapoints_to_alarm": int(datapoints) if datapoints else None,
        "comparison_operator": operator,
        "treat_missing_data": missing or "missing",
        # (id, namespace, metric, statistic, period, dimension names), or ("expression", text, returned)
        "metrics": sorted(metrics, key=lambda m: repr(m[:5])),
    }


def terraform_alarms(plan: Mapping[str, Any]) -> Detail:
    """Alarms by name: threshold, periods, operator, missing data, and each metric or expression."""

    def dims(value: Any) -> list[str] | None:  # None: unknown until apply
        return sorted(value) if isinstance(value, dict) else None

    found: Detail = {}
    for after in _changes(plan, "aws_cloudwatch_metric_alarm").values():
        metrics: list[Any] = []
        for query in after.get("metric_query") or []:
            if query.get("expression"):
                metrics.append(("expression", query["expression"], bool(query.get("return_data"))))
            for m in query.get("metric") or []:
                metrics.append(
                    (query["id"], m["namespace"], m["metric_name"], m["stat"], m["period"], dims(m.get("dimensions")))
                )
        if after.get("metric_name"):
            stat = after.get("statistic") or after.get("extended_statistic")
            metrics.append(
                ("", after["namespace"], after["metric_name"], stat, after["period"], dims(after.get("dimensions")))
            )
        found[after["alarm_name"]] = _alarm(
            after["threshold"],
            after["evaluation_periods"],
            after.get("datapoints_to_alarm"),
            after["comparison_operator"],
            after.get("treat_missing_data"),
            metrics,
        )
    return found


def cloudformation_alarms(template: Mapping[str, Any]) -> Detail:
    found: Detail = {}
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] != "AWS::CloudWatch::Alarm" or not isinstance(props.get("AlarmName"), str):
            continue
        metrics: list[Any] = []
        for query in props.get("Metrics", []):
            if "Expression" in query:
                metrics.append(("expression", query["Expression"], bool(query.get("ReturnData", True))))
            if "MetricStat" in query:
                stat, metric = query["MetricStat"], query["MetricStat"]["Metric"]
                names = sorted(d["Name"] for d in metric.get("Dimensions", []))
                metrics.append(
                    (query["Id"], metric["Namespace"], metric["MetricName"], stat["Stat"], stat["Period"], names)
                )
        if "MetricName" in props:
            names = sorted(d["Name"] for d in props.get("Dimensions", []))
            stat = props.get("Statistic") or props.get("ExtendedStatistic")
            metrics.append(("", props["Namespace"], props["MetricName"], stat, props["Period"], names))
        found[props["AlarmName"]] = _alarm(
            props["Threshold"],
            props["EvaluationPeriods"],
            props.get("DatapointsToAlarm"),
            props["ComparisonOperator"],
            props.get("TreatMissingData"),
            metrics,
        )
    return found


def terraform_roles(plan: Mapping[str, Any]) -> dict[str, dict[str, set[str]]]:
    """Roles by name: the actions their inline policies allow and their managed policy ARNs."""
    roles = _changes(plan, "aws_iam_role")
    documents = {
        **_changes(plan, "aws_iam_policy_document", mode="data"),  # read at apply: statements as configured
        **_read_data_sources(plan, "aws_iam_policy_document"),
    }
    found = {r["name"]: {"actions": set[str](), "managed": set[str]()} for r in roles.values()}
    for address, after in _changes(plan, "aws_iam_role_policy").items():
        module_prefix, _, index = _split(address)
        role_name = after.get("role")
        if not isinstance(role_name, str):
            ref = _reference(plan, address, "role", "aws_iam_role")
            role = _instance(roles, module_prefix, ref, index) if ref else None
            role_name = role["name"] if role else None
        if not isinstance(role_name, str) or role_name not in found:
            raise ValueError(f"{address}: cannot tell which role it is attached to")
        if isinstance(after.get("policy"), str):
            found[role_name]["actions"] |= _allowed_actions(json.loads(after["policy"])["Statement"])
            continue
        ref = _reference(plan, address, "policy", "data.aws_iam_policy_document")
        document = _instance(documents, module_prefix, ref, index) if ref else None
        if document is None:
            raise ValueError(f"{address}: its policy is unknown at plan and comes from no aws_iam_policy_document")
        found[role_name]["actions"] |= _allowed_actions(document.get("statement") or [])
    for after in _changes(plan, "aws_iam_role_policy_attachment").values():
        found[after["role"]]["managed"].add(after["policy_arn"])
    return found


def cloudformation_roles(template: Mapping[str, Any]) -> dict[str, dict[str, set[str]]]:
    """Roles with a literal RoleName, by that name: actions every policy on them allows, managed ARNs."""
    from .cfn import resolve

    resources = template["Resources"]
    names = {
        logical_id: r["Properties"]["RoleName"]
        for logical_id, r in resources.items()
        if r["Type"] == "AWS::IAM::Role" and isinstance(r.get("Properties", {}).get("RoleName"), str)
    }
    found = {name: {"actions": set[str](), "managed": set[str]()} for name in names.values()}
    for logical_id, name in names.items():
        props = resources[logical_id]["Properties"]
        for policy in props.get("Policies", []):
            found[name]["actions"] |= _allowed_actions(policy["PolicyDocument"]["Statement"])
        found[name]["managed"] |= {
            str(resolve(arn)).replace(PARTITION_REF, "aws") for arn in props.get("ManagedPolicyArns", [])
        }
    for resource in resources.values():
        if resource["Type"] == "AWS::IAM::Policy":
            for role in resource["Properties"].get("Roles", []):
                if isinstance(role, dict) and role.get("Ref") in names:
                    found[names[role["Ref"]]]["actions"] |= _allowed_actions(
                        resource["Properties"]["PolicyDocument"]["Statement"]
                    )
    return found


def _masked(terraform: list[Any], cloudformation: list[Any]) -> list[Any]:
    """The CDK metrics with what Terraform does not know yet (None) masked out, pairwise."""
    if len(terraform) != len(cloudformation):
        return cloudformation
    return [
        tuple(None if t is None else c for t, c in zip(tm, cm, strict=True)) if len(tm) == len(cm) else cm
        for tm, cm in zip(terraform, cloudformation, strict=True)
    ]


def compare_named(kind: str, terraform: Detail, cloudformation: Detail) -> list[str]:
    """'<kind> <name>: ...' for every name on one side only and every known field that differs."""
    problems = []
    for name in sorted(set(terraform) | set(cloudformation)):
        if name not in cloudformation or name not in terraform:
            problems.append(f"{kind} {name}: {'Terraform' if name in terraform else 'CDK'} only")
            continue
        for field, tf_value in terraform[name].items():
            cfn_value = cloudformation[name].get(field)
            if field == "metrics":
                cfn_value = _masked(tf_value, cfn_value)
            if tf_value is not None and tf_value != cfn_value:
                problems.append(f"{kind} {name}.{field}: Terraform {tf_value!r}, CDK {cfn_value!r}")
    return problems


def compare_roles(
    terraform: Mapping[str, Mapping[str, set[str]]],
    cloudformation: Mapping[str, Mapping[str, set[str]]],
    listed: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """Per role: actions and managed policies on one side only must be exactly what `listed` names."""
    problems = []
    for name in sorted(set(terraform) | set(cloudformation)):
        if name not in cloudformation or name not in terraform:
            problems.append(f"role {name}: {'Terraform' if name in terraform else 'CDK'} only")
            continue
        entry = listed.get(name, {})
        for field in ("actions", "managed"):
            for side, only in (
                ("terraform_only", terraform[name][field] - cloudformation[name][field]),
                ("cloudformation_only", cloudformation[name][field] - terraform[name][field]),
            ):
                allowed = {a.lower() for a in entry.get(f"{side}_{field}", [])}
                if only != allowed:
                    problems.append(
                        f"role {name}: {field} {side.replace('_', ' ')} {sorted(only)}, listed {sorted(allowed)}"
                    )
    problems += [
        f"iam.{name}: not a role on both sides"
        for name in listed
        if name not in terraform or name not in cloudformation
    ]
    return problems


def compare_details(plan: Mapping[str, Any], template: Mapping[str, Any], exceptions: Mapping[str, Any]) -> list[str]:
    """Lambda names, environment names and sizes; alarm names and settings; IAM per named role.

    A Lambda or alarm difference is allowed when exceptions['details'] lists its '<kind> <name>.<field>'
    with a reason; role differences must match exceptions['iam'] action for action. Stale entries fail.
    """
    allowed: Mapping[str, str] = exceptions.get("details", {})
    named = compare_named("lambda", terraform_lambdas(plan), cloudformation_lambdas(template))
    named += compare_named("alarm", terraform_alarms(plan), cloudformation_alarms(template))
    problems = [p for p in named if p.split(": ", 1)[0] not in allowed]
    problems += [f"details.{k}: no longer differs" for k in allowed if not any(p.startswith(f"{k}: ") for p in named)]
    return problems + compare_roles(terraform_roles(plan), cloudformation_roles(template), exceptions.get("iam", {}))
