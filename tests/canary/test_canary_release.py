"""Canary releases on the stack `tofu apply` created on the embedded AWS: every traffic step, a rollback,
and the records.

The applied state machine, functions, ECS services and load balancer; a real MLflow registry; two real
serving processes behind the applied ALB, whose listener weights the workflow sets. A load generator
runs during every release and no request may fail.
"""

from __future__ import annotations

import contextlib
import json
import threading

import pytest

from pipelines import executions
from tests.canary.conftest import OFF, Release

pytestmark = pytest.mark.slow  # a tofu apply and a first champion per module

CANARY = ["Release", "ReleaseDefaults", "ReleaseConfig", "DeploymentStrategy?", "CanaryStart", "CanaryWaitStable",
          "CanaryMode?", "CanaryShift", "CanaryBake", "CanaryCheck", "CanaryHealthy?"]  # fmt: skip


def _in_order(expected: list[str], actual: list[str]) -> bool:
    it = iter(actual)
    return all(name in it for name in expected)


def _abort_output(events: list[dict]) -> dict:
    for e in events:
        if e["type"] == "LambdaFunctionSucceeded":
            doc = json.loads(e["lambdaFunctionSucceededEventDetails"]["output"])
            if doc.get("status") == "rolled_back":
                return dict(doc)
    raise AssertionError("no abort output in the history")


def test_canary_moves_through_every_step_and_promotes(release: Release) -> None:
    release.bars()
    r = release.release("canary-ok", deployment_strategy="canary")
    if r["desc"]["status"] != "SUCCEEDED":
        raise AssertionError(f"{r['states']}\n{_abort_output(r['events'])}")
    assert _in_order([*CANARY, "CanaryFinalize", "Promote", "Released", "NotifyReleased", "ReleaseLock", "Done"],
                     r["states"]), r["states"]  # fmt: skip
    assert "Deploy" not in r["states"]
    assert r["weights"] == [10, 50, 100]
    assert r["states"].count("CanaryCheck") >= 3
    out = json.loads(r["desc"]["output"])["release"]["output"]
    version = out["model_version"]
    assert out["outcome"] == "serving" and r["after"] == version != r["before"]
    # The stable service now runs the candidate's revision; the canary service is empty; traffic is on stable.
    assert release.service(release.stack.service)["taskDefinition"] == out["deployment"]["task_definition"]
    assert release.service(release.stack.outputs["canary_service"])["desiredCount"] == 0
    assert release.listener_weights() == {"stable": 100, "canary": 0}
    tags = release.tags(version)
    assert tags["canary.status"] == "succeeded" and tags["canary.step"] == "100"
    assert any("new model released" in n.get("Subject", "") for n in r["notifications"])
    # Both versions answered real traffic during the release, and nothing failed.
    assert r["load"]["failed"] == 0, r["load"]
    assert r["load"]["versions"].get(version, 0) > 0 and r["load"]["versions"].get(r["before"], 0) > 0
    # Every alarm of the candidate is gone once the release is over.
    prefix = release.stack.environment["ESTEIRA_CANARY_ALARM_PREFIX"]
    alarms = release.aws.client("cloudwatch").describe_alarms(AlarmNamePrefix=f"{prefix}-")["MetricAlarms"]
    assert alarms == []


def test_releasing_the_champion_again_takes_the_all_at_once_path(release: Release) -> None:
    # The trainer reuses the version trained on identical data and parameters: it is already champion,
    # so a canary has nothing to shift and must not "roll back" the champion to its predecessor.
    release.bars()
    first = release.release("same-data-1", deployment_strategy="canary")
    assert first["desc"]["status"] == "SUCCEEDED", first["states"]
    again = release.release("same-data-2", train_data=release.last_train, deployment_strategy="canary")
    assert again["desc"]["status"] == "SUCCEEDED", again["states"]
    assert _in_order(["DeploymentStrategy?", "Deploy", "WaitServiceStable", "SmokeTest", "Promote", "Done"],
                     again["states"]), again["states"]  # fmt: skip
    assert "CanaryStart" not in again["states"]
    assert again["after"] == again["before"] == first["after"]


def test_degraded_candidate_rolled_back_on_low_confidence(release: Release) -> None:
    release.bars(ESTEIRA_CANARY_MAX_PREDICTION_DRIFT=OFF["ESTEIRA_CANARY_MAX_PREDICTION_DRIFT"])
    r = release.release("canary-lowconf", train_data=release.shuffled, deployment_strategy="canary")
    assert r["desc"]["status"] == "FAILED"
    assert _in_order([*CANARY, "CanaryAbort", "RolledBack", "ReleaseFailed", "RolledBack?", "NotifyRolledBack",
                      "ReleaseLockAfterFailure", "Failed"], r["states"]), r["states"]  # fmt: skip
    assert "Promote" not in r["states"]
    assert r["weights"] == [10], "the first step's check must stop the release"
    abort = _abort_output(r["events"])
    assert [b["kind"] for b in abort["breaches"]] == ["low_confidence"], abort
    assert r["after"] == r["before"], "the champion alias never moved"
    assert release.listener_weights() == {"stable": 100, "canary": 0}
    assert release.service(release.stack.outputs["canary_service"])["desiredCount"] == 0
    tags = release.tags(abort["model_version"])
    assert tags["canary.status"] == "rolled_back" and tags["canary.step"] == "10"
    assert "low_confidence" in tags["canary.reason"]
    msgs = [n for n in r["notifications"] if "rolled back" in n.get("Subject", "")]
    assert msgs and "low_confidence" in msgs[0]["Message"]
    assert r["load"]["failed"] == 0, r["load"]


def _start_output(events: list[dict]) -> dict:
    for e in events:
        if e["type"] == "LambdaFunctionSucceeded":
            doc = json.loads(e["lambdaFunctionSucceededEventDetails"]["output"])
            if "candidate_task_definition" in doc and "progress" in doc:
                return dict(doc)
    raise AssertionError("no CanaryStart output in the history")


def _assert_rolled_back(release: Release, r: dict, kind: str) -> dict:
    assert r["desc"]["status"] == "FAILED" and "RolledBack" in r["states"], r["states"]
    assert "Promote" not in r["states"]
    abort = _abort_output(r["events"])
    assert kind in [b["kind"] for b in abort["breaches"]], abort
    assert r["after"] == r["before"]
    assert release.listener_weights() == {"stable": 100, "canary": 0}
    tags = release.tags(abort["model_version"])
    assert tags["canary.status"] == "rolled_back" and kind in tags["canary.reason"]
    assert r["load"]["failed"] == 0, r["load"]
    return abort


def test_skewed_candidate_rolled_back_on_prediction_drift(release: Release) -> None:
    # Shuffled labels keep the intent mix (so drift cannot see them); a skewed prior changes it.
    release.bars(ESTEIRA_CANARY_MAX_LOW_CONFIDENCE_RATE=OFF["ESTEIRA_CANARY_MAX_LOW_CONFIDENCE_RATE"])
    r = release.release("canary-drift", train_data=release.skewed, deployment_strategy="canary")
    abort = _assert_rolled_back(release, r, "prediction_drift")
    assert [b["kind"] for b in abort["breaches"]] == ["prediction_drift"]
    assert abort["metrics"]["prediction_drift"] > 0.2


def test_slow_candidate_rolled_back_on_p99_latency(release: Release) -> None:
    # A healthy model judged against a p99 bar it cannot meet: the real latency of the real process breaches.
    release.bars(**{**OFF, "ESTEIRA_CANARY_MAX_P99_MS": "0.01"})
    r = release.release("canary-p99", deployment_strategy="canary", canary_steps=[20, 100])
    abort = _assert_rolled_back(release, r, "latency_p99")
    assert r["weights"] == [20]
    assert abort["metrics"]["latency_p99_ms"] > 0.01


def test_failing_candidate_rolled_back_on_5xx_rate(release: Release) -> None:
    """5xx cannot be provoked from a healthy process, so the candidate's error count is published the way its
    EMF would report it (same metric, same dimensions) while it bakes; the decision path is the real one."""
    release.bars(**{**OFF, "ESTEIRA_CANARY_MAX_5XX_RATE": "0.01"})
    stop = threading.Event()
    env = release.stack.environment  # the namespace and Service dimension the serving tasks emit

    def inject(execution_arn: str) -> None:
        def run() -> None:
            sfn, cw = release.aws.client("stepfunctions"), release.aws.client("cloudwatch")
            version = None
            while not stop.is_set():
                if version is None:
                    events = executions.history(sfn, execution_arn)
                    with contextlib.suppress(AssertionError):
                        version = _start_output(events)["model_version"]
                else:
                    dims = [{"Name": "Service", "Value": env["ESTEIRA_METRICS_SERVICE"]},
                            {"Name": "ModelVersion", "Value": version}]  # fmt: skip
                    cw.put_metric_data(Namespace=env["ESTEIRA_METRICS_NAMESPACE"], MetricData=[
                        {"MetricName": "Http5xx", "Dimensions": dims, "Value": 3.0, "Unit": "Count"}])  # fmt: skip
                stop.wait(0.5)

        threading.Thread(target=run, daemon=True).start()

    try:
        r = release.release("canary-5xx", on_start=inject, deployment_strategy="canary")
    finally:
        stop.set()
    abort = _assert_rolled_back(release, r, "http_5xx")
    assert abort["metrics"]["http_5xx"] > 0


def test_shadow_release_reports_agreement_and_serves_nobody(release: Release) -> None:
    release.bars()
    served_before = dict(release.stack.router.served)
    r = release.release("shadow", deployment_strategy="shadow")
    assert r["desc"]["status"] == "SUCCEEDED", r["states"]
    assert _in_order(["CanaryStart", "CanaryWaitStable", "CanaryMode?", "ShadowBake", "ShadowReport", "Shadowed",
                      "NotifyReleased", "ReleaseLock", "Done"], r["states"]), r["states"]  # fmt: skip
    assert "Promote" not in r["states"]
    assert "CanaryShift" not in r["states"] and r["weights"] == []
    shadow = json.loads(r["desc"]["output"])["release"]["output"]["shadow"]
    version = shadow["model_version"]
    # Same data, same recipe: the candidate agrees with the champion on most mirrored requests.
    assert shadow["mirrored_requests"] >= 10
    assert 0.7 <= shadow["agreement_rate"] <= 1.0, shadow
    # No client ever got an answer from the candidate, and the champion alias is where it was.
    canary = release.stack.outputs["canary_service"]
    assert release.stack.router.served.get(canary, 0) == served_before.get(canary, 0)
    assert version not in r["load"]["versions"] and r["load"]["failed"] == 0
    assert r["after"] == r["before"]
    tags = release.tags(version)
    assert tags["canary.status"] == "shadowed" and float(tags["canary.shadow_agreement"]) == shadow["agreement_rate"]
    msgs = [n for n in r["notifications"] if "shadow release report" in n.get("Subject", "")]
    assert msgs and str(shadow["agreement_rate"]) in msgs[0]["Message"]
    assert release.service(canary)["desiredCount"] == 0


def test_unknown_strategy_is_refused_and_rolled_back(release: Release) -> None:
    release.bars()
    r = release.release("bad-strategy", deployment_strategy="blue-green-please")
    assert r["desc"]["status"] == "FAILED"
    assert _in_order(["DeploymentStrategy?", "CanaryStart", "CanaryAbort", "RolledBack", "NotifyRolledBack"],
                     r["states"]), r["states"]  # fmt: skip
    abort = _abort_output(r["events"])
    assert "deployment_strategy" in abort["reason"]
    assert r["after"] == r["before"]
