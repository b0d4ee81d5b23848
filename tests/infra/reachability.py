"""Would each call the stack's compute makes get through in AWS? A reachability check over Terraform state.

The emulator runs every unit on one machine, where every address answers; AWS does not. A Lambda in a
private subnet without a NAT gateway reaches only what a VPC endpoint or the VPC itself offers; a
Fargate task's image, log stream and secrets are fetched through the task's own subnets; a VPC
endpoint's policy and security group can refuse what the route allows; a private DNS name resolves
only inside its VPC. None of that shows up until the stack runs in an account, so this module reads
the state (`tofu show -json`, every value known after an apply) and says, for every unit and every
call it makes, what would stop the call.

Units (`units()`): each `aws_lambda_function`; each `aws_ecs_service` (placement from its
`network_configuration`, code from its task definition); each ECS RunTask and SageMaker
CreateTrainingJob task of a state machine (placement from the rendered definition's
NetworkConfiguration / VpcConfig; a training job whose RoleArn is empty is not configured and skipped).

What each unit calls comes from `calls`: for each IAM role name (or a unit's own `Unit.key`, which
wins), the IAM actions the unit was seen to call, plus its internal endpoints as URLs
(`http://mlflow.esteira-dev.internal:5000`), `env:NAME` (the URL in the unit's environment variable
NAME) or templates over the environment (`postgresql://${DB_HOST}:${DB_PORT}`). What AWS fetches on a
unit's behalf through the unit's own network is derived from the state, not from `calls`: a Fargate
task's image (ecr.api, ecr.dkr, and S3 for the layers in the AWS-owned
`prod-<region>-starport-layer-bucket`, fetched with a URL ECR pre-signs, so not by this account's
principal), its awslogs stream, its `secrets` and `environmentFiles`, ECS Exec's channels; a
SageMaker job's S3 output, logs and metrics in VPC mode (AWS, "How does my SageMaker container access
Amazon S3 data and push logs to CloudWatch": the node's own processes connect through the VPC in
VpcConfig; the image is pulled by SageMaker, not through the VPC). A Lambda's image, logs and traces
are not fetched through its VPC.

The result is a list of `Problem`s, each naming the unit, the call and what is missing. Pure Python
over the JSON: no AWS, no Terraform run.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HTTPS = 443
ANYWHERE = "0.0.0.0/0"
# IAM action prefix -> the endpoint service name (com.amazonaws.<region>.<name>) that serves it.
ENDPOINT_SERVICE = {
    "cloudwatch": "monitoring",
    "elasticloadbalancing": "elasticloadbalancing",
    "application-autoscaling": "application-autoscaling",
    "states": "states",
    "ecr": "ecr.api",
    "sagemaker": "sagemaker.api",
    "kinesis": "kinesis-streams",
    "firehose": "kinesis-firehose",
    "rds-data": "rds-data",
    "execute-api": "execute-api",
    "elasticfilesystem": "elasticfilesystem",
}
# Actions that are permissions AWS checks, not requests the unit sends over its network: passing a
# role, signing a database token locally, and the key use S3, SNS, Secrets Manager or Step Functions
# ask KMS for with the caller's permissions when the unit's request touches encrypted data (the
# emulator records those under the unit's role; the code here never calls KMS itself).
NOT_NETWORK = re.compile(
    r"^(iam:PassRole|rds-db:connect|sts:AssumeRole|kms:(Decrypt|Encrypt|GenerateDataKey\w*|ReEncrypt\w*|DescribeKey))$",
    re.IGNORECASE,
)
# What a service does with the unit's role outside the unit's network (the emulator records these
# under the role too): Lambda writes logs and traces and manages its network interfaces itself and
# pulls its image; SageMaker pulls the training image and attaches its network interfaces.
SERVICE_SIDE = {
    "lambda": re.compile(
        r"^(logs:(CreateLogGroup|CreateLogStream|PutLogEvents)|xray:Put\w+|xray:GetSampling\w+|"
        r"ec2:\w*NetworkInterface\w*|ec2:(Assign|Unassign)PrivateIpAddresses|ec2:Describe\w+|"
        r"ecr:(BatchGetImage|GetDownloadUrlForLayer|GetAuthorizationToken|BatchCheckLayerAvailability))$",
        re.IGNORECASE,
    ),
    "sagemaker": re.compile(
        r"^(ec2:\w*NetworkInterface\w*|ec2:Describe\w+|"
        r"ecr:(BatchGetImage|GetDownloadUrlForLayer|GetAuthorizationToken|BatchCheckLayerAvailability))$",
        re.IGNORECASE,
    ),
}
DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432, "mysql": 3306, "redis": 6379}
ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9*]+$")
ECR_IMAGE = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([^:@]+)")
# Condition keys this module can tell for a request through an endpoint; others are "undetermined".
KNOWN_KEYS = {
    "aws:principalaccount",
    "aws:principalarn",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:resourceaccount",
    "s3:resourceaccount",
    "aws:securetransport",
    "aws:requestedregion",
}


# ---- results --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One call that would not get through: who, where from, what, and what is missing."""

    unit: str  # "lambda canary_check"
    placement: str  # "private subnets, no NAT"
    call: str  # "elasticloadbalancing:ModifyListener", "image pull: s3:GetObject ...", "http://host:port"
    missing: str

    def __str__(self) -> str:
        return f"{self.unit} ({self.placement}) calls {self.call}: {self.missing}"


@dataclass(frozen=True)
class Placement:
    """Where a unit's network interfaces are: subnets and security groups in a VPC, or no VPC at all
    (AWS's own network, with the internet and every public endpoint, and nothing private)."""

    vpc_id: str | None
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    public_ip: bool = False
    unknown: str = ""  # why the placement cannot be read from the state (then nothing else is checked)


@dataclass(frozen=True)
class Principal:
    """Who signs a request, as an endpoint policy sees it."""

    arn: str | None
    account: str | None
    label: str


@dataclass(frozen=True)
class Call:
    """One request a unit (or AWS on its behalf) sends through the unit's network to an AWS service."""

    action: str
    resources: tuple[str, ...]
    principal: Principal
    why: str = ""  # "image pull", "awslogs", ... ; empty for the unit's own code
    service: str = ""  # endpoint service name when it is not the action's default (ecr.dkr)


@dataclass
class Unit:
    """A piece of the stack's compute, where Terraform put it and what it is given."""

    kind: str  # lambda | ecs | sagemaker
    name: str  # "lambda canary_check", "ecs esteira-dev-serving (service esteira-serving)"
    key: str  # its own key in `calls`: function name, task family, "sagemaker:<state>"
    role_arn: str
    placement: Placement
    environment: dict[str, str] = field(default_factory=dict)
    on_behalf: list[Call] = field(default_factory=list)

    @property
    def role_name(self) -> str:
        return self.role_arn.rsplit("/", 1)[-1] if self.role_arn else ""


# ---- reading the state ---------------------------------------------------------------------------
def _modules(module: Mapping[str, Any] | None) -> Iterator[Mapping[str, Any]]:
    if not module:
        return
    yield module
    for child in module.get("child_modules", []) or []:
        yield from _modules(child)


def managed(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every managed resource of a `show -json` state (`values`) or plan (`planned_values`)."""
    root = (document.get("values") or document.get("planned_values") or {}).get("root_module")
    return [r for m in _modules(root) for r in m.get("resources", []) or [] if r.get("mode") == "managed"]


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple, set)) else [value]


def _first(value: Any) -> dict[str, Any]:
    items = _list(value)
    return dict(items[0]) if items and isinstance(items[0], dict) else {}


def _json(text: Any) -> Any:
    if isinstance(text, (dict, list)):
        return text
    try:
        return json.loads(text) if text else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Rule:
    """One security-group rule, from whichever of the three Terraform shapes it was written in."""

    protocol: str  # "-1" (all), "tcp", "udp", "icmp", ...
    from_port: int
    to_port: int
    cidrs: tuple[str, ...] = ()
    group: str = ""  # referenced security group
    prefix_list: str = ""

    def covers(self, port: int) -> bool:
        if self.protocol in ("-1", "all"):
            return True
        return self.protocol in ("tcp", "6") and self.from_port <= port <= self.to_port


def _rule(protocol: Any, from_port: Any, to_port: Any, **kw: Any) -> Rule:
    proto = str(protocol if protocol not in (None, "") else "-1").lower()
    return Rule(proto, int(from_port or 0), int(to_port if to_port not in (None, "") else 65535), **kw)


@dataclass
class Stack:
    """The state's network, roles and services, indexed for the checks."""

    account_id: str = ""
    region: str = ""
    vpcs: dict[str, dict[str, Any]] = field(default_factory=dict)
    subnets: dict[str, dict[str, Any]] = field(default_factory=dict)
    route_table_of: dict[str, str] = field(default_factory=dict)  # subnet -> route table
    main_route_table: dict[str, str] = field(default_factory=dict)  # vpc -> route table
    routes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # route table -> routes
    nat_gateways: dict[str, dict[str, Any]] = field(default_factory=dict)
    eip_public_ip: dict[str, str] = field(default_factory=dict)  # allocation id -> public ip
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    ingress: dict[str, list[Rule]] = field(default_factory=dict)
    egress: dict[str, list[Rule]] = field(default_factory=dict)
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    buckets: set[str] = field(default_factory=set)
    role_policies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # role name -> documents
    task_definitions: dict[str, dict[str, Any]] = field(default_factory=dict)  # family -> values
    services: list[dict[str, Any]] = field(default_factory=list)
    functions: list[dict[str, Any]] = field(default_factory=list)
    state_machines: list[dict[str, Any]] = field(default_factory=list)
    names: dict[str, Target] = field(default_factory=dict)  # private or public host name -> what answers
    nacls: bool = False

    @classmethod
    def read(cls, document: Mapping[str, Any]) -> Stack:
        s = cls()
        resources = managed(document)
        by_type: dict[str, list[dict[str, Any]]] = {}
        for r in resources:
            values = dict(r.get("values") or {})
            values["_address"], values["_index"] = r.get("address", ""), r.get("index")
            by_type.setdefault(r["type"], []).append(values)
        for r in _data(document):
            v = r.get("values") or {}
            if r["type"] == "aws_caller_identity" and v.get("account_id"):
                s.account_id = str(v["account_id"])
            if r["type"] == "aws_region" and (v.get("region") or v.get("name")):
                s.region = str(v.get("region") or v.get("name"))

        def get(kind: str) -> list[dict[str, Any]]:
            return by_type.get(kind, [])

        for v in get("aws_vpc"):
            s.vpcs[v["id"]] = v
            if v.get("main_route_table_id"):
                s.main_route_table[v["id"]] = v["main_route_table_id"]
        for v in get("aws_subnet"):
            s.subnets[v["id"]] = v
        for v in get("aws_route_table"):
            s.routes.setdefault(v["id"], []).extend(dict(x) for x in _list(v.get("route")))
        for v in get("aws_route"):
            s.routes.setdefault(v["route_table_id"], []).append(
                {**v, "cidr_block": v.get("destination_cidr_block") or v.get("cidr_block")}
            )
        for v in get("aws_route_table_association"):
            if v.get("subnet_id"):
                s.route_table_of[v["subnet_id"]] = v["route_table_id"]
        for v in get("aws_main_route_table_association"):
            s.main_route_table[v["vpc_id"]] = v["route_table_id"]
        for v in get("aws_eip"):
            if v.get("allocation_id") or v.get("id"):
                s.eip_public_ip[str(v.get("allocation_id") or v.get("id"))] = str(v.get("public_ip") or "")
        for v in get("aws_nat_gateway"):
            s.nat_gateways[v["id"]] = v
        s._read_groups(get)
        s._read_endpoints(get)
        for v in get("aws_s3_bucket"):
            s.buckets.add(str(v.get("bucket") or v.get("id")))
        s._read_roles(get)
        for v in get("aws_ecs_task_definition"):
            s.task_definitions[v["family"]] = v
        s.services = get("aws_ecs_service")
        s.functions = get("aws_lambda_function")
        s.state_machines = get("aws_sfn_state_machine")
        s._read_names(get)
        s.nacls = bool(get("aws_network_acl") or get("aws_network_acl_rule"))
        if not s.account_id or not s.region:
            s._guess_account_region(resources)
        return s

    def _read_groups(self, get: Any) -> None:
        for v in get("aws_security_group"):
            self.groups[v["id"]] = v
            for direction in ("ingress", "egress"):
                for x in _list(v.get(direction)):
                    groups = [*_list(x.get("security_groups")), *([v["id"]] if x.get("self") else [])]
                    base = {"cidrs": tuple(_list(x.get("cidr_blocks")))}
                    rules = [_rule(x.get("protocol"), x.get("from_port"), x.get("to_port"), **base)]
                    rules += [_rule(x.get("protocol"), x.get("from_port"), x.get("to_port"), group=g) for g in groups]
                    rules += [
                        _rule(x.get("protocol"), x.get("from_port"), x.get("to_port"), prefix_list=p)
                        for p in _list(x.get("prefix_list_ids"))
                    ]
                    self._add(direction, v["id"], rules)
        for v in get("aws_default_security_group"):
            self.groups.setdefault(v["id"], v)
        for direction in ("ingress", "egress"):
            for v in get(f"aws_vpc_security_group_{direction}_rule"):
                rule = _rule(
                    v.get("ip_protocol"),
                    v.get("from_port"),
                    v.get("to_port"),
                    cidrs=tuple(c for c in (v.get("cidr_ipv4"),) if c),
                    group=str(v.get("referenced_security_group_id") or ""),
                    prefix_list=str(v.get("prefix_list_id") or ""),
                )
                self._add(direction, v["security_group_id"], [rule])
        for v in get("aws_security_group_rule"):
            direction = v.get("type")
            if direction not in ("ingress", "egress"):
                continue
            sg = v["security_group_id"]
            ref = sg if v.get("self") else str(v.get("source_security_group_id") or "")
            proto, low, high = v.get("protocol"), v.get("from_port"), v.get("to_port")
            rules = [_rule(proto, low, high, cidrs=tuple(_list(v.get("cidr_blocks"))))]
            if ref:
                rules.append(_rule(proto, low, high, group=ref))
            rules += [_rule(proto, low, high, prefix_list=p) for p in _list(v.get("prefix_list_ids"))]
            self._add(direction, sg, rules)

    def _add(self, direction: str, group: str, rules: list[Rule]) -> None:
        table = self.ingress if direction == "ingress" else self.egress
        table.setdefault(group, []).extend(rules)

    def _read_endpoints(self, get: Any) -> None:
        by_id: dict[str, dict[str, Any]] = {}
        for v in get("aws_vpc_endpoint"):
            e = dict(v)
            e["subnet_ids"] = list(_list(v.get("subnet_ids")))
            e["security_group_ids"] = list(_list(v.get("security_group_ids")))
            e["route_table_ids"] = list(_list(v.get("route_table_ids")))
            by_id[v["id"]] = e
            self.endpoints.append(e)
        for kind, attr, key in (
            ("aws_vpc_endpoint_subnet_association", "subnet_ids", "subnet_id"),
            ("aws_vpc_endpoint_security_group_association", "security_group_ids", "security_group_id"),
            ("aws_vpc_endpoint_route_table_association", "route_table_ids", "route_table_id"),
        ):
            for v in get(kind):
                owner = by_id.get(v.get("vpc_endpoint_id", ""))
                if owner is not None and v.get(key) not in owner[attr]:
                    owner[attr].append(v[key])
        for v in get("aws_vpc_endpoint_policy"):
            owner = by_id.get(v.get("vpc_endpoint_id", ""))
            if owner is not None and v.get("policy"):
                owner["policy"] = v["policy"]

    def _read_roles(self, get: Any) -> None:
        names = {}
        for v in get("aws_iam_role"):
            names[v.get("id") or v["name"]] = v["name"]
            names[v["name"]] = v["name"]
            docs = self.role_policies.setdefault(v["name"], [])
            docs += [d for d in (_json(p.get("policy")) for p in _list(v.get("inline_policy"))) if d]
        managed_docs = {v["arn"]: _json(v.get("policy")) for v in get("aws_iam_policy")}
        for v in get("aws_iam_role_policy"):
            role = names.get(str(v.get("role")), str(v.get("role")))
            doc = _json(v.get("policy"))
            if doc:
                self.role_policies.setdefault(role, []).append(doc)
        for v in get("aws_iam_role_policy_attachment"):
            role = names.get(str(v.get("role")), str(v.get("role")))
            doc = managed_docs.get(v.get("policy_arn"))
            if doc:
                self.role_policies.setdefault(role, []).append(doc)

    def _read_names(self, get: Any) -> None:
        namespaces = {v["id"]: v for v in get("aws_service_discovery_private_dns_namespace")}
        public_ns = {v["id"]: v for v in get("aws_service_discovery_public_dns_namespace")}
        registries: dict[str, tuple[str, str | None]] = {}  # discovery service arn -> (host, vpc or None)
        for v in get("aws_service_discovery_service"):
            ns_id = _first(v.get("dns_config")).get("namespace_id") or v.get("namespace_id")
            if ns_id in namespaces:
                registries[v["arn"]] = (f"{v['name']}.{namespaces[ns_id]['name']}", namespaces[ns_id].get("vpc"))
            elif ns_id in public_ns:
                registries[v["arn"]] = (f"{v['name']}.{public_ns[ns_id]['name']}", None)
        for svc in self.services:
            for reg in _list(svc.get("service_registries")):
                found = registries.get(reg.get("registry_arn", ""))
                if found is None:
                    continue
                host, vpc = found
                target = self.service_target(svc)
                if target is not None:
                    target.private_vpc = vpc
                    target.kind = "Cloud Map name"
                    self.names[host.lower()] = target
        listeners: dict[str, list[dict[str, Any]]] = {}
        for v in get("aws_lb_listener"):
            listeners.setdefault(v["load_balancer_arn"], []).append(v)
        for v in get("aws_lb"):
            if not v.get("dns_name"):
                continue
            ports: dict[int, list[str]] = {}
            for lst in listeners.get(v["arn"], []):
                groups = []
                for action in _list(lst.get("default_action")):
                    if action.get("target_group_arn"):
                        groups.append(action["target_group_arn"])
                    for fwd in _list(action.get("forward")):
                        groups += [tg["arn"] for tg in _list(fwd.get("target_group")) if tg.get("arn")]
                ports[int(lst.get("port") or 0)] = groups
            subnets = [*_list(v.get("subnets")), *(m.get("subnet_id") for m in _list(v.get("subnet_mapping")))]
            self.names[str(v["dns_name"]).lower()] = Target(
                name=f"load balancer {v.get('name', v['arn'])}",
                kind="internal load balancer" if v.get("internal") else "internet-facing load balancer",
                vpc_id=self.vpc_of(subnets),
                subnet_ids=tuple(sorted({s for s in subnets if s})),
                security_group_ids=tuple(_list(v.get("security_groups"))),
                ports=frozenset(ports),
                private_vpc=self.vpc_of(subnets) if v.get("internal") else None,
                listener_groups=ports,
            )
        subnet_groups = {v.get("name") or v["id"]: _list(v.get("subnet_ids")) for v in get("aws_db_subnet_group")}
        for kind in ("aws_db_instance", "aws_rds_cluster"):
            for v in get(kind):
                host = v.get("address") or str(v.get("endpoint") or "").split(":")[0]
                if not host:
                    continue
                subnets = subnet_groups.get(v.get("db_subnet_group_name"), [])
                self.names[str(host).lower()] = Target(
                    name=f"database {v.get('identifier') or v.get('cluster_identifier') or host}",
                    kind="database",
                    vpc_id=self.vpc_of(subnets),
                    subnet_ids=tuple(subnets),
                    security_group_ids=tuple(_list(v.get("vpc_security_group_ids"))),
                    ports=frozenset({int(v["port"])}) if v.get("port") else None,
                    private_vpc=None if v.get("publicly_accessible") else self.vpc_of(subnets),
                )

    def _guess_account_region(self, resources: list[dict[str, Any]]) -> None:
        for r in resources:
            arn = str((r.get("values") or {}).get("arn") or "")
            parts = arn.split(":")
            if len(parts) > 4 and parts[3] and parts[4].isdigit():
                self.region = self.region or parts[3]
                self.account_id = self.account_id or parts[4]
                if self.region and self.account_id:
                    return

    # -- derived facts
    def vpc_of(self, subnet_ids: Iterable[str]) -> str | None:
        for s in subnet_ids:
            if s in self.subnets:
                return str(self.subnets[s]["vpc_id"])
        return None

    def cidrs(self, subnet_ids: Iterable[str]) -> list[str]:
        return [str(self.subnets[s]["cidr_block"]) for s in subnet_ids if s in self.subnets]

    def route_table(self, subnet_id: str) -> str | None:
        if subnet_id in self.route_table_of:
            return self.route_table_of[subnet_id]
        vpc = self.subnets.get(subnet_id, {}).get("vpc_id")
        return self.main_route_table.get(vpc) if vpc else None

    def default_route(self, subnet_id: str) -> dict[str, Any] | None:
        rtb = self.route_table(subnet_id)
        for route in self.routes.get(rtb or "", []):
            if route.get("cidr_block") == ANYWHERE or route.get("destination_cidr_block") == ANYWHERE:
                return route
        return None

    def internet(self, subnet_id: str, public_ip: bool) -> str:
        """How this subnet reaches the internet: "nat", "igw" (public IP on a public subnet) or ""."""
        route = self.default_route(subnet_id) or {}
        nat = route.get("nat_gateway_id")
        if nat:
            gateway = self.nat_gateways.get(nat)
            if gateway is None:  # a NAT gateway outside this state: trust the route
                return "nat"
            if gateway.get("connectivity_type", "public") == "private":
                return ""
            upstream = self.default_route(gateway.get("subnet_id", "")) or {}
            return "nat" if str(upstream.get("gateway_id") or "").startswith("igw-") else ""
        if str(route.get("gateway_id") or "").startswith("igw-") and public_ip:
            return "igw"
        return ""

    def nat_public_ips(self, subnet_id: str) -> list[str]:
        nat = (self.default_route(subnet_id) or {}).get("nat_gateway_id")
        gateway = self.nat_gateways.get(nat or "", {})
        ip = gateway.get("public_ip") or self.eip_public_ip.get(gateway.get("allocation_id", ""), "")
        return [ip] if ip else []

    def service_target(self, svc: Mapping[str, Any]) -> Target | None:
        net = _first(svc.get("network_configuration"))
        if not net:
            return None
        family = _family(str(svc.get("task_definition", "")))
        td = self.task_definitions.get(family, {})
        ports = {
            int(p["containerPort"])
            for c in _json(td.get("container_definitions")) or []
            for p in c.get("portMappings", []) or []
            if p.get("containerPort")
        }
        subnets = tuple(_list(net.get("subnets")))
        return Target(
            name=f"ECS service {svc.get('name')}",
            kind="ECS service",
            vpc_id=self.vpc_of(subnets),
            subnet_ids=subnets,
            security_group_ids=tuple(_list(net.get("security_groups"))),
            ports=frozenset(ports) if ports else None,
        )


@dataclass
class Target:
    """What answers at a host name the units call: its network and ports."""

    name: str
    kind: str
    vpc_id: str | None
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    ports: frozenset[int] | None
    private_vpc: str | None = None  # set when the name resolves only inside this VPC
    listener_groups: dict[int, list[str]] = field(default_factory=dict)  # load balancers: port -> groups


def _data(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    root = (document.get("values") or document.get("planned_values") or {}).get("root_module")
    return [r for m in _modules(root) for r in m.get("resources", []) or [] if r.get("mode") == "data"]


def _family(task_definition: str) -> str:
    """`arn:...:task-definition/family:3`, `family:3` or `family` -> family."""
    tail = task_definition.rsplit("task-definition/", 1)[-1]
    return tail.split(":")[0]


# ---- units -------------------------------------------------------------------------------------------
def units(state: Mapping[str, Any] | Stack) -> list[Unit]:
    """Every compute unit of the stack, with its placement, role, environment and on-behalf fetches."""
    stack = state if isinstance(state, Stack) else Stack.read(state)
    found: list[Unit] = []
    for fn in stack.functions:
        vpc = _first(fn.get("vpc_config"))
        subnets = tuple(_list(vpc.get("subnet_ids")))
        placement = (
            Placement(stack.vpc_of(subnets) or vpc.get("vpc_id"), subnets, tuple(_list(vpc.get("security_group_ids"))))
            if subnets
            else Placement(None)
        )
        label = fn["_index"] if isinstance(fn.get("_index"), str) else fn["function_name"]
        found.append(
            Unit(
                kind="lambda",
                name=f"lambda {label}",
                key=str(fn["function_name"]),
                role_arn=str(fn.get("role") or ""),
                placement=placement,
                environment=dict(_first(fn.get("environment")).get("variables") or {}),
            )
        )
    for svc in stack.services:
        family = _family(str(svc.get("task_definition", "")))
        td = stack.task_definitions.get(family)
        net = _first(svc.get("network_configuration"))
        subnets = tuple(_list(net.get("subnets")))
        placement = (
            Placement(
                stack.vpc_of(subnets),
                subnets,
                tuple(_list(net.get("security_groups"))),
                bool(net.get("assign_public_ip")),
            )
            if subnets
            else Placement(None, unknown="the service has no awsvpc network_configuration")
        )
        unit = _ecs_unit(stack, f"ecs {family} (service {svc.get('name')})", family, td, placement, svc)
        found.append(unit)
    for machine in stack.state_machines:
        definition = _json(machine.get("definition")) or {}
        # By the task's parameters as well as its Resource: the emulator serves the definition back with
        # its own shims in Resource (localaws-ecs-runtask-sync), and that is what the state holds.
        for state_name, state in _task_states(definition):
            resource = str(state.get("Resource", ""))
            params = state.get("Parameters") or state.get("Arguments") or {}
            if ":::ecs:runTask" in resource or ("TaskDefinition" in params and "Cluster" in params):
                family = _family(str(params.get("TaskDefinition", "")))
                if not family:  # the backend is not deployed (TrainEc2 without ec2_training)
                    continue
                net = (params.get("NetworkConfiguration") or {}).get("AwsvpcConfiguration") or {}
                placement = _task_placement(stack, net, "Subnets", "SecurityGroups")
                placement = Placement(
                    placement.vpc_id,
                    placement.subnet_ids,
                    placement.security_group_ids,
                    str(net.get("AssignPublicIp", "DISABLED")).upper() == "ENABLED",
                    placement.unknown,
                )
                td = stack.task_definitions.get(family)
                unit = _ecs_unit(stack, f"ecs {family} (state machine task {state_name})", family, td, placement, {})
                found.append(unit)
            elif ":::sagemaker:createTrainingJob" in resource or "AlgorithmSpecification" in params:
                role = str(params.get("RoleArn") or "")
                if not role:  # the backend is not configured (training_backend = "ecs")
                    continue
                found.append(_sagemaker_unit(stack, state_name, params, role, found))
    return found


_SPLIT_LITERAL = re.compile(r"^States\.StringSplit\(\s*'([^']*)'\s*,\s*'([^']+)'\s*\)$")


def _constant_list(net: Mapping[str, Any], key: str) -> list[Any] | None:
    """The field's list when the state fixes it: given as a list, or `States.StringSplit` of a literal
    (how the templates carry Terraform's list variables inside strings); None when chosen at run time."""
    if f"{key}.$" not in net:
        return _list(net.get(key))
    split = _SPLIT_LITERAL.match(str(net[f"{key}.$"]).strip())
    return [s for s in split.group(1).split(split.group(2)) if s] if split else None


def _task_placement(stack: Stack, net: Mapping[str, Any], subnets_key: str, groups_key: str) -> Placement:
    if not net:
        return Placement(None)
    subnet_list, group_list = _constant_list(net, subnets_key), _constant_list(net, groups_key)
    if subnet_list is None or group_list is None:
        return Placement(None, unknown=f"{subnets_key} is chosen at run time (JSONPath), not in the state")
    subnets = tuple(str(s) for s in subnet_list)
    if not subnets:
        return Placement(None, unknown=f"no {subnets_key} in the task's network configuration")
    return Placement(stack.vpc_of(subnets), subnets, tuple(str(g) for g in group_list))


def _task_states(definition: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in (definition.get("States") or {}).items():
        if state.get("Type") == "Task":
            yield name, state
        for branch in state.get("Branches") or []:
            yield from _task_states(branch)
        for key in ("Iterator", "ItemProcessor"):
            if isinstance(state.get(key), dict):
                yield from _task_states(state[key])


def _role_principal(stack: Stack, role_arn: str) -> Principal:
    return Principal(role_arn, stack.account_id, f"role {role_arn.rsplit('/', 1)[-1]}")


def _ecs_unit(
    stack: Stack, name: str, family: str, td: Mapping[str, Any] | None, placement: Placement, svc: Mapping[str, Any]
) -> Unit:
    """An ECS task: its task role runs the code; its execution role is what ECS uses, through the task's
    own network interface on Fargate, to pull the image and open the log stream and read the secrets."""
    if td is None:
        return Unit("ecs", name, family, "", Placement(None, unknown=f"no task definition {family} in the state"))
    containers = _json(td.get("container_definitions")) or []
    environment = {e["name"]: str(e.get("value", "")) for c in containers for e in c.get("environment", []) or []}
    execution = str(td.get("execution_role_arn") or "")
    fargate = _is_fargate(td, svc)
    on_behalf: list[Call] = []
    who = _role_principal(stack, execution) if execution else Principal(None, stack.account_id, "no role")
    if fargate:
        for c in containers:
            on_behalf += _image_calls(stack, str(c.get("image", "")), who)
            on_behalf += _log_calls(stack, c.get("logConfiguration") or {}, who)
            on_behalf += _secret_calls(stack, c.get("secrets") or [], who)
            for f in c.get("environmentFiles") or []:
                on_behalf.append(Call("s3:GetObject", (str(f.get("value")),), who, "environmentFiles"))
    if svc.get("enable_execute_command"):
        task_role = str(td.get("task_role_arn") or "")
        for action in ("CreateControlChannel", "CreateDataChannel", "OpenControlChannel", "OpenDataChannel"):
            on_behalf.append(Call(f"ssmmessages:{action}", ("*",), _role_principal(stack, task_role), "ECS Exec"))
    return Unit(
        kind="ecs",
        name=name,
        key=family,
        role_arn=str(td.get("task_role_arn") or ""),
        placement=placement,
        environment=environment,
        on_behalf=on_behalf,
    )


def _is_fargate(td: Mapping[str, Any], svc: Mapping[str, Any]) -> bool:
    if svc.get("launch_type") == "FARGATE":
        return True
    if any(
        str(c.get("capacity_provider", "")).startswith("FARGATE") for c in _list(svc.get("capacity_provider_strategy"))
    ):
        return True
    return "FARGATE" in _list(td.get("requires_compatibilities"))


def _image_calls(stack: Stack, image: str, who: Principal) -> list[Call]:
    match = ECR_IMAGE.match(image)
    if not match:
        return [Call(f"image pull: {image}", ("*",), who, "image pull", service="internet")]
    account, region, repository = match.groups()
    repo = f"arn:aws:ecr:{region}:{account}:repository/{repository}"
    layers = f"arn:aws:s3:::prod-{region}-starport-layer-bucket/*"
    # ECR answers the layer request with a URL it pre-signed: the S3 request is not this account's.
    presigned = Principal(None, None, "ECR's pre-signed layer URL (an AWS-owned principal)")
    return [
        Call("ecr:GetAuthorizationToken", ("*",), who, "image pull", service="ecr.api"),
        Call("ecr:BatchGetImage", (repo,), who, "image pull", service="ecr.dkr"),
        Call("ecr:GetDownloadUrlForLayer", (repo,), who, "image pull", service="ecr.dkr"),
        Call("s3:GetObject", (layers,), presigned, "image pull (layers)", service="s3"),
    ]


def _log_calls(stack: Stack, config: Mapping[str, Any], who: Principal) -> list[Call]:
    if config.get("logDriver") != "awslogs":
        return []
    options = config.get("options") or {}
    region = options.get("awslogs-region") or stack.region
    group = options.get("awslogs-group", "")
    stream = f"arn:aws:logs:{region}:{stack.account_id}:log-group:{group}:log-stream:*"
    calls = [Call(f"logs:{a}", (stream,), who, "awslogs") for a in ("CreateLogStream", "PutLogEvents")]
    if str(options.get("awslogs-create-group", "")).lower() == "true":
        group_arn = f"arn:aws:logs:{region}:{stack.account_id}:log-group:{group}"
        calls.append(Call("logs:CreateLogGroup", (group_arn,), who, "awslogs"))
    return calls


def _secret_calls(stack: Stack, secrets: list[Mapping[str, Any]], who: Principal) -> list[Call]:
    calls = []
    for item in secrets:
        ref = str(item.get("valueFrom", ""))
        if ":secretsmanager:" in ref:
            calls.append(Call("secretsmanager:GetSecretValue", (":".join(ref.split(":")[:7]),), who, "secrets"))
        elif ref.startswith("arn:") and ":ssm:" in ref:
            calls.append(Call("ssm:GetParameters", (ref,), who, "secrets"))
        elif ref:
            arn = f"arn:aws:ssm:{stack.region}:{stack.account_id}:parameter/{ref.lstrip('/')}"
            calls.append(Call("ssm:GetParameters", (arn,), who, "secrets"))
    return calls


def _sagemaker_unit(stack: Stack, state_name: str, params: Mapping[str, Any], role: str, found: list[Unit]) -> Unit:
    """A training job: outside any VPC without VpcConfig; in VPC mode SageMaker's own processes move
    S3 data and logs and metrics through the job's subnets with the job's role."""
    vpc = params.get("VpcConfig") or {}
    placement = _task_placement(stack, vpc, "Subnets", "SecurityGroupIds") if vpc else Placement(None)
    environment = params.get("Environment") if isinstance(params.get("Environment"), dict) else None
    if environment is None:  # "Environment.$" at run time: the workflow gives it the training task's names
        environment = next((u.environment for u in found if u.kind == "ecs" and "state machine task" in u.name), {})
    who = _role_principal(stack, role)
    on_behalf: list[Call] = []
    if placement.vpc_id:
        output = str((params.get("OutputDataConfig") or {}).get("S3OutputPath") or "")
        if output.startswith("s3://"):
            on_behalf.append(Call("s3:PutObject", (_s3_arn(output) + "*",), who, "training output"))
        for channel in params.get("InputDataConfig") or []:
            uri = str(((channel.get("DataSource") or {}).get("S3DataSource") or {}).get("S3Uri") or "")
            if uri.startswith("s3://"):
                on_behalf.append(Call("s3:GetObject", (_s3_arn(uri) + "*",), who, "training input"))
        group = f"arn:aws:logs:{stack.region}:{stack.account_id}:log-group:/aws/sagemaker/TrainingJobs"
        for action in ("CreateLogStream", "PutLogEvents"):
            on_behalf.append(Call(f"logs:{action}", (f"{group}:log-stream:*",), who, "training logs"))
        on_behalf.append(Call("cloudwatch:PutMetricData", ("*",), who, "training metrics"))
    return Unit(
        kind="sagemaker",
        name=f"sagemaker training job (state machine task {state_name})",
        key=f"sagemaker:{state_name}",
        role_arn=role,
        placement=placement,
        environment={str(k): str(v) for k, v in environment.items()},
        on_behalf=on_behalf,
    )


def _s3_arn(uri: str) -> str:
    return "arn:aws:s3:::" + uri[len("s3://") :]


# ---- IAM policy evaluation for endpoint policies -----------------------------------------------------
def _glob(pattern: str, value: str, *, case: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _principal_matches(entries: Any, who: Principal) -> bool:
    if entries == "*":
        return True
    if not isinstance(entries, dict):
        return False
    for value in _list(entries.get("AWS")):
        value = str(value)
        if value == "*":
            return True
        if who.arn and value == who.arn:
            return True
        if who.account and value in (who.account, f"arn:aws:iam::{who.account}:root"):
            return True
    return False


def _condition(operator: str, actual: str | None, wanted: list[str]) -> bool:
    op = operator.split(":")[-1]
    if_exists = op.endswith("IfExists")
    op = op.removesuffix("IfExists")
    negated = "Not" in op
    if op == "Null":
        return (actual is None) == (str(wanted[0]).lower() == "true")
    if actual is None:
        return if_exists or negated
    if op in ("StringEquals", "ArnEquals", "StringNotEquals", "ArnNotEquals"):
        hit = actual in wanted
    elif op in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        hit = actual.lower() in [w.lower() for w in wanted]
    elif op in ("StringLike", "ArnLike", "StringNotLike", "ArnNotLike"):
        hit = any(_glob(w, actual) for w in wanted)
    elif op == "Bool":
        hit = actual.lower() in [w.lower() for w in wanted]
    else:
        raise KeyError(op)
    return not hit if negated else hit


def _conditions_hold(conditions: Mapping[str, Any], context: Mapping[str, str | None]) -> tuple[bool, str]:
    """(holds, the first condition key this module cannot tell, if any)."""
    for operator, pairs in (conditions or {}).items():
        for key, wanted in (pairs or {}).items():
            k = key.lower()
            if k not in KNOWN_KEYS:
                return False, key
            try:
                if not _condition(operator, context.get(k), [str(w) for w in _list(wanted)]):
                    return False, ""
            except KeyError:
                return False, f"{operator} on {key}"
    return True, ""


def policy_refusal(policy: Any, call: Call, resource: str, context: Mapping[str, str | None]) -> str:
    """Why an endpoint (resource-style) policy refuses this request, or "" if it admits it.

    No policy is AWS's default (full access). A statement applies when its principal, action, resource
    and conditions all match; an explicit Deny wins; a condition on a key this module does not model
    counts against the request and is named, so a policy nobody can evaluate never passes silently."""
    doc = _json(policy)
    if not doc:
        return ""
    allowed, undetermined = False, []
    for st in _list(doc.get("Statement")):
        if "NotPrincipal" in st:
            principal_ok = not _principal_matches(st["NotPrincipal"], call.principal)
        else:
            principal_ok = _principal_matches(st.get("Principal", "*"), call.principal)
        if "NotAction" in st:
            action_ok = not any(_glob(str(a), call.action, case=False) for a in _list(st["NotAction"]))
        else:
            action_ok = any(_glob(str(a), call.action, case=False) for a in _list(st.get("Action")))
        if "NotResource" in st:
            resource_ok = not any(_glob(str(r), resource) for r in _list(st["NotResource"]))
        else:
            resource_ok = any(_glob(str(r), resource) for r in _list(st.get("Resource", "*")))
        if not (principal_ok and action_ok and resource_ok):
            continue
        holds, unknown = _conditions_hold(st.get("Condition") or {}, context)
        if unknown:
            undetermined.append(unknown)
        if st.get("Effect") == "Deny" and (holds or unknown):
            return f"an explicit Deny (statement {st.get('Sid') or '?'})" + (
                f", on condition {unknown} which this check cannot tell" if unknown else ""
            )
        if st.get("Effect") == "Allow" and holds:
            allowed = True
    if allowed:
        return ""
    extra = f" (conditions on {', '.join(sorted(set(undetermined)))} are not modelled)" if undetermined else ""
    return f"no statement allows {call.action} on {resource} by {call.principal.label}{extra}"


def role_resources(stack: Stack, role_name: str, action: str) -> tuple[str, ...]:
    """The resources a role's own policies allow an action on: what its unit may call it on.

    Used as the request's resources against endpoint policies; "*" when no policy in the state names
    the action (an AWS managed policy, or a role outside the state)."""
    found: list[str] = []
    for doc in stack.role_policies.get(role_name, []):
        for st in _list(doc.get("Statement")):
            if st.get("Effect", "Allow") != "Allow" or "Action" not in st:
                continue
            if any(_glob(str(a), action, case=False) for a in _list(st["Action"])):
                found += [str(r) for r in _list(st.get("Resource", "*"))]
    return tuple(dict.fromkeys(found)) or ("*",)


# ---- the checks ----------------------------------------------------------------------------------------
def endpoint_service(action: str) -> str | None:
    """The VPC endpoint service name an IAM action's API is served at; None when it is no request."""
    if NOT_NETWORK.match(action):
        return None
    prefix, _, name = action.partition(":")
    if prefix == "sagemaker" and name.lower().startswith("invokeendpoint"):
        return "sagemaker.runtime"
    if prefix == "servicediscovery" and name.lower() == "discoverinstances":
        return "data-servicediscovery"
    return ENDPOINT_SERVICE.get(prefix, prefix)


def describe(stack: Stack, p: Placement) -> str:
    """A placement in words, as problems name it: "private subnets, no NAT", "outside the VPC"."""
    if p.unknown:
        return "placement unknown"
    if not p.vpc_id:
        return "outside the VPC"
    public = any(str((stack.default_route(s) or {}).get("gateway_id") or "").startswith("igw-") for s in p.subnet_ids)
    tier = "public subnets" if public else "private subnets"
    ways = {stack.internet(s, p.public_ip) for s in p.subnet_ids}
    if ways == {"nat"}:
        return f"{tier}, NAT"
    if ways == {"igw"}:
        return f"{tier}, public IP"
    if ways == {""}:
        return f"{tier}, no NAT"
    return f"{tier}, internet from some subnets only"


def _egress_allows(
    stack: Stack, groups: Iterable[str], port: int, dest_groups: Iterable[str], dest_cidrs: list[str]
) -> bool:
    rules = [r for g in groups for r in stack.egress.get(g, []) if r.covers(port)]
    return _admits(rules, set(dest_groups), dest_cidrs)


def _ingress_allows(
    stack: Stack, groups: Iterable[str], port: int, src_groups: Iterable[str], src_cidrs: list[str]
) -> bool:
    rules = [r for g in groups for r in stack.ingress.get(g, []) if r.covers(port)]
    return _admits(rules, set(src_groups), src_cidrs)


def _admits(rules: list[Rule], peer_groups: set[str], peer_cidrs: list[str]) -> bool:
    """Rules admit a peer when one names a group the peer is in, or every network the peer may have
    an address in lies inside some rule's CIDR."""
    if any(r.group and r.group in peer_groups for r in rules):
        return True
    if not peer_cidrs:
        return False
    nets = [ipaddress.ip_network(c, strict=False) for r in rules for c in r.cidrs]
    return all(any(_within(p, n) for n in nets) for p in peer_cidrs)


def _within(peer: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        p = ipaddress.ip_network(peer, strict=False)
    except ValueError:
        return False
    return p.version == net.version and p.subnet_of(net)  # type: ignore[arg-type]


def _endpoints(stack: Stack, vpc: str, service: str) -> list[dict[str, Any]]:
    suffix = f".{service}"
    return [e for e in stack.endpoints if e.get("vpc_id") == vpc and str(e.get("service_name", "")).endswith(suffix)]


def _context(stack: Stack, call: Call, resource: str, vpc: str, endpoint: Mapping[str, Any]) -> dict[str, str | None]:
    account: str | None
    if resource == "*":
        account = call.principal.account
    elif resource.startswith("arn:aws:s3:::"):
        bucket = resource[len("arn:aws:s3:::") :].split("/")[0]
        account = stack.account_id if bucket in stack.buckets else None
    else:
        parts = resource.split(":")
        account = parts[4] if len(parts) > 4 and parts[4] else None
    return {
        "aws:principalaccount": call.principal.account,
        "aws:principalarn": call.principal.arn,
        "aws:sourcevpc": vpc,
        "aws:sourcevpce": str(endpoint.get("id") or ""),
        "aws:resourceaccount": account,
        "s3:resourceaccount": account,
        "aws:securetransport": "true",
        "aws:requestedregion": stack.region,
    }


def _through_endpoint(stack: Stack, unit: Unit, subnet: str, call: Call, service: str) -> str | None:
    """Why the call fails through the VPC endpoint that carries it from this subnet; "" if it gets
    through; None if no endpoint carries it (the route decides)."""
    p = unit.placement
    vpc = str(p.vpc_id)
    candidates = _endpoints(stack, vpc, service)
    rtb = stack.route_table(subnet)
    gateway = next(
        (e for e in candidates if e.get("vpc_endpoint_type") == "Gateway" and rtb in e["route_table_ids"]), None
    )
    interface = next(
        (
            e
            for e in candidates
            if e.get("vpc_endpoint_type", "Interface") == "Interface" and e.get("private_dns_enabled")
        ),
        None,
    )
    endpoint = gateway or interface
    if endpoint is None:
        return None
    where = f"the {service} {'gateway' if gateway else 'interface'} endpoint {endpoint.get('id')}"
    if gateway:
        prefix = str(endpoint.get("prefix_list_id") or "")
        rules = [r for g in p.security_group_ids for r in stack.egress.get(g, []) if r.covers(HTTPS)]
        if not any((prefix and r.prefix_list == prefix) or ANYWHERE in r.cidrs for r in rules):
            return (
                f"security groups {', '.join(p.security_group_ids)} allow no egress on 443 to {where} (its prefix list)"
            )
    else:
        vpc_values = stack.vpcs.get(vpc, {})
        if vpc_values and not (vpc_values.get("enable_dns_support", True) and vpc_values.get("enable_dns_hostnames")):
            return f"{where} has private DNS, but the VPC's enable_dns_support/enable_dns_hostnames are off"
        subnets = [s for s in endpoint["subnet_ids"] if stack.subnets.get(s, {}).get("vpc_id") == vpc]
        if not subnets:
            return f"{where} is in no subnet of the VPC"
        groups = endpoint["security_group_ids"]
        if not _egress_allows(stack, p.security_group_ids, HTTPS, groups, stack.cidrs(subnets)):
            return f"security groups {', '.join(p.security_group_ids)} allow no egress on 443 to {where}"
        if not _ingress_allows(stack, groups, HTTPS, p.security_group_ids, stack.cidrs(p.subnet_ids)):
            return (
                f"{where}'s security groups {', '.join(groups)} admit no 443 from the unit's security groups or subnets"
            )
    for resource in call.resources:
        refusal = policy_refusal(endpoint.get("policy"), call, resource, _context(stack, call, resource, vpc, endpoint))
        if refusal:
            return f"{where}'s policy refuses it: {refusal}"
    return ""


def _aws_call_problem(stack: Stack, unit: Unit, call: Call) -> str:
    """What stops an AWS API request from the unit's network ("" if nothing)."""
    p = unit.placement
    if not p.vpc_id:
        return ""
    service = call.service or endpoint_service(call.action) or ""
    failures: dict[str, list[str]] = {}
    for subnet in p.subnet_ids:
        why = None if service == "internet" else _through_endpoint(stack, unit, subnet, call, service)
        if why is None:
            way = stack.internet(subnet, p.public_ip)
            if not way:
                if service == "internet":
                    why = "no route to the internet (no NAT gateway, no public IP), and no VPC endpoint serves it"
                else:
                    others = [e for e in _endpoints(stack, str(p.vpc_id), service)]
                    why = f"no {service} VPC endpoint" + (
                        " carries it from this subnet (" + ", ".join(str(e.get("id")) for e in others) + " does not)"
                        if others
                        else ""
                    )
                    why += " and no NAT gateway"
            elif not _egress_allows(stack, p.security_group_ids, HTTPS, (), [ANYWHERE]):
                why = f"security groups {', '.join(p.security_group_ids)} allow no egress on 443 to the internet"
            else:
                why = ""
        if why:
            failures.setdefault(why, []).append(subnet)
    return _merge(failures, p)


def _merge(failures: Mapping[str, list[str]], p: Placement) -> str:
    parts = []
    for why, subnets in failures.items():
        parts.append(why if len(subnets) == len(p.subnet_ids) else f"{why} (from {', '.join(subnets)})")
    return "; ".join(parts)


def _resolve(entry: str, unit: Unit) -> tuple[str, str, int | None] | str:
    """(scheme, host, port) of an internal-endpoint entry, or why it cannot be read."""
    text = entry
    if entry.startswith("env:"):
        name = entry[4:]
        if name not in unit.environment:
            return f"the unit's environment has no {name}"
        text = unit.environment[name]
    missing = [v for v in re.findall(r"\$\{(\w+)\}", text) if v not in unit.environment]
    if missing:
        return f"the unit's environment has no {', '.join(missing)}"
    text = re.sub(r"\$\{(\w+)\}", lambda m: unit.environment[m.group(1)], text)
    if "://" not in text:
        return f"{text!r} is not a URL"
    parts = urlsplit(text)
    if not parts.hostname:
        return f"{text!r} has no host"
    return parts.scheme, parts.hostname.lower(), parts.port or DEFAULT_PORTS.get(parts.scheme)


def _internal_problem(stack: Stack, unit: Unit, host: str, port: int | None) -> str:
    """What stops a connection from the unit to a host the stack serves ("" if nothing)."""
    p = unit.placement
    target = stack.names.get(host)
    if target is None:
        if not p.vpc_id:
            return ""
        stuck = [s for s in p.subnet_ids if not stack.internet(s, p.public_ip)]
        return (
            ""
            if not stuck
            else _merge({f"{host} is not served by the stack and there is no route to the internet": stuck}, p)
        )
    if port is None:
        return f"no port for {host}"
    if target.ports is not None and port not in target.ports:
        return f"{target.name} does not listen on {port} (it serves {', '.join(map(str, sorted(target.ports)))})"
    if target.private_vpc:
        if not p.vpc_id:
            return f"{host} is a private {target.kind} in {target.private_vpc}: unreachable from outside the VPC"
        if p.vpc_id != target.private_vpc:
            return f"{host} resolves only in {target.private_vpc}, not in the unit's {p.vpc_id}"
        if target.kind == "Cloud Map name" and not stack.vpcs.get(p.vpc_id, {}).get("enable_dns_support", True):
            return f"the VPC's DNS (enable_dns_support) is off: {host} does not resolve"
        if not _egress_allows(
            stack, p.security_group_ids, port, target.security_group_ids, stack.cidrs(target.subnet_ids)
        ):
            return f"security groups {', '.join(p.security_group_ids)} allow no egress on {port} to {target.name}"
        if not _ingress_allows(stack, target.security_group_ids, port, p.security_group_ids, stack.cidrs(p.subnet_ids)):
            groups = ", ".join(target.security_group_ids)
            return (
                f"{target.name}'s security groups {groups} admit no {port} from the unit's security groups or subnets"
            )
        return _forwarding_problem(stack, target, port)
    # A public name: the unit goes out through the internet, and arrives from a public address.
    if p.vpc_id:
        failures: dict[str, list[str]] = {}
        for subnet in p.subnet_ids:
            way = stack.internet(subnet, p.public_ip)
            if not way:
                failures.setdefault(
                    f"{host} is an {target.kind} (public addresses): no NAT gateway or public IP", []
                ).append(subnet)
            elif not _egress_allows(stack, p.security_group_ids, port, (), [ANYWHERE]):
                failures.setdefault(
                    f"security groups {', '.join(p.security_group_ids)} allow no egress on {port} to the internet", []
                ).append(subnet)
            else:
                sources = [f"{ip}/32" for ip in stack.nat_public_ips(subnet)] if way == "nat" else []
                if not _ingress_allows(stack, target.security_group_ids, port, (), sources or [ANYWHERE]):
                    failures.setdefault(f"{target.name} admits no {port} from the unit's public address", []).append(
                        subnet
                    )
        if failures:
            return _merge(failures, p)
    elif not _ingress_allows(stack, target.security_group_ids, port, (), [ANYWHERE]):
        return f"{target.name} admits no {port} from the internet (a unit outside the VPC has no fixed address)"
    return _forwarding_problem(stack, target, port)


def _forwarding_problem(stack: Stack, target: Target, port: int) -> str:
    """A load balancer's listener must forward somewhere its security groups let it reach."""
    if not target.listener_groups:
        return ""
    groups = target.listener_groups.get(port)
    if groups is None:
        return f"{target.name} has no listener on {port}"
    for svc in stack.services:
        for lb in _list(svc.get("load_balancer")):
            if lb.get("target_group_arn") not in groups:
                continue
            backend = stack.service_target(svc)
            tport = int(lb.get("container_port") or 0)
            if backend is None:
                continue
            if not _egress_allows(
                stack, target.security_group_ids, tport, backend.security_group_ids, stack.cidrs(backend.subnet_ids)
            ):
                return f"{target.name}'s security groups allow no egress on {tport} to {backend.name}"
            if not _ingress_allows(
                stack, backend.security_group_ids, tport, target.security_group_ids, stack.cidrs(target.subnet_ids)
            ):
                return f"{backend.name}'s security groups admit no {tport} from {target.name}"
    return ""


def calls_for(unit: Unit, calls: Mapping[str, Iterable[str]]) -> set[str] | None:
    """The unit's calls: its own key first, else its role's; None when `calls` says nothing of it."""
    for key in (unit.key, unit.role_name):
        if key and key in calls:
            return {str(c) for c in calls[key]}
    return None


def check(state: Mapping[str, Any], calls: Mapping[str, Iterable[str]]) -> list[Problem]:
    """Every call of every unit that would not get through in AWS, as the state places the units.

    `calls`: role name (or `Unit.key`) -> IAM actions and internal endpoints (see the module docstring).
    Units without an entry are checked only for what AWS fetches on their behalf; `unchecked()` names them."""
    stack = Stack.read(state)
    problems: list[Problem] = []
    for unit in units(stack):
        where = describe(stack, unit.placement)
        if unit.placement.unknown:
            problems.append(Problem(unit.name, where, "(placement)", unit.placement.unknown))
            continue
        if unit.placement.vpc_id and not unit.placement.security_group_ids:
            problems.append(Problem(unit.name, where, "(placement)", "no security group: nothing leaves the unit"))
            continue
        for call in unit.on_behalf:
            why = _aws_call_problem(stack, unit, call)
            if why:
                label = f"{call.why}: {call.action} on {', '.join(call.resources)}" if call.why else call.action
                problems.append(Problem(unit.name, where, label, why))
        ignore = SERVICE_SIDE.get(unit.kind)
        for entry in sorted(calls_for(unit, calls) or ()):
            if ACTION.match(entry):
                if endpoint_service(entry) is None or (ignore is not None and ignore.match(entry)):
                    continue
                resources = role_resources(stack, unit.role_name, entry)
                call = Call(entry, resources, _role_principal(stack, unit.role_arn))
                why = _aws_call_problem(stack, unit, call)
            else:
                resolved = _resolve(entry, unit)
                if isinstance(resolved, str):
                    problems.append(Problem(unit.name, where, entry, resolved))
                    continue
                scheme, host, port = resolved
                shown = f"{entry} ({scheme}://{host}:{port})" if entry.startswith("env:") or "${" in entry else entry
                why = _internal_problem(stack, unit, host, port)
                entry = shown
            if why:
                problems.append(Problem(unit.name, where, entry, why))
    return problems


def unchecked(state: Mapping[str, Any], calls: Mapping[str, Iterable[str]]) -> list[str]:
    """Units whose own calls `calls` does not give (only their on-behalf fetches were checked)."""
    return [u.name for u in units(state) if calls_for(u, calls) is None]


def notes(state: Mapping[str, Any]) -> list[str]:
    """What in this state the check does not model (network ACLs)."""
    stack = Stack.read(state)
    return ["network ACLs are in the state but not evaluated (AWS's default ACL admits all)"] if stack.nacls else []


# ---- the calls file -----------------------------------------------------------------------------------
def load_calls(path: str | Path) -> dict[str, set[str]]:
    """Read a calls file: `{"<role or unit key>": ["s3:GetObject", "env:MLFLOW_TRACKING_URI", ...]}`,
    or the emulator's per-role usage report (`{"<role>": {"allowed": {action: count}, "denied": {...}}}`),
    whose allowed and denied actions both count as calls the unit made."""
    return calls_from(json.loads(Path(path).read_text()))


def calls_from(document: Mapping[str, Any]) -> dict[str, set[str]]:
    """Normalise either calls shape (see `load_calls`) to role/unit key -> set of entries."""
    out: dict[str, set[str]] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            out[key] = {*map(str, value.get("allowed", {}) or {}), *map(str, value.get("denied", {}) or {})}
            out[key] |= {str(c) for c in value.get("endpoints", []) or []}
        else:
            out[key] = {str(c) for c in _list(value)}
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.infra.reachability STATE.json [CALLS.json | --derived]`: print the problems, exit 1 if any.

    STATE.json is `tofu show -json` of an applied state; CALLS.json a calls file (see load_calls);
    --derived uses the map tests/infra/test_reachability.py derives from the code; neither checks only
    what AWS fetches on the units' behalf."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("state", help="`tofu show -json` of the applied state")
    parser.add_argument("calls", nargs="?", help="calls file (see load_calls)")
    parser.add_argument("--derived", action="store_true", help="the calls derived from the code (the tests' map)")
    args = parser.parse_args(argv)
    state = json.loads(Path(args.state).read_text())
    calls: dict[str, set[str]] = {}
    if args.calls:
        calls = load_calls(args.calls)
    elif args.derived:
        from tests.infra.test_reachability import derived_calls

        calls = derived_calls(state)
    problems = check(state, calls)
    for problem in problems:
        print(problem)
    for name in unchecked(state, calls):
        print(f"(not checked: no calls for {name})")
    for note in notes(state):
        print(f"(note: {note})")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
