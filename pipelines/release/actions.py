"""Release actions: a second ECS service for the candidate, ALB weights moved step by step (canary, shadow).

Why two services behind one weighted listener (not ECS's native BLUE_GREEN): the workflow must own
every step. It picks the weights (10 -> 50 -> 100 by default, any list), bakes, judges the candidate on
metrics scoped to its model version AND against the champion's live distribution, and on a breach
puts the traffic back in one place. The `champion` alias is not touched here: the workflow moves it
(pipelines/promote.py) only after `finalize`, so a release that fails has no alias to undo. ECS's native strategies move
traffic themselves (one canary step, or equal linear steps) and only call back through lifecycle
hooks; see docs/canary.md for the comparison against the pinned provider.

The actions (one Lambda, `lambdas/canary_check.py`, dispatches on `action`):
- start:         register the candidate's task-definition revision, run it in the canary service at
                 weight 0, create per-version CloudWatch alarms, tag the MLflow version;
- stable:        both services run what they should (raises ServiceNotStable to be retried);
- shift:         set the weights for step `index` (ALB ModifyListener: the same call locally);
- check:         the verdict after a bake: 5xx rate, p99 latency, low-confidence rate, prediction
                 drift vs the champion, plus the per-version alarms' state;
- finalize:      the stable service takes the candidate's revision, weights back to stable, canary to 0
                 (the workflow then promotes; if that fails, its rollback restores the stable revision);
- abort:         weights back to stable at once, canary to 0, the stable revision back, tags;
- shadow_report: agreement of the candidate with the champion on mirrored traffic, then clean up.
Every action is idempotent, because Step Functions retries them.
"""

from __future__ import annotations

import json
import time
from typing import Any

from model.config import Settings
from model.drift import js_divergence
from pipelines import aws, lineage, registry
from pipelines.deploy import current_task_definition, pin_model, served_model_uri
from pipelines.release import alarms, metrics, traffic, verdict
from pipelines.release.settings import STRATEGIES, CanaryNotReady, CanarySettings, validate_steps
from pipelines.service_stable import check as service_check


def _tag(settings: Settings, version: str, tags: dict[str, Any]) -> None:
    client = registry.client(settings)
    for key, value in tags.items():
        client.set_model_version_tag(settings.registered_model_name, version, key, str(value)[:5000])


def _now() -> float:
    return time.time()


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

    # The stable fleet is pinned to the champion's version if it follows the alias (the Terraform first
    # deploy): its tasks then report that version, which the verdict compares the candidate with, and a
    # rollback after finalize has a pinned revision to return to.
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
    traffic.set_weights(cs, 0, settings)
    traffic.set_shadow(cs, strategy == "shadow", settings)
    traffic.scale_candidate(wf, cs, cs.desired_count, candidate_td, settings)
    created = alarms.create_alarms(cs, version, settings)
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
        "alarms": created,
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
    traffic.set_weights(cs, weight, settings)
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
    candidate = metrics.version_metrics(cs, version, float(since), now, settings)
    if candidate["requests"] < cs.min_requests:
        raise CanaryNotReady(
            f"model version {version} answered {int(candidate['requests'])} requests since the step began; "
            f"{cs.min_requests} are needed to judge it"
        )
    champion = None
    if champion_version:
        start = float(baseline_since) if baseline_since is not None else float(since)
        champion = metrics.version_metrics(cs, str(champion_version), start, now, settings)
        if champion["requests"] < cs.min_requests:  # no baseline to compare the intent mix with
            champion = None
    breaches = verdict.judge(cs, candidate, champion)
    drift = (
        js_divergence(candidate["predictions"], champion["predictions"])
        if champion and champion["predictions"] and candidate["predictions"]
        else None
    )
    if drift is not None:
        metrics.publish_drift(cs, version, drift, any(b["kind"] == "prediction_drift" for b in breaches), settings)
    seen = {b["kind"] for b in breaches}
    for kind, reason in alarms.alarms_in_alarm(cs, version, settings).items():
        if kind not in seen:
            breaches.append({"kind": kind, "alarm": alarms.alarm_names(cs, version)[kind], "reason": reason[:300]})
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
    record = {
        "weight": weight,
        "passed": not breaches,
        "requests": summary["requests"],
        "reason": verdict.reason(breaches),
    }
    lineage.record_release(
        version, strategy="canary", event="check", execution_arn=execution_arn, check=record, settings=settings
    )
    return {
        "passed": not breaches,
        "weight": weight,
        "breaches": breaches,
        "reason": verdict.reason(breaches),
        "metrics": summary,
        "window_seconds": round(now - float(since), 1),
    }


def finalize(
    model_version: str,
    candidate_task_definition: str,
    stable_task_definition: str | None = None,
    *,
    settings: Settings | None = None,
    wf: aws.WorkflowSettings | None = None,
    cs: CanarySettings | None = None,
    execution_arn: str | None = None,
) -> dict[str, Any]:
    """100 % reached and healthy: the stable service takes the candidate's revision, then takes the traffic.

    Returns the deployment as `deploy` does (task_definition, previous_task_definition), so the
    workflow's Promote and Rollback read one shape whichever strategy released the version."""
    settings, wf, cs = _settings(settings, wf, cs)
    version = str(model_version)
    if current_task_definition(wf, settings) != candidate_task_definition:
        aws.client("ecs", settings).update_service(
            cluster=wf.cluster, service=wf.service, taskDefinition=candidate_task_definition
        )
    service_check(candidate_task_definition, settings=settings, wf=wf)  # ServiceNotStable -> retried
    traffic.set_weights(cs, 0, settings)
    traffic.scale_candidate(wf, cs, 0, None, settings)
    alarms.delete_alarms(cs, version, settings)
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
    return {
        "status": "serving",
        "model_version": version,
        "task_definition": candidate_task_definition,
        "previous_task_definition": stable_task_definition,
    }


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
        traffic.set_weights(cs, 0, settings)
        traffic.set_shadow(cs, False, settings)
    running = current_task_definition(wf, settings)
    if stable_task_definition and running != stable_task_definition:  # finalize had begun: undo it
        aws.client("ecs", settings).update_service(
            cluster=wf.cluster, service=wf.service, taskDefinition=stable_task_definition
        )
        result["stable_task_definition"] = {"from": running, "to": stable_task_definition}
    traffic.scale_candidate(wf, cs, 0, None, settings)
    alarms.delete_alarms(cs, version, settings)
    champion = registry.version_by_alias(settings, registry.CHAMPION)  # never moved by a release that failed
    result["champion"] = {"unchanged": None if champion is None else str(champion.version)}
    lineage.record_release(
        version,
        strategy=strategy,
        event="rollback",
        execution_arn=execution_arn,
        outcome="rolled_back",
        reason=reason,
        champion=result["champion"],
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
    observed = metrics.version_metrics(cs, version, float(since), _now(), settings)
    mirrored, agreed = int(observed["shadow_requests"]), int(observed["shadow_agreements"])
    if mirrored < cs.min_requests:
        raise CanaryNotReady(f"only {mirrored} mirrored requests reached model version {version}")
    rate = agreed / mirrored
    agreement = "agrees" if rate >= cs.min_shadow_agreement else "disagrees"
    traffic.set_shadow(cs, False, settings)
    traffic.scale_candidate(wf, cs, 0, None, settings)
    alarms.delete_alarms(cs, version, settings)
    # Shadow never serves, and the alias never moved: it names the champion that served all along.
    champion = registry.version_by_alias(settings, registry.CHAMPION)
    kept = {"unchanged": None if champion is None else str(champion.version)}
    lineage.record_release(
        version,
        strategy="shadow",
        event="shadow",
        execution_arn=execution_arn,
        outcome="shadowed",
        champion=kept,
        reason=f"agreement {rate:.3f} over {mirrored} mirrored requests ({agreement})",
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
            "canary.reason": f"shadow: agreement {rate:.3f} over {mirrored} mirrored requests ({agreement})",
        },
    )
    return {
        "status": "shadowed",
        "model_version": version,
        "champion_version": champion_version,
        "agreement_rate": round(rate, 4),
        "mirrored_requests": mirrored,
        "verdict": agreement,
        "candidate_metrics": {k: observed[k] for k in ("requests", "latency_p99_ms", "low_confidence_rate")},
        "champion": kept,
    }


def abort_from_state(
    state: dict[str, Any], *, model_version: str | None = None, execution_arn: str | None = None
) -> dict[str, Any]:
    """`abort` as the state machine calls it: with the execution's state, after a failed check (a
    Choice) or an error (a Catch). The reason names the failed check or the caught error."""
    c = state.get("canary") or {}
    version = model_version or (state.get("evaluation") or {}).get("model_version")
    if version in (None, ""):
        raise ValueError("abort needs 'model_version'")
    check = c.get("check") or {}
    error = state.get("error")
    if check and not check.get("passed", True):
        reason = f"canary check failed at {c.get('progress', {}).get('weight')} %: {check.get('reason')}"
    elif isinstance(error, dict):
        reason = f"{error.get('Error', 'Error')}: {str(error.get('Cause', ''))[:500]}"
    else:
        reason = json.dumps(error)[:500] if error else "aborted"
    strategy = c.get("strategy") or ((state.get("release") or {}).get("config") or {}).get("deployment_strategy")
    result = abort(
        str(version),
        reason=reason,
        step=(c.get("progress") or {}).get("weight"),
        stable_task_definition=c.get("stable_task_definition"),
        execution_arn=execution_arn,
        strategy=str(strategy or "canary"),
    )
    return {**result, "breaches": check.get("breaches", []), "metrics": check.get("metrics")}
