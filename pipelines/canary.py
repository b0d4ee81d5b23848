"""Canary and shadow releases: a second ECS service for the candidate, ALB weights moved step by step.

Why two services behind one weighted listener (not ECS's native BLUE_GREEN): the workflow must own
every step. It picks the weights (10 -> 50 -> 100 by default, any list), bakes, judges the candidate on
metrics scoped to its model version AND against the champion's live distribution, and on a breach
undoes traffic, the `champion` alias and the MLflow record in one place. ECS's native strategies move
traffic themselves (one canary step, or equal linear steps) and only call back through lifecycle
hooks; see docs/canary.md for the comparison against the pinned provider.

The actions (one Lambda, `lambdas/canary_check.py`, dispatches on `action`):
- start:         register the candidate's task-definition revision, run it in the canary service at
                 weight 0, create per-version CloudWatch alarms, tag the MLflow version;
- stable:        both services run what they should (raises ServiceNotStable to be retried);
- shift:         set the weights for step `index` (ALB ModifyListener: the same call locally);
- check:         the verdict after a bake: 5xx rate, p99 latency, low-confidence rate, prediction
                 drift vs the champion, plus the per-version alarms' state;
- finalize:      the stable service takes the candidate's revision, weights back to stable, canary to 0;
- abort:         weights back to stable at once, canary to 0, champion alias restored, tags;
- shadow_report: agreement of the candidate with the champion on mirrored traffic, then clean up.
Every action is idempotent, because Step Functions retries them.
"""

from __future__ import annotations

import itertools
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self

from model.config import Settings
from model.contract import contract
from model.drift import homogeneity_p_value, js_divergence
from model.settings import EsteiraSettings, setting
from pipelines import aws, lineage, registry
from pipelines.deploy import current_task_definition, pin_model, served_model_uri
from pipelines.rollback import rollback
from pipelines.service_stable import check as service_check

STRATEGIES = ("all_at_once", "canary", "shadow")
KINDS = ("http_5xx", "latency_p99", "low_confidence", "prediction_drift")
SHADOW_TAG = "esteira:shadow"


class CanaryNotReady(RuntimeError):
    """Too little traffic reached the candidate to judge it yet; the state machine asks again."""


class CanarySettings(EsteiraSettings):
    """Where the canary lives and the bars it must clear. A breach of any one bar rolls the release back."""

    doc_title: ClassVar[str] = "Canary and shadow releases (pipelines/canary.py `CanarySettings`)"

    canary_service: str = setting(
        "",
        env="ESTEIRA_CANARY_SERVICE",
        default_doc="<ESTEIRA_ECS_SERVICE>-canary",
        description="ECS service for the candidate.",
    )
    listener_arn: str = setting(
        "", env="ESTEIRA_LISTENER_ARN", description="ALB listener whose default action forwards to both target groups."
    )
    stable_target_group_arn: str = setting(
        "", env="ESTEIRA_STABLE_TARGET_GROUP_ARN", description="Target group of the stable service."
    )
    canary_target_group_arn: str = setting(
        "", env="ESTEIRA_CANARY_TARGET_GROUP_ARN", description="Target group of the canary service."
    )
    desired_count: int = setting(
        1, env="ESTEIRA_CANARY_DESIRED_COUNT", ge=1, description="Candidate tasks while a canary runs."
    )
    namespace: str = setting(
        contract().metrics_namespace,
        env="ESTEIRA_METRICS_NAMESPACE",
        description="CloudWatch namespace of the metrics.",
    )
    metrics_service: str = setting(
        "",
        env="ESTEIRA_METRICS_SERVICE",
        default_doc="<ESTEIRA_ECS_SERVICE>",
        description="The Service dimension the serving tasks emit.",
    )
    alarm_prefix: str = setting(
        f"esteira{contract().alarms.canary_prefix}",
        env="ESTEIRA_CANARY_ALARM_PREFIX",
        description="Per-version alarms are <prefix>-v<version>-<kind>.",
    )
    alarm_topic_arn: str = setting(
        "",
        env="ESTEIRA_CANARY_ALARM_TOPIC_ARN",
        default_doc="<ESTEIRA_SNS_TOPIC_ARN>",
        description="Alarm actions (SNS), optional.",
    )
    max_5xx_rate: float = setting(
        0.01,
        env="ESTEIRA_CANARY_MAX_5XX_RATE",
        ge=0.0,
        le=1.0,
        description="Bar: the candidate's share of 5xx answers.",
    )
    max_5xx_count: int = setting(
        5, env="ESTEIRA_CANARY_MAX_5XX_COUNT", ge=0, description="Per-version alarm: 5xx answers per minute."
    )
    max_p99_ms: float = setting(
        500.0, env="ESTEIRA_CANARY_MAX_P99_MS", gt=0.0, description="Bar: the candidate's p99 latency."
    )
    max_low_confidence_rate: float = setting(
        0.5,
        env="ESTEIRA_CANARY_MAX_LOW_CONFIDENCE_RATE",
        ge=0.0,
        le=1.0,
        description="Bar: the candidate's share of low-confidence predictions.",
    )
    max_prediction_drift: float = setting(
        0.2,
        env="ESTEIRA_CANARY_MAX_PREDICTION_DRIFT",
        ge=0.0,
        le=1.0,
        description="Bar: Jensen-Shannon divergence (base 2, 0..1) of the candidate's predictions from the "
        "champion's...",
    )
    drift_p_value: float = setting(
        0.001,
        env="ESTEIRA_CANARY_DRIFT_P_VALUE",
        ge=0.0,
        le=1.0,
        description="...counted only when unlikely to be sampling noise (permutation-test p-value below this): with "
        "10-50 candidate requests per step, noise alone gives JS of 0.1-0.3 over many intents.",
    )
    min_requests: int = setting(
        30,
        env="ESTEIRA_CANARY_MIN_REQUESTS",
        ge=0,
        description="Below this many candidate requests in a bake window the canary is not ready: ask again.",
    )
    min_shadow_agreement: float = setting(
        0.0,
        env="ESTEIRA_SHADOW_MIN_AGREEMENT",
        ge=0.0,
        le=1.0,
        description="Reported; below it the shadow release is marked disagrees.",
    )

    @classmethod
    def from_env(cls, wf: aws.WorkflowSettings | None = None) -> Self:
        wf = wf or aws.WorkflowSettings.from_env()
        return cls.read_env(
            canary_service=f"{wf.service}-canary", metrics_service=wf.service, alarm_topic_arn=wf.sns_topic_arn
        )


def _now() -> float:
    return time.time()


def validate_steps(steps: Any) -> list[int]:
    """Traffic percentages for the candidate: strictly increasing integers in 1..100 ending at 100."""
    if not isinstance(steps, list) or not steps:
        raise ValueError(f"canary_steps must be a non-empty list of percentages, got {steps!r}")
    out: list[int] = []
    for s in steps:
        if isinstance(s, bool) or not isinstance(s, int | float) or int(s) != s or not 1 <= s <= 100:
            raise ValueError(f"canary_steps: {s!r} is not an integer percentage in 1..100")
        out.append(int(s))
    if any(b <= a for a, b in itertools.pairwise(out)):
        raise ValueError(f"canary_steps must increase strictly, got {out}")
    if out[-1] != 100:
        raise ValueError(f"canary_steps must end at 100, got {out}")
    return out


# ---- MLflow record
def _tag(settings: Settings, version: str, tags: dict[str, Any]) -> None:
    client = registry.client(settings)
    for key, value in tags.items():
        client.set_model_version_tag(settings.registered_model_name, version, key, str(value)[:5000])


# ---- traffic
def set_weights(cs: CanarySettings, canary_percent: int, settings: Settings | None = None) -> None:
    """Point the listener's forward action at both target groups with these weights (stable gets the rest)."""
    if not (cs.listener_arn and cs.stable_target_group_arn and cs.canary_target_group_arn):
        raise LookupError("ESTEIRA_LISTENER_ARN, ESTEIRA_STABLE_/CANARY_TARGET_GROUP_ARN must be set for a canary")
    aws.client("elbv2", settings).modify_listener(
        ListenerArn=cs.listener_arn,
        DefaultActions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": cs.stable_target_group_arn, "Weight": 100 - canary_percent},
                        {"TargetGroupArn": cs.canary_target_group_arn, "Weight": canary_percent},
                    ],
                    "TargetGroupStickinessConfig": {"Enabled": False},
                },
            }
        ],
    )


def _set_shadow(cs: CanarySettings, on: bool, settings: Settings | None = None) -> None:
    """Mark the canary target group as a shadow: whoever mirrors traffic (see docs/canary.md) reads this."""
    elb = aws.client("elbv2", settings)
    if on:
        elb.add_tags(ResourceArns=[cs.canary_target_group_arn], Tags=[{"Key": SHADOW_TAG, "Value": "on"}])
    else:
        elb.remove_tags(ResourceArns=[cs.canary_target_group_arn], TagKeys=[SHADOW_TAG])


def _scale_canary(wf: aws.WorkflowSettings, cs: CanarySettings, count: int, td: str | None, settings: Any) -> None:
    kwargs: dict[str, Any] = {"cluster": wf.cluster, "service": cs.canary_service, "desiredCount": count}
    if td:
        kwargs["taskDefinition"] = td
    aws.client("ecs", settings).update_service(**kwargs)


# ---- alarms scoped to the candidate's model version
_M = contract().metrics
_D = contract().dimensions


def _version_dims(cs: CanarySettings, version: str) -> list[dict[str, str]]:
    """[Service, ModelVersion] of one model version, as the serving tasks publish them."""
    return [{"Name": _D.service, "Value": cs.metrics_service}, {"Name": _D.model_version, "Value": version}]


def alarm_names(cs: CanarySettings, version: str) -> dict[str, str]:
    return {kind: f"{cs.alarm_prefix}-v{version}-{kind.replace('_', '-')}" for kind in KINDS}


def create_alarms(cs: CanarySettings, version: str, settings: Settings | None = None) -> list[str]:
    """Four alarms on [Service, ModelVersion=<candidate>]; deleted when the release ends either way."""
    cw = aws.client("cloudwatch", settings)
    dims = _version_dims(cs, version)
    names = alarm_names(cs, version)
    specs = {
        "http_5xx": (_M.http_5xx, "Sum", float(cs.max_5xx_count), "GreaterThanOrEqualToThreshold"),
        "latency_p99": (_M.latency_p99, "Maximum", cs.max_p99_ms, "GreaterThanThreshold"),
        "low_confidence": (_M.low_confidence_rate, "Average", cs.max_low_confidence_rate, "GreaterThanThreshold"),
        # 1 when a check found significant drift (JS over the bar AND p below drift_p_value); the raw JS is
        # published too (CanaryPredictionDrift) but is too noisy on small windows to alarm on by itself.
        "prediction_drift": (_M.canary_drift_breach, "Maximum", 0.5, "GreaterThanThreshold"),
    }
    for kind, (metric, stat, threshold, op) in specs.items():
        cw.put_metric_alarm(
            AlarmName=names[kind],
            AlarmDescription=f"Canary of model version {version}: {kind} (created by the release workflow)",
            Namespace=cs.namespace,
            MetricName=metric,
            Dimensions=dims,
            Statistic=stat,
            Period=60,
            EvaluationPeriods=1,
            Threshold=threshold,
            ComparisonOperator=op,
            TreatMissingData="notBreaching",
            AlarmActions=[cs.alarm_topic_arn] if cs.alarm_topic_arn else [],
            Tags=[{"Key": "esteira:canary-version", "Value": version}],
        )
    return list(names.values())


def delete_alarms(cs: CanarySettings, version: str, settings: Settings | None = None) -> None:
    """Delete the version's alarms that exist (DeleteAlarms fails on a missing name; retries must not)."""
    cw = aws.client("cloudwatch", settings)
    found = cw.describe_alarms(AlarmNames=list(alarm_names(cs, version).values()))["MetricAlarms"]
    if found:
        cw.delete_alarms(AlarmNames=[a["AlarmName"] for a in found])


def alarms_in_alarm(cs: CanarySettings, version: str, settings: Settings | None = None) -> dict[str, str]:
    names = alarm_names(cs, version)
    found = aws.client("cloudwatch", settings).describe_alarms(AlarmNames=list(names.values()))["MetricAlarms"]
    by_name = {a["AlarmName"]: a for a in found}
    return {
        kind: by_name[name].get("StateReason", "")
        for kind, name in names.items()
        if name in by_name and by_name[name].get("StateValue") == "ALARM"
    }


# ---- metrics
def _window(since: float, now: float) -> tuple[datetime, datetime, int]:
    start = datetime.fromtimestamp(since - 1, UTC)
    end = datetime.fromtimestamp(now + 1, UTC)
    period = max(60, math.ceil((end - start).total_seconds() / 60.0) * 60)
    return start, end + timedelta(seconds=60), period


def version_metrics(
    cs: CanarySettings, version: str, since: float, now: float, settings: Settings | None = None
) -> dict[str, Any]:
    """Totals of one model version's serving metrics in [since, now], from CloudWatch."""
    cw = aws.client("cloudwatch", settings)
    dims = _version_dims(cs, version)
    start, end, period = _window(since, now)
    wanted = {
        "requests": (_M.request_count, "Sum"),
        "http_5xx": (_M.http_5xx, "Sum"),
        "latency_p99": (_M.latency_p99, "Maximum"),
        "low_confidence": (_M.low_confidence_rate, "Average"),
        "shadow_requests": (_M.shadow_requests, "Sum"),
        "shadow_agreements": (_M.shadow_agreements, "Sum"),
    }
    queries = [
        {
            "Id": key,
            "MetricStat": {
                "Metric": {"Namespace": cs.namespace, "MetricName": metric, "Dimensions": dims},
                "Period": period,
                "Stat": stat,
            },
        }
        for key, (metric, stat) in wanted.items()
    ]
    listed = cw.list_metrics(Namespace=cs.namespace, MetricName=_M.predictions, Dimensions=dims)["Metrics"]
    intents = sorted({d["Value"] for m in listed for d in m["Dimensions"] if d["Name"] == _D.intent})
    for i, intent in enumerate(intents):
        queries.append(
            {
                "Id": f"intent{i}",
                "MetricStat": {
                    "Metric": {
                        "Namespace": cs.namespace,
                        "MetricName": _M.predictions,
                        "Dimensions": [*dims, {"Name": _D.intent, "Value": intent}],
                    },
                    "Period": period,
                    "Stat": "Sum",
                },
            }
        )
    values: dict[str, list[float]] = {}
    for chunk in range(0, len(queries), 500):
        resp = cw.get_metric_data(MetricDataQueries=queries[chunk : chunk + 500], StartTime=start, EndTime=end)
        for r in resp["MetricDataResults"]:
            values[r["Id"]] = [float(v) for v in r.get("Values", [])]

    def agg(key: str, how: str) -> float | None:
        vals = values.get(key) or []
        if not vals:
            return None
        return max(vals) if how == "Maximum" else (sum(vals) / len(vals) if how == "Average" else sum(vals))

    return {
        "requests": agg("requests", "Sum") or 0.0,
        "http_5xx": agg("http_5xx", "Sum") or 0.0,
        "latency_p99_ms": agg("latency_p99", "Maximum"),
        "low_confidence_rate": agg("low_confidence", "Average"),
        "shadow_requests": agg("shadow_requests", "Sum") or 0.0,
        "shadow_agreements": agg("shadow_agreements", "Sum") or 0.0,
        "predictions": {
            intent: agg(f"intent{i}", "Sum") or 0.0
            for i, intent in enumerate(intents)
            if (agg(f"intent{i}", "Sum") or 0.0) > 0
        },
    }


def judge(cs: CanarySettings, candidate: dict[str, Any], champion: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The breaches of one bake window (empty = healthy). Pure, so every bar is unit-testable."""
    breaches: list[dict[str, Any]] = []
    requests = float(candidate["requests"])
    rate = float(candidate["http_5xx"]) / requests if requests else 0.0
    if rate > cs.max_5xx_rate:
        breaches.append({"kind": "http_5xx", "value": round(rate, 4), "threshold": cs.max_5xx_rate})
    p99 = candidate.get("latency_p99_ms")
    if p99 is not None and p99 > cs.max_p99_ms:
        breaches.append({"kind": "latency_p99", "value": round(p99, 2), "threshold": cs.max_p99_ms})
    low = candidate.get("low_confidence_rate")
    if low is not None and low > cs.max_low_confidence_rate:
        breaches.append({"kind": "low_confidence", "value": round(low, 4), "threshold": cs.max_low_confidence_rate})
    if champion is not None and champion.get("predictions") and candidate.get("predictions"):
        drift = js_divergence(candidate["predictions"], champion["predictions"])
        p_value = homogeneity_p_value(candidate["predictions"], champion["predictions"])
        if drift > cs.max_prediction_drift and p_value < cs.drift_p_value:
            breaches.append(
                {
                    "kind": "prediction_drift",
                    "value": round(drift, 4),
                    "threshold": cs.max_prediction_drift,
                    "p_value": p_value,
                }
            )
    return breaches


# ---- actions
def _settings(settings: Settings | None, wf: aws.WorkflowSettings | None, cs: CanarySettings | None) -> tuple:
    settings = settings or Settings.from_env()
    wf = wf or aws.WorkflowSettings.from_env()
    cs = cs or CanarySettings.from_env(wf)
    return settings, wf, cs


def start(
    model_version: str,
    *,
    previous_champion: str | None,
    strategy: str = "canary",
    steps: Any = None,
    settings: Settings | None = None,
    wf: aws.WorkflowSettings | None = None,
    cs: CanarySettings | None = None,
    execution_arn: str | None = None,
) -> dict[str, Any]:
    settings, wf, cs = _settings(settings, wf, cs)
    if strategy not in ("canary", "shadow"):
        raise ValueError(f"deployment_strategy must be one of {STRATEGIES}, got {strategy!r}")
    plan = validate_steps(steps if steps is not None else [10, 50, 100]) if strategy == "canary" else []
    version = str(model_version)
    ecs = aws.client("ecs", settings)
    stable_td = current_task_definition(wf, settings)
    described = ecs.describe_task_definition(taskDefinition=stable_td, include=["TAGS"])
    base = described["taskDefinition"]
    tags = [t for t in described.get("tags", []) if t.get("key") != "esteira:model-version"]

    def register(v: str, role: str = "serving") -> str:
        request = pin_model(base, wf.serving_container, registry.model_uri(settings, v), v, role)
        request_tags = [*tags, {"key": "esteira:model-version", "value": v}]
        return str(ecs.register_task_definition(**request, tags=request_tags)["taskDefinition"]["taskDefinitionArn"])

    # The stable fleet must keep serving the champion even if a task restarts while the alias points at
    # the candidate: pin it to the champion's version if it follows an alias (the Terraform first deploy).
    env = {
        e["name"]: e["value"]
        for c in base["containerDefinitions"]
        if c["name"] == wf.serving_container
        for e in c.get("environment", [])
    }
    if previous_champion and served_model_uri(env) != registry.model_uri(settings, previous_champion):
        stable_td = register(str(previous_champion))
        ecs.update_service(cluster=wf.cluster, service=wf.service, taskDefinition=stable_td)
    # A shadow candidate says so on /health; the stable tasks' mirror copies traffic only to such a one.
    candidate_td = register(version, "shadow" if strategy == "shadow" else "serving")
    set_weights(cs, 0, settings)
    _set_shadow(cs, strategy == "shadow", settings)
    _scale_canary(wf, cs, cs.desired_count, candidate_td, settings)
    alarms = create_alarms(cs, version, settings)
    _tag(settings, version, {"canary.status": "in_progress", "canary.strategy": strategy, "canary.step": 0})
    lineage.record_release(
        version,
        strategy=strategy,
        event="start",
        execution_arn=execution_arn,
        steps=plan,
        task_definition=candidate_td,
        previous_task_definition=stable_td,
        settings=settings,
    )
    return {
        "strategy": strategy,
        "model_version": version,
        "champion_version": previous_champion,
        "candidate_task_definition": candidate_td,
        "stable_task_definition": stable_td,
        "steps": plan,
        "alarms": alarms,
        "started_at": _now(),
        "progress": {"next_index": 0, "weight": 0, "last": False, "shifted_at": _now()},
    }


def stable(
    candidate_task_definition: str,
    stable_task_definition: str,
    *,
    settings: Settings | None = None,
    wf: aws.WorkflowSettings | None = None,
    cs: CanarySettings | None = None,
) -> dict[str, Any]:
    settings, wf, cs = _settings(settings, wf, cs)
    canary_wf = wf.replace(service=cs.canary_service)
    canary = service_check(candidate_task_definition, settings=settings, wf=canary_wf)
    main = service_check(stable_task_definition, settings=settings, wf=wf)
    return {"step": "canary-stable", "canary": canary, "stable": main}


def shift(
    model_version: str,
    steps: Any,
    index: int,
    *,
    settings: Settings | None = None,
    wf: aws.WorkflowSettings | None = None,
    cs: CanarySettings | None = None,
    execution_arn: str | None = None,
) -> dict[str, Any]:
    settings, wf, cs = _settings(settings, wf, cs)
    plan = validate_steps(steps)
    if not 0 <= int(index) < len(plan):
        raise ValueError(f"step index {index} outside {plan}")
    weight = plan[int(index)]
    set_weights(cs, weight, settings)
    _tag(settings, str(model_version), {"canary.step": weight})
    lineage.record_release(
        str(model_version),
        strategy="canary",
        event="shift",
        execution_arn=execution_arn,
        weight=weight,
        settings=settings,
    )
    return {
        "index": int(index),
        "next_index": int(index) + 1,
        "weight": weight,
        "last": int(index) + 1 == len(plan),
        "shifted_at": _now(),
    }


def check(
    model_version: str,
    champion_version: str | None,
    since: float,
    *,
    weight: int | None = None,
    baseline_since: float | None = None,
    settings: Settings | None = None,
    wf: aws.WorkflowSettings | None = None,
    cs: CanarySettings | None = None,
    execution_arn: str | None = None,
) -> dict[str, Any]:
    """The verdict on the candidate's traffic since `since` (this step).

    The champion's side is its traffic since `baseline_since` (the release's start) when given: at
    high steps (100 % above all) the champion answers little or nothing in the step's own window, and
    a handful of requests is no baseline. Traffic to both comes from the same clients, so the champion's
    mix over the release is the distribution the candidate's should match.
    """
    settings, wf, cs = _settings(settings, wf, cs)
    version = str(model_version)
    now = _now()
    candidate = version_metrics(cs, version, float(since), now, settings)
    if candidate["requests"] < cs.min_requests:
        raise CanaryNotReady(
            f"model version {version} answered {int(candidate['requests'])} requests since the step began; "
            f"{cs.min_requests} are needed to judge it"
        )
    champion = None
    if champion_version:
        start = float(baseline_since) if baseline_since is not None else float(since)
        champion = version_metrics(cs, str(champion_version), start, now, settings)
        if champion["requests"] < cs.min_requests:  # no baseline to compare the intent mix with
            champion = None
    breaches = judge(cs, candidate, champion)
    drift = (
        js_divergence(candidate["predictions"], champion["predictions"])
        if champion and champion["predictions"] and candidate["predictions"]
        else None
    )
    if drift is not None:  # published so the per-version drift alarm (and the dashboard) see it too
        dims = _version_dims(cs, version)
        breached = any(b["kind"] == "prediction_drift" for b in breaches)
        aws.client("cloudwatch", settings).put_metric_data(
            Namespace=cs.namespace,
            MetricData=[
                {"MetricName": _M.canary_prediction_drift, "Dimensions": dims, "Value": drift, "Unit": "None"},
                {"MetricName": _M.canary_drift_breach, "Dimensions": dims, "Value": float(breached), "Unit": "None"},
            ],
        )
    seen = {b["kind"] for b in breaches}
    for kind, reason in alarms_in_alarm(cs, version, settings).items():
        if kind not in seen:
            breaches.append({"kind": kind, "alarm": alarm_names(cs, version)[kind], "reason": reason[:300]})
    summary = {
        "requests": int(candidate["requests"]),
        "http_5xx": int(candidate["http_5xx"]),
        "latency_p99_ms": candidate["latency_p99_ms"],
        "low_confidence_rate": candidate["low_confidence_rate"],
        "prediction_drift": None if drift is None else round(drift, 4),
        "champion_requests": None if champion is None else int(champion["requests"]),
        # The intent mixes the drift verdict compared (top 12 by the candidate's count), for the record.
        "candidate_intents": dict(sorted(candidate["predictions"].items(), key=lambda kv: -kv[1])[:12]),
        "champion_intents": None
        if champion is None
        else {
            k: champion["predictions"].get(k, 0.0)
            for k in sorted(candidate["predictions"], key=lambda k: -candidate["predictions"][k])[:12]
        },
    }
    verdict = {
        "weight": weight,
        "passed": not breaches,
        "requests": summary["requests"],
        "reason": "; ".join(f"{b['kind']}={b.get('value', 'ALARM')}" for b in breaches),
    }
    lineage.record_release(
        version, strategy="canary", event="check", execution_arn=execution_arn, check=verdict, settings=settings
    )
    return {
        "passed": not breaches,
        "weight": weight,
        "breaches": breaches,
        "reason": "; ".join(f"{b['kind']}={b.get('value', 'ALARM')}" for b in breaches),
        "metrics": summary,
        "window_seconds": round(now - float(since), 1),
    }


def finalize(
    model_version: str,
    candidate_task_definition: str,
    *,
    settings: Settings | None = None,
    wf: aws.WorkflowSettings | None = None,
    cs: CanarySettings | None = None,
    execution_arn: str | None = None,
) -> dict[str, Any]:
    """100 % reached and healthy: the stable service takes the candidate's revision, then takes the traffic."""
    settings, wf, cs = _settings(settings, wf, cs)
    version = str(model_version)
    if current_task_definition(wf, settings) != candidate_task_definition:
        aws.client("ecs", settings).update_service(
            cluster=wf.cluster, service=wf.service, taskDefinition=candidate_task_definition
        )
    service_check(candidate_task_definition, settings=settings, wf=wf)  # ServiceNotStable -> retried
    set_weights(cs, 0, settings)
    _scale_canary(wf, cs, 0, None, settings)
    delete_alarms(cs, version, settings)
    _tag(settings, version, {"canary.status": "succeeded", "canary.step": 100, "canary.reason": "all steps healthy"})
    lineage.record_release(
        version,
        strategy="canary",
        event="finalize",
        execution_arn=execution_arn,
        task_definition=candidate_task_definition,
        outcome="serving",
        reason="all steps healthy",
        settings=settings,
    )
    return {"status": "promoted", "model_version": version, "task_definition": candidate_task_definition}


def abort(
    model_version: str,
    *,
    reason: str,
    step: int | None = None,
    stable_task_definition: str | None = None,
    settings: Settings | None = None,
    wf: aws.WorkflowSettings | None = None,
    cs: CanarySettings | None = None,
    execution_arn: str | None = None,
    strategy: str = "canary",
) -> dict[str, Any]:
    """Traffic first (one API call), then the candidate's tasks, then the alias and the record."""
    settings, wf, cs = _settings(settings, wf, cs)
    version = str(model_version)
    result: dict[str, Any] = {"status": "rolled_back", "model_version": version, "reason": reason, "step": step}
    if cs.listener_arn:
        set_weights(cs, 0, settings)
        _set_shadow(cs, False, settings)
    running = current_task_definition(wf, settings)
    if stable_task_definition and running != stable_task_definition:  # finalize had begun: undo it
        aws.client("ecs", settings).update_service(
            cluster=wf.cluster, service=wf.service, taskDefinition=stable_task_definition
        )
        result["stable_task_definition"] = {"from": running, "to": stable_task_definition}
    _scale_canary(wf, cs, 0, None, settings)
    delete_alarms(cs, version, settings)
    undone = rollback(version, None, reason=f"canary: {reason}", settings=settings, wf=wf, record_lineage=False)
    result["champion"] = undone["champion"]
    lineage.record_release(
        version,
        strategy=strategy,
        event="rollback",
        execution_arn=execution_arn,
        outcome="rolled_back",
        reason=reason,
        champion=undone["champion"],
        rollback_task_definition=result.get("stable_task_definition"),
        settings=settings,
    )
    _tag(
        settings,
        version,
        {"canary.status": "rolled_back", "canary.step": step if step is not None else 0, "canary.reason": reason},
    )
    return result


def shadow_report(
    model_version: str,
    champion_version: str | None,
    since: float,
    *,
    settings: Settings | None = None,
    wf: aws.WorkflowSettings | None = None,
    cs: CanarySettings | None = None,
    execution_arn: str | None = None,
) -> dict[str, Any]:
    """How often the candidate agreed with the champion on mirrored traffic; the candidate never served."""
    settings, wf, cs = _settings(settings, wf, cs)
    version = str(model_version)
    metrics = version_metrics(cs, version, float(since), _now(), settings)
    mirrored, agreed = int(metrics["shadow_requests"]), int(metrics["shadow_agreements"])
    if mirrored < cs.min_requests:
        raise CanaryNotReady(f"only {mirrored} mirrored requests reached model version {version}")
    rate = agreed / mirrored
    verdict = "agrees" if rate >= cs.min_shadow_agreement else "disagrees"
    _set_shadow(cs, False, settings)
    _scale_canary(wf, cs, 0, None, settings)
    delete_alarms(cs, version, settings)
    # Shadow never serves: the alias goes back to the champion that kept serving all along.
    undone = rollback(
        version, None, reason="shadow release: evaluated, not served", settings=settings, wf=wf, record_lineage=False
    )
    lineage.record_release(
        version,
        strategy="shadow",
        event="shadow",
        execution_arn=execution_arn,
        outcome="shadowed",
        champion=undone["champion"],
        reason=f"agreement {rate:.3f} over {mirrored} mirrored requests ({verdict})",
        settings=settings,
    )
    _tag(
        settings,
        version,
        {
            "canary.status": "shadowed",
            "canary.step": 0,
            "canary.shadow_agreement": round(rate, 4),
            "canary.shadow_requests": mirrored,
            "canary.reason": f"shadow: agreement {rate:.3f} over {mirrored} mirrored requests ({verdict})",
        },
    )
    return {
        "status": "shadowed",
        "model_version": version,
        "champion_version": champion_version,
        "agreement_rate": round(rate, 4),
        "mirrored_requests": mirrored,
        "verdict": verdict,
        "candidate_metrics": {k: metrics[k] for k in ("requests", "latency_p99_ms", "low_confidence_rate")},
        "champion": undone["champion"],
    }
