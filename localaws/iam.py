"""IAM enforcement for the embedded AWS: every request the stack makes is authorised as AWS would.

moto's own access control (INITIAL_NO_AUTH_ACTION_COUNT) checks actions against the resource "*"
only, ignores conditions and permissions boundaries, and cannot tell a Lambda from the person who
applied the stack. This module replaces it while `LocalAWS(enforce_iam=True)` runs:

- **Who is calling.** The person deploying (tofu apply, the demo's driver) uses the administrator keys
  (`ADMIN_KEYS`) and may do anything. Everything the stack runs calls with credentials from
  `sts:AssumeRole` of the role Terraform gave it (`Enforcer.credentials`, which first checks the role
  trusts the service principal, as the Lambda, ECS and SageMaker services do). Step Functions' own
  service integrations (moto's interpreter signs with the key "ak") act as the state machine's role.
- **What is asked.** Each request becomes an IAM action, the resource ARNs it touches (`resources`,
  from the request's parameters, per API as the Service Authorization Reference lists them) and the
  condition keys it sets, plus the permissions AWS checks implicitly (iam:PassRole for the roles in a
  task definition or training job, ecs:TagResource / cloudwatch:TagResource for tags on create).
- **The decision.** The role's inline and attached policies, intersected with its permissions
  boundary; an explicit Deny wins; conditions are evaluated (a key this module does not set makes
  the condition false, as a missing key does in AWS, and the refusal says so). Multivalued keys
  (dynamodb:LeadingKeys) take the set operators ForAllValues / ForAnyValue as in AWS; a key AWS sets
  for a request but this module cannot tell (LeadingKeys of a Query or a batch) fails every
  condition on it, so the emulator is never more lenient than AWS.
- **Answers that depend on permissions.** GetObject of a missing key is NoSuchKey only with
  s3:ListBucket on the bucket (checked with s3:prefix = the key), AccessDenied otherwise, as in AWS.

A refusal is AWS's AccessDenied naming the principal, the action and the resource; every decision is
recorded per role (`Enforcer.usage`), which the least-privilege report and the reachability check read.
FENCED: test and demo tool only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

log = logging.getLogger("localaws.iam")
ADMIN_KEYS = frozenset({"localaws", "testing"})
SFN_KEY = "ak"  # moto's Step Functions interpreter signs its service integrations with this key


# A condition key's value in a request: one string, a set of strings (a multivalued key such as
# dynamodb:LeadingKeys), or UNTOLD: AWS sets the key for this request but localaws cannot tell its
# value, so every condition on it fails (never more lenient than AWS).
ContextValue = str | tuple[str, ...] | None
UNTOLD: ContextValue = None


@dataclass(frozen=True)
class Check:
    """One authorisation AWS performs for a request: an action on a resource with its context."""

    action: str
    resource: str = "*"
    context: tuple[tuple[str, ContextValue], ...] = ()


@dataclass
class Usage:
    allowed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    denied: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


class Denied(Exception):
    def __init__(self, principal: str, check: Check, why: str) -> None:
        self.principal, self.check, self.why = principal, check, why
        super().__init__(
            f"User: {principal} is not authorized to perform: {check.action} on resource: {check.resource} "
            f"because {why}"
        )


# ---- policy evaluation ------------------------------------------------------------------------
def _as_list(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, *, case: bool) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _condition_holds(
    operator: str, key: str, wanted: list[str], context: dict[str, ContextValue], missing: set[str]
) -> bool:
    qualifier, _, base = operator.rpartition(":")
    if qualifier not in ("", "ForAllValues", "ForAnyValue"):
        missing.add(f"{operator} (operator)")
        return False
    if key in context and context[key] is UNTOLD:
        missing.add(f"{key} (set by AWS for this request, not modelled by localaws)")
        return False
    value = context.get(key)
    if qualifier:
        # Set operators: AWS compares each value of the request's set. ForAllValues holds when every
        # value matches, and so on an absent key (the empty set); ForAnyValue needs one match.
        if key not in context:
            return qualifier == "ForAllValues"
        values = (value,) if isinstance(value, str) else tuple(value or ())
        hits = [_condition_holds(base, key, wanted, {key: v}, missing) for v in values]
        return all(hits) if qualifier == "ForAllValues" else any(hits)
    if isinstance(value, tuple):  # a single-valued operator on a multivalued key never holds
        missing.add(f"{operator} on the multivalued {key} (needs ForAllValues or ForAnyValue)")
        return False
    if_exists = operator.endswith("IfExists")
    op = operator.removesuffix("IfExists")
    if op == "Null":
        return (key not in context) == (str(wanted[0]).lower() == "true")
    if key not in context:
        if if_exists:
            return True
        missing.add(key)
        return op.startswith(("StringNot", "ArnNot"))  # a negated operator holds on an absent key
    actual = str(value)
    if op in ("StringEquals", "ArnEquals"):
        return actual in wanted
    if op == "StringEqualsIgnoreCase":
        return actual.lower() in (w.lower() for w in wanted)
    if op in ("StringNotEquals", "ArnNotEquals"):
        return actual not in wanted
    if op in ("StringLike", "ArnLike"):
        return any(_glob(w, actual, case=True) for w in wanted)
    if op in ("StringNotLike", "ArnNotLike"):
        return not any(_glob(w, actual, case=True) for w in wanted)
    if op == "Bool":
        return actual.lower() in (str(w).lower() for w in wanted)
    missing.add(f"{operator} (operator)")
    return False


def _statement_applies(statement: dict[str, Any], check: Check, missing: set[str]) -> bool:
    if "Action" in statement:
        if not any(_glob(a, check.action, case=False) for a in _as_list(statement["Action"])):
            return False
    elif any(_glob(a, check.action, case=False) for a in _as_list(statement.get("NotAction"))):
        return False
    if "Resource" in statement:
        if not any(_glob(r, check.resource, case=True) for r in _as_list(statement["Resource"])):
            return False
    elif "NotResource" in statement and any(
        _glob(r, check.resource, case=True) for r in _as_list(statement["NotResource"])
    ):
        return False
    context: dict[str, ContextValue] = dict(check.context)
    for operator, pairs in (statement.get("Condition") or {}).items():
        for key, wanted in pairs.items():
            if not _condition_holds(operator, key, [str(w) for w in _as_list(wanted)], context, missing):
                return False
    return True


def evaluate(documents: Iterable[dict[str, Any]], check: Check) -> tuple[str, set[str]]:
    """'Allow', 'Deny' (explicit) or 'Neutral' for `check` under these policy documents."""
    allowed, missing = False, set[str]()
    for document in documents:
        for statement in _as_list(document.get("Statement")):
            if _statement_applies(statement, check, missing):
                if statement.get("Effect") == "Deny":
                    return "Deny", missing
                allowed = True
    return ("Allow" if allowed else "Neutral"), missing


# ---- the enforcer ------------------------------------------------------------------------------
class Enforcer:
    def __init__(self, account_id: str, region: str) -> None:
        self.account_id, self.region = account_id, region
        self.usage: dict[str, Usage] = defaultdict(Usage)
        self._lock = threading.Lock()
        self._credentials: dict[tuple[str, str], dict[str, str]] = {}

    # -- identities
    def _iam(self) -> Any:
        from moto.iam.models import iam_backends

        return iam_backends[self.account_id]["aws"]

    def credentials(self, role_arn: str, service: str, session: str) -> dict[str, str]:
        """Environment credentials for `role_arn` as `service` (e.g. lambda.amazonaws.com) assumes it.

        The role must exist and trust the service, as in AWS, or the unit cannot start."""
        from moto.sts.models import sts_backends

        key = (role_arn, service)
        with self._lock:
            if key in self._credentials:
                return self._credentials[key]
            try:
                role = self._iam().get_role_by_arn(role_arn)
            except Exception as exc:
                raise PermissionError(f"{service} cannot assume {role_arn}: the role does not exist") from exc
            trust = json.loads(role.assume_role_policy_document)
            if not _trusts(trust, service, self.account_id):
                raise PermissionError(f"{service} cannot assume {role_arn}: its trust policy does not name {service}")
            assumed = sts_backends[self.account_id]["aws"].assume_role(
                region_name=self.region,
                role_session_name=session[:64],
                role_arn=role_arn,
                policy="",
                duration=43200,
                external_id="",
            )
            creds = {
                "AWS_ACCESS_KEY_ID": assumed.access_key_id,
                "AWS_SECRET_ACCESS_KEY": assumed.secret_access_key,
                "AWS_SESSION_TOKEN": assumed.session_token,
            }
            self._credentials[key] = creds
            return creds

    def role_of_key(self, access_key_id: str) -> tuple[str, str] | None:
        """(role name, principal ARN) for an assumed-role key; None for an administrator key."""
        if access_key_id in ADMIN_KEYS:
            return None
        if access_key_id == SFN_KEY:
            arn = self.state_machine_role()
            name = arn.rsplit("/", 1)[-1]
            return name, f"arn:aws:sts::{self.account_id}:assumed-role/{name}/states"
        from moto.sts.models import sts_backends

        for assumed in sts_backends[self.account_id]["aws"].assumed_roles:
            if assumed.access_key_id == access_key_id:
                name = assumed.role_arn.rsplit("/", 1)[-1]
                return name, f"arn:aws:sts::{self.account_id}:assumed-role/{name}/{assumed.session_name}"
        raise Denied("unknown", Check("sts:GetCallerIdentity"), f"the access key {access_key_id} does not exist")

    def state_machine_role(self) -> str:
        from moto.stepfunctions.models import stepfunctions_backends
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        roles = {
            sm.roleArn
            for backends in (stepfunctions_backends, stepfunctions_parser_backends)
            for sm in backends[self.account_id][self.region].state_machines
        }
        if len(roles) != 1:
            raise Denied(
                "states", Check("states:*"), f"localaws cannot tell which state machine role signs ({sorted(roles)})"
            )
        return roles.pop()

    def _documents(self, role_name: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        iam = self._iam()
        role = iam.get_role(role_name)
        docs = [json.loads(_text(doc)) for doc in role.policies.values()]
        for policy in role.managed_policies.values():
            docs.append(json.loads(_text(_default_version(policy))))
        boundary = None
        if role.permissions_boundary_arn:
            boundary = json.loads(_text(_default_version(iam.get_policy(role.permissions_boundary_arn))))
        return docs, boundary

    # -- the decision
    def authorize(self, access_key_id: str, checks: list[Check]) -> None:
        who = self.role_of_key(access_key_id)
        if who is None:
            return
        role_name, principal = who
        docs, boundary = self._documents(role_name)
        usage = self.usage[role_name]
        for check in checks:
            decision, missing = evaluate(docs, check)
            why = ""
            if decision == "Allow" and boundary is not None:
                bounded, more = evaluate([boundary], check)
                if bounded != "Allow":
                    decision, missing, why = "Deny", missing | more, "the role's permissions boundary does not allow it"
            if decision != "Allow":
                why = why or (
                    "an explicit deny in an identity-based policy"
                    if decision == "Deny"
                    else f"no identity-based policy allows the {check.action} action"
                )
                if missing:
                    why += f" (condition keys not in the request context: {', '.join(sorted(missing))})"
                with self._lock:
                    usage.denied[check.action].append(check.resource)
                denied = Denied(principal, check, why)
                log.warning("AccessDenied: %s", denied)
                raise denied
            with self._lock:
                usage.allowed[check.action] += 1

    def authorize_role(self, role_arn: str, service: str, checks: list[Check]) -> None:
        """Authorise what a service does with a role on a unit's behalf (image pulls, log streams,
        secrets for an ECS task; the training job's own calls)."""
        self.authorize(self.credentials(role_arn, service, service.split(".")[0])["AWS_ACCESS_KEY_ID"], checks)

    # -- the units' identities
    def function_environment(self, fn: Any) -> dict[str, str]:
        """A Lambda function's credentials: its execution role, assumed by lambda.amazonaws.com."""
        return self.credentials(str(fn.role), "lambda.amazonaws.com", str(fn.function_name))

    def task_environment(self, td: Any, overrides: dict[str, Any] | None = None) -> dict[str, str]:
        """An ECS task's credentials (its task role; none without one), after what the ECS agent does
        with the execution role before the container starts: pull the image, open the log stream,
        read the secrets. A refusal there stops the task as in AWS (CannotPullContainerError,
        ResourceInitializationError), raised as ValueError."""
        service = "ecs-tasks.amazonaws.com"
        execution_role = td.execution_role_arn
        pulls: list[Check] = []
        for definition in td.container_definitions:
            pulls += _image_checks(str(definition.get("image", "")))
            pulls += _log_checks(definition.get("logConfiguration") or {}, self.account_id, self.region)
            pulls += _secret_checks(definition.get("secrets") or [])
        if pulls:
            if not execution_role:
                raise ValueError(f"CannotPullContainerError: {td.arn} has no execution role to pull its image")
            try:
                self.authorize_role(execution_role, service, pulls)
            except (Denied, PermissionError) as exc:
                raise ValueError(f"CannotPullContainerError/ResourceInitializationError: {exc}") from exc
        role = (overrides or {}).get("taskRoleArn") or td.task_role_arn
        if not role:
            return {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": ""}
        try:
            return self.credentials(str(role), service, td.family)
        except PermissionError as exc:
            raise ValueError(str(exc)) from exc

    def training_environment(self, job: dict[str, Any]) -> dict[str, str]:
        """A SageMaker training job's credentials (its RoleArn), after the checks AWS makes: the state
        machine's role may create the job and pass the role; the job's role may pull the image and,
        in VPC mode, create its network interfaces."""
        name = str(job.get("TrainingJobName", "job"))
        resource = f"arn:aws:sagemaker:{self.region}:{self.account_id}:training-job/{name.lower()}"
        role = str(job.get("RoleArn", ""))
        checks = [Check("sagemaker:CreateTrainingJob", resource), *_pass_roles([role], "sagemaker.amazonaws.com")]
        if job.get("Tags"):
            checks.append(Check("sagemaker:AddTags", resource))
        self.authorize_role(self.state_machine_role(), "states.amazonaws.com", checks)
        image = str((job.get("AlgorithmSpecification") or {}).get("TrainingImage", ""))
        job_checks = _image_checks(image)
        if job.get("VpcConfig"):
            job_checks += self._vpc_attachment_checks(job["VpcConfig"])
        if job_checks:
            self.authorize_role(role, "sagemaker.amazonaws.com", job_checks)
        return self.credentials(role, "sagemaker.amazonaws.com", name)

    def _vpc_attachment_checks(self, config: dict[str, Any]) -> list[Check]:
        """What SageMaker does with the job's role to put it in the VPC: describe the network, then
        create its network interfaces (authorised on every subnet, security group and the interface,
        as EC2 does) and manage them (with the interface's VPC as ec2:Vpc)."""
        from moto.ec2.models import ec2_backends

        ec2 = f"arn:aws:ec2:{self.region}:{self.account_id}:{{}}"
        subnets = [str(s) for s in config.get("Subnets") or []]
        groups = [str(g) for g in config.get("SecurityGroupIds") or []]
        vpc = ""
        if subnets:
            vpc = ec2.format(f"vpc/{ec2_backends[self.account_id][self.region].get_subnet(subnets[0]).vpc_id}")
        eni = ec2.format("network-interface/eni-localaws")
        checks = [Check(f"ec2:{a}") for a in SAGEMAKER_VPC_ACTIONS if a.startswith("Describe")]
        for resource in [
            *(ec2.format(f"subnet/{s}") for s in subnets),
            *(ec2.format(f"security-group/{g}") for g in groups),
            eni,
        ]:
            checks.append(Check("ec2:CreateNetworkInterface", resource, (("ec2:Vpc", vpc),)))
        for action in SAGEMAKER_VPC_ACTIONS:
            if (
                not action.startswith(("Describe", "CreateNetworkInterface"))
                or action == "CreateNetworkInterfacePermission"
            ):
                checks.append(Check(f"ec2:{action}", eni, (("ec2:Vpc", vpc),)))
        return checks

    def report(self) -> dict[str, Any]:
        """Per role of the stack: the action patterns its policies grant, the actions it was allowed
        (with counts) and the ones refused (with resources)."""
        iam = self._iam()
        roles = {role.name for role in iam.roles.values() if not role.name.startswith("localaws-")}
        out: dict[str, Any] = {}
        for name in sorted(roles | set(self.usage)):
            try:
                docs, _ = self._documents(name)
            except Exception:
                docs = []
            granted = sorted(
                {
                    action
                    for d in docs
                    for s in _as_list(d.get("Statement"))
                    if s.get("Effect") == "Allow"
                    for action in _as_list(s.get("Action"))
                }
            )
            with self._lock:
                usage = self.usage.get(name) or Usage()
                out[name] = {
                    "granted": granted,
                    "allowed": dict(sorted(usage.allowed.items())),
                    "denied": {a: sorted(set(r)) for a, r in usage.denied.items()},
                }
        return out


def _text(doc: Any) -> str:
    if isinstance(doc, str):
        return unquote(doc) if doc.startswith("%7B") else doc
    return json.dumps(doc)


def _default_version(policy: Any) -> Any:
    return next(v.document for v in policy.versions if v.is_default)


def _trusts(trust: dict[str, Any], service: str, account_id: str) -> bool:
    for statement in _as_list(trust.get("Statement")):
        if statement.get("Effect") != "Allow" or "sts:AssumeRole" not in _as_list(statement.get("Action")):
            continue
        services = _as_list((statement.get("Principal") or {}).get("Service"))
        if service in services:
            context: dict[str, ContextValue] = {"aws:SourceAccount": account_id}
            missing: set[str] = set()
            if all(
                _condition_holds(op, k, [str(w) for w in _as_list(v)], context, missing)
                for op, pairs in (statement.get("Condition") or {}).items()
                for k, v in pairs.items()
            ):
                return True
    return False


# What SageMaker does with a training job's role to attach it to the VPC (VpcConfig).
SAGEMAKER_VPC_ACTIONS = (
    "CreateNetworkInterface",
    "CreateNetworkInterfacePermission",
    "DeleteNetworkInterface",
    "DeleteNetworkInterfacePermission",
    "DescribeNetworkInterfaces",
    "DescribeVpcs",
    "DescribeDhcpOptions",
    "DescribeSubnets",
    "DescribeSecurityGroups",
)

# DynamoDB calls on one item: the parameter holding the item's key (dynamodb:LeadingKeys is its
# partition key value). A Scan or a table-level call sets no LeadingKeys in AWS either.
DYNAMODB_ITEM_ACTIONS = {"GetItem": "Key", "DeleteItem": "Key", "UpdateItem": "Key", "PutItem": "Item"}

# The parameter naming the resource of each Step Functions API the stack calls.
STATES_RESOURCE_PARAM = {
    "StartExecution": "stateMachineArn",
    "ListExecutions": "stateMachineArn",
    "DescribeStateMachine": "stateMachineArn",
    "DescribeExecution": "executionArn",
    "StopExecution": "executionArn",
    "GetExecutionHistory": "executionArn",
}


# ---- requests -> checks -------------------------------------------------------------------------
def _params(response: Any) -> dict[str, Any]:
    """The request's parameters, whatever its protocol (JSON body, query string or form)."""
    body = getattr(response, "raw_body", None) or response.body
    if isinstance(body, bytes):
        try:
            body = body.decode()
        except UnicodeDecodeError:
            body = ""
    if body and body.lstrip().startswith("{"):
        try:
            return dict(json.loads(body))
        except ValueError:
            pass
    out: dict[str, Any] = {}
    for k, v in (response.querystring or {}).items():
        out[k] = v[0] if isinstance(v, list) and len(v) == 1 else v
    return out


def _members(params: dict[str, Any], prefix: str) -> list[str]:
    """Query-protocol lists: Prefix.member.1, Prefix.member.2, ..."""
    items = [(k, v) for k, v in params.items() if k.startswith(prefix + ".member.")]
    return [str(v) for _, v in sorted(items, key=lambda kv: int(kv[0].rsplit(".", 1)[-1]))]


def checks_for(service: str, action: str, params: dict[str, Any], path: str, account: str, region: str) -> list[Check]:
    """The authorisations AWS makes for one API call (the ones the stack's units use are modelled;
    any other action is checked against the resource "*")."""
    arn = f"arn:aws:{{}}:{region}:{account}:{{}}"

    def one(resource: str = "*", **context: ContextValue) -> list[Check]:
        return [Check(f"{service}:{action}", resource, tuple(sorted(context.items())))]

    if service == "dynamodb" and "TableName" in params:
        table = arn.format("dynamodb", f"table/{params['TableName']}")
        if action in DYNAMODB_ITEM_ACTIONS:
            keys = _leading_keys(account, region, str(params["TableName"]), params.get(DYNAMODB_ITEM_ACTIONS[action]))
            return one(table, **{"dynamodb:LeadingKeys": keys})
        if action == "Query":  # the partition key is in KeyConditionExpression: not modelled
            return one(table, **{"dynamodb:LeadingKeys": UNTOLD})
        return one(table)
    if service == "sns" and action == "Publish":
        return one(str(params.get("TopicArn") or params.get("TargetArn") or "*"))
    if service == "states":
        key = STATES_RESOURCE_PARAM.get(action)
        return one(str(params.get(key, "*")) if key else "*")
    if service == "lambda" and action in ("Invoke", "InvokeAsync", "InvokeFunction"):
        match = re.search(r"/functions/([^/]+)/invo", path)
        name = unquote(match.group(1)) if match else "*"
        fn = name if name.startswith("arn:") else arn.format("lambda", f"function:{name}")
        return [Check("lambda:InvokeFunction", fn)]
    if service == "cloudwatch":
        if action == "PutMetricData":
            return one("*", **{"cloudwatch:namespace": str(params.get("Namespace", ""))})
        if action == "PutMetricAlarm":
            alarm = arn.format("cloudwatch", f"alarm:{params.get('AlarmName')}")
            tagged = params.get("Tags") or _members(params, "Tags")
            return one(alarm) + ([Check("cloudwatch:TagResource", alarm)] if tagged else [])
        if action == "DeleteAlarms":
            names = params.get("AlarmNames") or _members(params, "AlarmNames")
            return [Check("cloudwatch:DeleteAlarms", arn.format("cloudwatch", f"alarm:{n}")) for n in _as_list(names)]
        return one()
    if service == "elasticloadbalancing":
        if action == "ModifyListener":
            return one(str(params.get("ListenerArn", "*")))
        if action in ("AddTags", "RemoveTags"):
            return [Check(f"elasticloadbalancing:{action}", r) for r in _members(params, "ResourceArns")]
        return one()
    if service == "ecs":
        return _ecs_checks(action, params, arn, account, region)
    if service == "secretsmanager" and "SecretId" in params:
        return one(_secret_arn(str(params["SecretId"]), account, region))
    return one()


def _secret_arn(secret_id: str, account: str, region: str) -> str:
    """The full ARN AWS authorises a secret request on, whether the caller named the secret by name,
    by partial ARN or by full ARN. An unknown secret is checked as the ARN it would have (AWS answers
    AccessDenied before ResourceNotFound to a caller without the permission)."""
    from moto.secretsmanager.models import secretsmanager_backends

    backend: Any = secretsmanager_backends[account][region]
    try:
        return str(backend.describe_secret(secret_id).arn)
    except Exception:
        named = f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}"
        return secret_id if secret_id.startswith("arn:") else named


def _leading_keys(account: str, region: str, table_name: str, item: Any) -> ContextValue:
    """dynamodb:LeadingKeys of a one-item call: its partition key value (a one-value set), UNTOLD
    when the table or the key attribute cannot be read."""
    from moto.dynamodb.models import dynamodb_backends

    try:
        hash_key = dynamodb_backends[account][region].get_table(table_name).hash_key_attr
        (value,) = dict(item[hash_key]).values()
    except Exception:
        return UNTOLD
    return (str(value),)


def s3_checks(action: str, resource: str, query: dict[str, Any], account: str) -> list[Check]:
    """The authorisations of one S3 request (moto names the action as IAM does: HEAD of a key is
    GetObject, ListObjects(V2) is ListBucket).

    ListBucket carries s3:prefix (the request's prefix, "" without one). GetObject of a key that does
    not exist also needs s3:ListBucket on the bucket: AWS answers NoSuchKey only to a caller who may
    list, AccessDenied to anyone else (the check carries the key as s3:prefix, so a ListBucket limited
    to a prefix covers the keys under it)."""
    checks = [Check(f"s3:{action}", resource)]
    bucket_name, _, key_name = resource.split(":::", 1)[-1].partition("/")
    if action in ("ListBucket", "ListBucketVersions") and not key_name:
        prefix = _as_list(query.get("prefix"))
        checks = [Check(f"s3:{action}", resource, (("s3:prefix", str(prefix[0]) if prefix else ""),))]
    elif action == "GetObject" and key_name and _missing_object(account, bucket_name, key_name):
        checks.append(Check("s3:ListBucket", f"arn:aws:s3:::{bucket_name}", (("s3:prefix", key_name),)))
    return checks


def _missing_object(account: str, bucket_name: str, key_name: str) -> bool:
    from moto.s3.models import s3_backends

    backend = s3_backends[account]["aws"]
    try:
        backend.get_bucket(bucket_name)
    except Exception:
        return False  # no bucket: the API answers NoSuchBucket
    try:
        return backend.get_object(bucket_name, key_name) is None
    except Exception:
        return True


def _ecs_checks(action: str, params: dict[str, Any], arn: str, account: str, region: str) -> list[Check]:
    cluster = str(params.get("cluster") or "default").rsplit("/", 1)[-1]
    cluster_arn = arn.format("ecs", f"cluster/{cluster}")
    if action in ("UpdateService", "DescribeServices"):
        services = _as_list(params.get("service") or params.get("services"))
        return [
            Check(f"ecs:{action}", s if str(s).startswith("arn:") else arn.format("ecs", f"service/{cluster}/{s}"))
            for s in services
        ]
    if action == "RegisterTaskDefinition":
        family = str(params.get("family"))
        checks = [Check("ecs:RegisterTaskDefinition")]
        if params.get("tags"):
            resource = arn.format("ecs", f"task-definition/{family}:*")
            checks.append(Check("ecs:TagResource", resource, (("ecs:CreateAction", "RegisterTaskDefinition"),)))
        checks += _pass_roles([params.get("taskRoleArn"), params.get("executionRoleArn")], "ecs-tasks.amazonaws.com")
        return checks
    if action in ("DescribeTasks", "StopTask"):
        tasks = _as_list(params.get("tasks") or params.get("task"))
        return [
            Check(f"ecs:{action}", t if str(t).startswith("arn:") else arn.format("ecs", f"task/{cluster}/{t}"),
                  (("ecs:cluster", cluster_arn),))
            for t in tasks
        ]  # fmt: skip
    if action == "RunTask":
        td = str(params.get("taskDefinition"))
        resource = td if td.startswith("arn:") else arn.format("ecs", f"task-definition/{td}")
        if resource.count(":") == 5:  # family without a revision: the latest
            resource += ":" + str(_latest_revision(account, region, resource.rsplit("/", 1)[-1]))
        checks = [Check("ecs:RunTask", resource, (("ecs:cluster", cluster_arn),))]
        definition = _task_definition(account, region, resource)
        if definition is not None:
            overrides = params.get("overrides") or {}
            roles = [overrides.get("taskRoleArn") or definition.task_role_arn, definition.execution_role_arn]
            checks += _pass_roles(roles, "ecs-tasks.amazonaws.com")
        return checks
    return [Check(f"ecs:{action}")]


def _image_checks(image: str) -> list[Check]:
    match = re.match(r"(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/([^:@]+)", image)
    if not match:
        return []
    account, region, repository = match.groups()
    repo = f"arn:aws:ecr:{region}:{account}:repository/{repository}"
    return [
        Check("ecr:GetAuthorizationToken"),
        Check("ecr:BatchGetImage", repo),
        Check("ecr:GetDownloadUrlForLayer", repo),
    ]


def _log_checks(config: dict[str, Any], account: str, default_region: str) -> list[Check]:
    if config.get("logDriver") != "awslogs":
        return []
    options = config.get("options") or {}
    group = options.get("awslogs-group", "")
    region = options.get("awslogs-region", default_region)
    stream = f"arn:aws:logs:{region}:{account}:log-group:{group}:log-stream:*"
    return [Check("logs:CreateLogStream", stream), Check("logs:PutLogEvents", stream)]


def _secret_checks(secrets: list[dict[str, str]]) -> list[Check]:
    checks = []
    for item in secrets:
        ref = item.get("valueFrom", "")
        if ":ssm:" in ref:
            checks.append(Check("ssm:GetParameters", ref))
        elif ":secretsmanager:" in ref:
            arn = ":".join(ref.split(":")[:7])
            checks.append(Check("secretsmanager:GetSecretValue", arn))
            region, account = arn.split(":")[3], arn.split(":")[4]
            with contextlib.suppress(Exception):  # a missing secret stops the task in ecs.secrets, with AWS's message
                keys = _secret_keys(arn, account, region)
                checks += [Check(f"kms:{a}", _key_arn(k, account, region)) for a, k in keys]
    return checks


def _pass_roles(roles: list[Any], service: str) -> list[Check]:
    return [Check("iam:PassRole", str(r), (("iam:PassedToService", service),)) for r in roles if r]


def _task_definition(account: str, region: str, arn: str) -> Any:
    from moto.ecs.models import ecs_backends

    try:
        return ecs_backends[account][region].describe_task_definition(arn)
    except Exception:
        return None


def _latest_revision(account: str, region: str, family: str) -> int:
    from moto.ecs.models import ecs_backends

    revisions = ecs_backends[account][region].task_definitions.get(family, {})
    return max(revisions) if revisions else 1


# ---- KMS on the caller's behalf -----------------------------------------------------------------
def kms_checks(
    service: str, action: str, params: dict[str, Any], resource: str, account: str, region: str
) -> list[Check]:
    """What AWS asks KMS with the caller's own permissions when the data sits under a customer managed
    key: S3 objects in an SSE-KMS bucket, an encrypted SNS topic, a state machine with a CMK. A role
    that may write the object but not use the key gets AccessDenied in AWS, so it does here."""
    keys: list[tuple[str, str]] = []  # (kms action, key id)
    try:
        if service == "s3" and action in ("PutObject", "GetObject"):
            keys += _s3_keys(action, resource, account)
        elif service == "sns" and action == "Publish":
            from moto.sns.models import sns_backends

            topic = sns_backends[account][region].get_topic(str(params.get("TopicArn")))
            if topic.kms_master_key_id:
                keys += [("GenerateDataKey", topic.kms_master_key_id), ("Decrypt", topic.kms_master_key_id)]
        elif service == "states" and action in ("StartExecution", "DescribeExecution"):
            keys += _state_machine_keys(action, params, account, region)
        elif service == "secretsmanager" and action == "GetSecretValue":
            keys += _secret_keys(str(params.get("SecretId", "")), account, region)
    except Exception:  # the resource does not exist: the API itself answers that
        return []
    return [Check(f"kms:{a}", _key_arn(k, account, region)) for a, k in keys]


def _s3_keys(action: str, resource: str, account: str) -> list[tuple[str, str]]:
    from moto.s3.models import s3_backends

    bucket_name, _, key_name = resource.split(":::", 1)[1].partition("/")
    backend = s3_backends[account]["aws"]
    if action == "GetObject":
        obj = backend.get_object(bucket_name, key_name)
        return [("Decrypt", obj.kms_key_id)] if obj is not None and obj.kms_key_id else []
    rules = (backend.get_bucket(bucket_name).encryption or {}).get("Rule", [])
    for rule in rules if isinstance(rules, list) else [rules]:
        default = rule.get("ApplyServerSideEncryptionByDefault") or {}
        if default.get("SSEAlgorithm") == "aws:kms" and default.get("KMSMasterKeyID"):
            return [("GenerateDataKey", default["KMSMasterKeyID"])]
    return []


def _state_machine_keys(action: str, params: dict[str, Any], account: str, region: str) -> list[tuple[str, str]]:
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    arn = str(params.get("stateMachineArn") or params.get("executionArn", ""))
    if action == "DescribeExecution":  # arn:aws:states:r:a:execution:<machine>:<name>
        parts = arn.split(":")
        arn = ":".join([*parts[:5], "stateMachine", parts[6]])
    machine = stepfunctions_parser_backends[account][region].describe_state_machine(arn)
    config = machine.encryptionConfiguration or {}
    if config.get("type") != "CUSTOMER_MANAGED_KMS_KEY":
        return []
    return [("GenerateDataKey" if action == "StartExecution" else "Decrypt", config["kmsKeyId"])]


def _secret_keys(secret_id: str, account: str, region: str) -> list[tuple[str, str]]:
    """A secret under a customer managed key is decrypted with the reader's own kms:Decrypt (the AWS
    managed aws/secretsmanager key needs no grant)."""
    from moto.secretsmanager.models import secretsmanager_backends

    key = getattr(secretsmanager_backends[account][region].describe_secret(secret_id), "kms_key_id", None)
    return [("Decrypt", str(key))] if key and "alias/aws/secretsmanager" not in str(key) else []


def _key_arn(key_id: str, account: str, region: str) -> str:
    if key_id.startswith("arn:") and ":key/" in key_id:
        return key_id
    from moto.kms.models import kms_backends

    return str(kms_backends[account][region].describe_key(key_id).arn)


# ---- installation -------------------------------------------------------------------------------


def _access_key(headers: Any) -> tuple[str, str] | None:
    auth = headers.get("Authorization") or ""
    match = re.search(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/", auth)
    return (match.group(1), match.group(2)) if match else None


def _service_name(signing_name: str) -> str:
    return {"monitoring": "cloudwatch", "execute-api": "execute-api"}.get(signing_name, signing_name)


def install(enforcer: Enforcer) -> Callable[[], None]:
    """Authorise every request through `enforcer`; returns the function that restores moto's check."""
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import JsonRESTError
    from moto.core.exceptions import _RESTError as RESTError

    original = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        found = _access_key(self.headers)
        if found is None or found[0] in ADMIN_KEYS:
            return
        key, signing_name = found
        service = _service_name(signing_name)
        action = self._get_action()
        action = action[0] if isinstance(action, list) else action
        path = urlparse(self.uri).path
        params: dict[str, Any] = {}
        if service == "s3":
            checks = s3_checks(action, resource, getattr(self, "querystring", None) or {}, enforcer.account_id)
        else:
            try:
                params = _params(self)
            except Exception:
                params = {}
            checks = checks_for(service, action, params, path, enforcer.account_id, enforcer.region)
            if service == "lambda" and all(c.resource.split(":function:")[-1].startswith("localaws-") for c in checks):
                return  # localaws's .sync runners stand in for Step Functions itself
        checks += kms_checks(service, action, params, resource, enforcer.account_id, enforcer.region)
        try:
            enforcer.authorize(key, checks)
        except Denied as denied:
            if service == "s3":  # S3's own error document (<Error><Code>AccessDenied</Code>...), as AWS answers
                from moto.s3.exceptions import S3ClientError

                raise S3ClientError("AccessDenied", str(denied)) from None
            error: RESTError
            if service == "lambda" or "json" in str(self.headers.get("Content-Type") or ""):
                error = JsonRESTError("AccessDeniedException", str(denied))  # what boto3 names the JSON APIs' error
                error.code = 403 if service == "lambda" else 400
            else:
                error = RESTError("AccessDenied", str(denied))
                error.code = 403
            raise error from None

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authorize  # type: ignore[method-assign]

    def undo() -> None:
        ActionAuthenticatorMixin._authenticate_and_authorize_action = original  # type: ignore[method-assign]

    return undo
