"""Canary releases run for real on the embedded AWS: every traffic step, a rollback, and the records.

Same ASL, same handlers, real MLflow registry, two real serving processes behind the weighted router
that follows the ALB listener weights the workflow sets; a load generator runs during every release
and no request may fail.
"""

from __future__ import annotations

import json

from tests.canary.conftest import OFF, Release

CANARY = ["Promote", "ReleaseDefaults", "ReleaseConfig", "DeploymentStrategy?", "CanaryStart", "CanaryWaitStable",
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
    assert r["desc"]["status"] == "SUCCEEDED", r["states"]
    assert _in_order([*CANARY, "CanaryFinalize", "NotifyCanaryPromoted", "ReleaseLock", "Done"], r["states"])
    assert "Deploy" not in r["states"]
    assert r["weights"] == [10, 50, 100]
    assert r["states"].count("CanaryCheck") >= 3
    out = json.loads(r["desc"]["output"])
    version = out["canary"]["model_version"]
    assert r["after"] == version != r["before"]
    # The stable service now runs the candidate's revision; the canary service is empty; traffic is on stable.
    assert release.service(release.stack.service)["taskDefinition"] == out["canary"]["candidate_task_definition"]
    assert release.service(release.stack.outputs["canary_service"])["desiredCount"] == 0
    assert release.listener_weights() == {"stable": 100, "canary": 0}
    tags = release.tags(version)
    assert tags["canary.status"] == "succeeded" and tags["canary.step"] == "100"
    assert any("canary release succeeded" in n.get("Subject", "") for n in r["notifications"])
    # Both versions answered real traffic during the release, and nothing failed.
    assert r["load"]["failed"] == 0, r["load"]
    assert r["load"]["versions"].get(version, 0) > 0 and r["load"]["versions"].get(r["before"], 0) > 0
    # Every alarm of the candidate is gone once the release is over.
    alarms = release.aws.client("cloudwatch").describe_alarms(AlarmNamePrefix="esteira-canary-")["MetricAlarms"]
    assert alarms == []


def test_degraded_candidate_rolled_back_on_low_confidence(release: Release) -> None:
    release.bars(ESTEIRA_CANARY_MAX_PREDICTION_DRIFT=OFF["ESTEIRA_CANARY_MAX_PREDICTION_DRIFT"])
    r = release.release("canary-lowconf", train_data=release.shuffled, deployment_strategy="canary")
    assert r["desc"]["status"] == "FAILED"
    assert r["desc"].get("error") == "CanaryRolledBack", r["desc"]
    assert _in_order([*CANARY, "CanaryAbort", "NotifyCanaryRolledBack", "ReleaseLockAfterCanaryRollback",
                      "CanaryRolledBack"], r["states"]), r["states"]  # fmt: skip
    assert r["weights"] == [10], "the first step's check must stop the release"
    abort = _abort_output(r["events"])
    assert [b["kind"] for b in abort["breaches"]] == ["low_confidence"], abort
    assert r["after"] == r["before"], "champion alias restored"
    assert release.listener_weights() == {"stable": 100, "canary": 0}
    assert release.service(release.stack.outputs["canary_service"])["desiredCount"] == 0
    tags = release.tags(abort["model_version"])
    assert tags["canary.status"] == "rolled_back" and tags["canary.step"] == "10"
    assert "low_confidence" in tags["canary.reason"]
    msgs = [n for n in r["notifications"] if "canary release failed" in n.get("Subject", "")]
    assert msgs and "low_confidence" in msgs[0]["Message"]
    assert r["load"]["failed"] == 0, r["load"]
