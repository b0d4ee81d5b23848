"""`make demo`: the whole production line on one machine: train, deploy, serve, drift, alarm, retrain.

Each phase is a function taking the shared context and returning a short line for the progress log;
the first one that raises ends the demo (exit 1) with its message, and every process started so far
is stopped (also on Ctrl-C or `make demo-down`, which sends SIGTERM). See docs/demo.md.

    infrastructure  embedded AWS (moto + localaws), MLflow server, and `tofu apply` of infra/terraform with
                    envs/dev.tfvars (the stack users apply; started in the background)
    data            BANKING77 validated; the launch data set (67 intents) seeded into the applied data bucket
    stack           the apply finishes: state machine, Lambdas, ECS services, load balancer, alarms,
                    EventBridge rules and schedule, all as Terraform created them
    first model     the Step Functions workflow trains, gates, promotes and deploys version 1
    steady traffic  test messages at a steady rate; the scheduled drift check sees nothing
    campaign        the traffic shifts (intent mix, ten new intents); it is labelled as it arrives;
                    the scheduled drift check publishes DriftScore and the drift alarm fires
    retraining      EventBridge -> retrain_trigger -> the workflow retrains on data that now includes the
                    labelled traffic; the new version passes the gate and replaces the old one under load
    after           traffic continues on the new model until it is quiet again: its drift checks say no
                    drift, the retrain-effect watch says "absorbed", the drift alarm is OK and no second
                    retraining started; zero failed requests is required
    compare         old vs new model on campaign messages neither trained on
    canary          two canary releases under load (docs/canary.md): a healthy candidate goes 10 -> 50 -> 100 %,
                    a degraded one (shuffled labels) is rolled back by the live checks; 0 failed requests
    report          reports/loop-<timestamp>.html

The loop proper ends with "after" (the figure docs/benchmarks.md records against the 5 minute goal);
`--no-canary` (or ESTEIRA_DEMO_CANARY=0) skips the canary act.

Time runs faster here, and the demo says so: the embedded AWS divides schedules and alarm periods by
ESTEIRA_DEMO_TIME_SCALE (1440: dev's `rate(6 hours)` drift check runs every 15 s, the drift alarm's
one-hour period is 2.5 s). Everything else is the applied stack as written. One thing is bound
outside it: MLflow's ECS service is this machine's MLflow server (its RDS database has no local data
plane; docs/infra-notes.md).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo.mlflow_server import MlflowServer, free_port
from pipelines import executions

ROOT = Path(__file__).resolve().parents[1]
RATE = float(os.environ.get("ESTEIRA_DEMO_RATE", "25"))  # requests per second, steady
# The campaign's surge, labelled as it arrives, until the alarm-started retraining reads the labels. The
# alarm fires on the drift check's schedule (every 15 s here), often seconds after the shift, so the rate
# sets how much labelled traffic the retrain gets: at 40 req/s a CI run retrained on 145 labelled
# messages (about 4 per new intent) and its drift did not go away. After the retraining starts, the
# campaign goes on at AFTER_RATE on messages neither model saw.
CAMPAIGN_RATE = float(os.environ.get("ESTEIRA_DEMO_CAMPAIGN_RATE", "80"))  # requests per second, campaign
AFTER_RATE = float(os.environ.get("ESTEIRA_DEMO_AFTER_RATE", "40"))  # requests per second, from retraining on
TIME_SCALE = float(os.environ.get("ESTEIRA_DEMO_TIME_SCALE", "1440"))  # rate(6 hours) drift check every 15 s
STEADY_SECONDS = float(os.environ.get("ESTEIRA_DEMO_STEADY_SECONDS", "15"))
ALARM_TIMEOUT = float(os.environ.get("ESTEIRA_DEMO_ALARM_TIMEOUT", "150"))
RETRAIN_TIMEOUT = float(os.environ.get("ESTEIRA_DEMO_RETRAIN_TIMEOUT", "300"))
AFTER_SECONDS = float(os.environ.get("ESTEIRA_DEMO_AFTER_SECONDS", "10"))
CONVERGE_TIMEOUT = float(os.environ.get("ESTEIRA_DEMO_CONVERGE_TIMEOUT", "150"))
CANARY = os.environ.get("ESTEIRA_DEMO_CANARY", "1") != "0"


@dataclass
class Context:
    workdir: Path
    reports: Path
    started: float = field(default_factory=time.monotonic)
    results: dict[str, Any] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    phase: str = ""
    phases: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # live objects: aws, stack, traffic, labeller, ...

    def now(self) -> float:
        return time.monotonic() - self.started

    def event(self, kind: str, text: str) -> None:
        self.events.append({"t": round(self.now(), 2), "kind": kind, "text": text})


class PhaseFailed(RuntimeError):
    pass


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise PhaseFailed(f"{what}: not within {timeout:.0f} s")


# ---------------------------------------------------------------- phases
def phase_infrastructure(ctx: Context) -> str:
    from localaws.applied import MLFLOW_CLUSTER, MLFLOW_SERVICE, image_variables
    from localaws.server import LocalAWS
    from localaws.terraform import StackApply, require_toolchain

    tools = require_toolchain(log=lambda line: print(line, flush=True))  # no other way to create the stack
    server = None
    if not os.environ.get("MLFLOW_TRACKING_URI"):  # boots while the emulator and tofu start
        # As the stack's MLflow task runs it: basic-auth, users set from the stack's secrets at its start.
        server = MlflowServer.as_task(ctx.workdir / "mlflow", free_port()).launch()
        ctx.cleanups.append(server.stop)
    # IAM enforced as in AWS: each Lambda, task and training job calls with its own role (localaws.iam).
    aws = LocalAWS(workdir=ctx.workdir / "localaws", time_scale=TIME_SCALE, enforce_iam=True).start()
    ctx.cleanups.append(aws.stop)
    ctx.state["aws"] = aws
    # The serving image built here (oci.build), "pushed" and pinned by digest as deploy.yml passes it.
    images = image_variables()
    apply = StackApply(aws.endpoint_url, ctx.workdir, *tools, variables=images).start()
    ctx.cleanups.append(apply.stop)
    ctx.state["tofu"] = apply
    if server is not None:
        os.environ["MLFLOW_TRACKING_URI"] = server.wait_healthy().uri
    uri = os.environ["MLFLOW_TRACKING_URI"]
    # MLflow's ECS service is served by this machine's MLflow (its RDS database has no local data plane).
    assert aws.ecs is not None
    aws.ecs.bind_external(MLFLOW_CLUSTER, MLFLOW_SERVICE, uri, on_start=server.take_secrets if server else None)
    os.environ.update(aws.env())  # this process (seeding, labelling, comparing) talks to the emulator
    how = f"tofu apply of infra/terraform (envs/dev.tfvars) started against the emulator ({tools[0]})"
    if images:
        tasks = "; ".join(f"{var.removesuffix('_image_uri')} tasks run from image {ref}" for var, ref in images.items())
    else:
        tasks = "ECS tasks run as local processes (no OCI tools: apt-get install buildah podman runc mmdebstrap)"
    how += f"; {tasks}"
    ctx.results["infrastructure"] = {"endpoint": aws.endpoint_url, "mlflow": uri, "bootstrap": how}
    return f"AWS emulator at {aws.endpoint_url} (time x{TIME_SCALE:g}); MLflow at {uri}; {how}"


BUCKETS = {role: f'module.storage.aws_s3_bucket.this["{role}"]' for role in ("data", "artifacts", "capture")}


def phase_data(ctx: Context) -> str:
    from demo import scenario
    from model.config import Settings
    from pipelines.seed_data import write_labelled_csv, write_labels
    from pipelines.validate_data import load_validated

    train, test = load_validated("banking77:train"), load_validated("banking77:test")
    story = scenario.build(train, test)
    ctx.state["scenario"] = story
    apply = ctx.state["tofu"]
    ids = apply.wait_for(list(BUCKETS.values()))  # the buckets exist long before the apply ends
    buckets = {role: ids[address] for role, address in BUCKETS.items()}
    ctx.state["buckets"] = buckets
    settings = Settings.from_env()
    data = buckets["data"]
    write_labelled_csv(f"s3://{data}/train/seed.csv", *story.launch_train, settings)
    write_labelled_csv(f"s3://{data}/eval/seed.csv", *story.launch_eval, settings)
    write_labels(data, settings)
    ctx.results["data"] = {
        "train_hash": train.dataset_hash,
        "launch_intents": len(story.launch_intents),
        "new_intents": story.new_intents,
        "campaign_intents": story.campaign_intents,
        "bucket_source": "created by tofu",
    }
    return (
        f"BANKING77 valid ({len(train.texts)} + {len(test.texts)} rows); launch data set of "
        f"{len(story.launch_intents)} intents in s3://{data}/train/ and eval/ (buckets created by tofu)"
    )


def phase_stack(ctx: Context) -> str:
    from localaws.applied import AppliedStack

    apply = ctx.state["tofu"]
    apply.join()
    stack = AppliedStack.from_apply(ctx.state["aws"], apply)
    ctx.state["stack"] = stack
    # From here this process (labelling, comparing, the report) reads the registry as an operator: with
    # the workflow user's credential from its secret. MLflow refuses requests without one.
    os.environ.update(stack.mlflow_credential("workflow"))
    ctx.results["stack"] = {
        "state_machine": stack.outputs["state_machine_arn"],
        "serving_url": stack.outputs["alb_url"],
        "alarms": stack.outputs["alarms"],
        "functions": stack.outputs["functions"],
        "planned": apply.planned,
        "applied": _managed(apply),
        "apply_seconds": round(apply.seconds, 1),
    }
    rules = ctx.state["aws"].client("events").list_rules(NamePrefix=stack.cluster)["Rules"]
    schedule = next((r["ScheduleExpression"] for r in rules if r.get("ScheduleExpression")), "none")
    return (
        f"tofu applied {_managed(apply)} of {apply.planned} planned resources in {apply.seconds:.0f} s: "
        f"state machine, {len(stack.outputs['functions'])} Lambdas, ECS services behind {stack.outputs['alb_url']}, "
        f"{len(stack.outputs['alarms'])} alarms, {len(rules)} EventBridge rules; drift check {schedule} "
        f"(every {_schedule_seconds(schedule) / TIME_SCALE:.0f} s at x{TIME_SCALE:g})"
    )


def _managed(apply: Any) -> int:
    """Resources tofu created (its apply_complete messages also cover data sources it read)."""
    return sum(1 for address in apply.created if ".data." not in f".{address}" and not address.startswith("data."))


def _schedule_seconds(expression: str) -> float:
    from localaws.schedule import period_seconds

    return period_seconds(expression) or 0.0


def _executions(ctx: Context) -> list[dict[str, Any]]:
    stack = ctx.state.get("stack")
    if stack is None or not stack.outputs:
        return []
    sfn = ctx.state["aws"].client("stepfunctions")
    return list(sfn.list_executions(stateMachineArn=stack.outputs["state_machine_arn"])["executions"])


def _wait_execution(ctx: Context, arn: str, timeout: float) -> dict[str, Any]:
    sfn = ctx.state["aws"].client("stepfunctions")
    desc = wait_for(
        "the workflow execution",
        lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d,
        timeout,
    )
    events = executions.history(sfn, arn)
    states = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    causes = [
        f"{v.get('error')}: {str(v.get('cause'))[:400]}"
        for e in events
        for k, v in e.items()
        if k.endswith("FailedEventDetails") and k != "executionFailedEventDetails"
    ]
    out = json.loads(desc.get("output") or "{}")
    from demo.canary import state_seconds

    seconds = state_seconds(events)  # where the run's time went, the release's states included
    return {"status": desc["status"], "states": states, "output": out, "name": desc["name"], "causes": causes,
            "seconds": seconds}  # fmt: skip


def phase_first_model(ctx: Context) -> str:
    stack = ctx.state["stack"]
    sfn = ctx.state["aws"].client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=stack.outputs["state_machine_arn"], name=f"launch-{int(time.time())}", input="{}"
    )["executionArn"]
    ctx.event("execution", "launch workflow started")
    run = _wait_execution(ctx, arn, 420)
    ctx.results["first_model"] = run
    if run["status"] != "SUCCEEDED":
        raise PhaseFailed(f"launch execution {run['status']}: {' -> '.join(run['states'])}; {run['causes'][:1]}")
    version = _serving_version(stack.outputs["serving_url"])
    ctx.state["first_version"] = version
    ctx.event("deploy", f"version {version} serving")
    url = stack.outputs["serving_url"]
    return f"workflow SUCCEEDED through {len(run['states'])} states; version {version} serving at {url}"


def _serving_version(url: str) -> str:
    import httpx

    resp = httpx.get(f"{url}/ready", timeout=10)
    if resp.status_code != 200:
        raise PhaseFailed(f"{url}/ready answered {resp.status_code}: {resp.text[:200]}")
    return str(resp.json()["model_version"])


def phase_steady(ctx: Context) -> str:
    from demo.traffic import Traffic

    story, stack = ctx.state["scenario"], ctx.state["stack"]
    traffic = Traffic(stack.outputs["serving_url"], RATE, story.steady).start()
    ctx.state["traffic"] = traffic
    ctx.state["traffic_t0"] = ctx.now()
    ctx.cleanups.append(traffic.stop)
    ctx.event("traffic", f"steady traffic at {RATE:g} req/s")
    time.sleep(STEADY_SECONDS)
    s = traffic.summary()
    drift = stack.alarm("model-drift")
    alarm = _alarm_state(ctx, drift)
    if _alarm_fired(ctx, drift):
        raise PhaseFailed("the drift alarm fired on steady traffic (a false alarm)")
    return f"{s['requests']} requests, live accuracy {s['accuracy']:.3f}, {s['failed']} failed; drift alarm {alarm}"


def _alarm_state(ctx: Context, name: str) -> str:
    cw = ctx.state["aws"].client("cloudwatch")
    alarms = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    return str(alarms[0]["StateValue"]) if alarms else "MISSING"


def _alarm_fired(ctx: Context, name: str) -> bool:
    """Whether the alarm entered ALARM since the demo began: at x1440 an hour-long period lasts 2.5 s,
    so the state-change events EventBridge delivered are the record, not a poll of the current state."""
    if _alarm_state(ctx, name) == "ALARM":
        return True
    for delivery in list(getattr(ctx.state["aws"], "deliveries", [])):
        detail = delivery.get("event", {}).get("detail", {})
        if detail.get("alarmName") == name and detail.get("state", {}).get("value") == "ALARM":
            return True
    return False


def phase_campaign(ctx: Context) -> str:
    from demo.labeller import Labeller
    from model.config import Settings

    story, stack, traffic = ctx.state["scenario"], ctx.state["stack"], ctx.state["traffic"]
    labeller = Labeller(
        ctx.state["aws"].client("s3"),
        stack.environment["ESTEIRA_CAPTURE_S3_URI"],
        stack.buckets["data"],
        story.truth,
        Settings.from_env(),
    ).start()
    ctx.state["labeller"] = labeller
    ctx.cleanups.append(labeller.stop)
    traffic.switch(story.campaign_live, CAMPAIGN_RATE)
    ctx.event("shift", "campaign: new intent mix and ten new intents")
    shift_t = ctx.now()
    drift = stack.alarm("model-drift")
    wait_for("the drift alarm", lambda: _alarm_fired(ctx, drift), ALARM_TIMEOUT, 0.25)
    ctx.state["alarm_t"] = ctx.now()
    ctx.event("alarm", f"{drift} entered ALARM")
    return f"drift alarm fired {ctx.now() - shift_t:.0f} s after the shift; {labeller.labelled} labelled so far"


def phase_retraining(ctx: Context) -> str:
    stack, traffic, labeller = ctx.state["stack"], ctx.state["traffic"], ctx.state["labeller"]
    story = ctx.state["scenario"]
    alarm_t = ctx.state["alarm_t"]
    execution = wait_for(
        "the alarm-started retraining execution",
        lambda: next((e for e in _executions(ctx) if e["name"].startswith("retrain-")), None),
        60,
        0.5,
    )
    # Labelling stops when retraining starts; later traffic is drawn from messages neither model saw.
    labeller.stop()
    traffic.switch(story.campaign_test, AFTER_RATE)
    ctx.event("execution", f"retraining {execution['name']} started by the alarm")
    run = _wait_execution(ctx, execution["executionArn"], RETRAIN_TIMEOUT)
    ctx.results["retraining"] = {**run, "labelled": labeller.labelled, "labelled_files": labeller.files}
    if run["status"] != "SUCCEEDED":
        raise PhaseFailed(f"retraining {run['status']}: {' -> '.join(run['states'])}; {run['causes'][:1]}")
    old = ctx.state["first_version"]
    new = wait_for(
        "the new model serving",
        lambda: (v := _serving_version(stack.outputs["serving_url"])) != old and v,
        60,
        0.5,
    )
    ctx.state["new_version"] = new
    swap_t = ctx.now()
    ctx.event("deploy", f"version {new} serving")
    ctx.results["loop"] = {"alarm_to_new_model_s": round(swap_t - alarm_t, 1)}
    triggers = [e["name"] for e in _executions(ctx) if e["name"].startswith("retrain-")]
    return (
        f"{execution['name']} SUCCEEDED on {labeller.labelled['train']} + {labeller.labelled['eval']} labelled "
        f"messages; version {new} serving {swap_t - alarm_t:.0f} s after the alarm ({len(triggers)} retraining run(s))"
    )


def _drift_state(ctx: Context, version: str) -> dict[str, Any]:
    """The drift check's state for a version (pipelines/drift_state.py), as the scheduled check wrote it."""
    from pipelines.drift_state import state_key

    s3, bucket = ctx.state["aws"].client("s3"), ctx.state["stack"].buckets["artifacts"]
    try:
        body = s3.get_object(Bucket=bucket, Key=state_key("drift-reports", version))["Body"].read()
    except s3.exceptions.NoSuchKey:
        return {}
    return dict(json.loads(body))


def phase_after(ctx: Context) -> str:
    """Traffic goes on under the new model until the loop is quiet again: the retrain-effect watch has
    decided (docs/drift.md), the latest checks say no drift and the drift alarm is OK."""
    traffic, stack, new = ctx.state["traffic"], ctx.state["stack"], ctx.state["new_version"]
    drift = stack.alarm("model-drift")
    start = ctx.now()
    time.sleep(AFTER_SECONDS)

    def quiet() -> dict[str, Any] | None:
        state = _drift_state(ctx, new)
        effect = state.get("retrain_effect") or {}
        history = state.get("history") or []
        if not effect.get("outcome") or not history or history[-1]["status"] != "no_drift":
            return None
        return state if _alarm_state(ctx, drift) == "OK" else None

    state = wait_for("the drift checks back to no drift and the alarm OK", quiet, CONVERGE_TIMEOUT, 1.0)
    traffic.stop()
    s = traffic.summary()
    ctx.results["traffic"] = s
    ctx.event("traffic", "traffic stopped")
    effect = state["retrain_effect"]
    retrains = [e["name"] for e in _executions(ctx) if e["name"].startswith("retrain-")]
    ctx.results["convergence"] = {
        "model_version": new,
        "checks": state["history"],
        "retrain_effect": effect,
        "alarm": _alarm_state(ctx, drift),
        "retraining_runs": len(retrains),
        "quiet_after_s": round(ctx.now() - start, 1),
    }
    if effect["outcome"] != "absorbed":
        raise PhaseFailed(f"the retrain did not absorb the drift: {effect['windows']}")
    if len(retrains) != 1:
        raise PhaseFailed(f"{len(retrains)} retraining runs; the loop did not settle: {retrains}")
    if s["failed"]:
        first = traffic.failed()[0]
        raise PhaseFailed(f"{s['failed']} of {s['requests']} requests failed, first: {first.status} {first.error}")
    ctx.results["loop"]["loop_seconds"] = round(ctx.now(), 1)
    verdicts = ", ".join(h["status"] for h in state["history"])
    return (
        f"{s['requests']} requests in all, 0 failed, versions {s['versions']}; version {new}'s checks: {verdicts}; "
        f"retrain {effect['outcome']}, drift alarm OK, 1 retraining run; loop done in {ctx.now():.0f} s"
    )


def phase_compare(ctx: Context) -> str:
    from demo.compare import compare

    res = compare(ctx.state["scenario"], ctx.state["first_version"], ctx.state["new_version"])
    ctx.results["compare"] = res
    old, new = res["models"]
    return (
        f"campaign messages: version {old['version']} {old['accuracy']:.3f} -> version {new['version']} "
        f"{new['accuracy']:.3f}; new intents {old['new_intents_accuracy']:.3f} -> {new['new_intents_accuracy']:.3f}"
    )


def phase_canary(ctx: Context) -> str:
    from demo.canary import run_canary_demo

    stack, story = ctx.state["stack"], ctx.state["scenario"]
    data = stack.buckets["data"]
    # The loop is over: its scheduled drift check is paused for the planned releases (as an operator
    # would, with `aws events disable-rule`), so that every 15 s it does not take a core from training.
    events = ctx.state["aws"].client("events")
    schedules = [r["Name"] for r in events.list_rules(NamePrefix=stack.cluster)["Rules"] if r.get("ScheduleExpression")]
    for rule in schedules:
        events.disable_rule(Name=rule)
    try:
        res = run_canary_demo(
            ctx.state["aws"],
            stack,
            train_data=f"s3://{data}/train/",
            eval_data=f"s3://{data}/eval/",
            workdir=ctx.workdir / "canary",
            load_texts=story.campaign_test.texts[:2000],
            log=lambda line: None,
        )
    finally:
        for rule in schedules:
            events.enable_rule(Name=rule)
    ctx.results["canary"] = res
    good, bad = res["good"], res["degraded"]
    return (
        f"healthy candidate {good['status']} through {good['weights']} % (champion {good['champion']['before']} -> "
        f"{good['champion']['after']}); degraded candidate rolled back at {bad['weights']} % on {bad['breaches']} "
        f"(champion stays {bad['champion']['after']}); "
        f"failed requests {good['load']['failed'] + bad['load']['failed']}; "
        f"paused during the act: {', '.join(schedules) or 'no schedule'}"
    )


def phase_report(ctx: Context) -> str:
    from demo.report import collect, write_report

    apply = ctx.state.get("tofu")
    if apply is not None:
        ctx.results["infrastructure"]["tofu"] = {
            "planned": apply.planned,
            "resources": _managed(apply),
            "seconds": round(apply.seconds, 1),
        }
    data = collect(ctx)
    path = write_report(data, ctx.reports)
    ctx.results["report"] = str(path)
    return f"{path}"


PHASES: list[tuple[str, Callable[[Context], str]]] = [
    ("infrastructure", phase_infrastructure),
    ("data", phase_data),
    ("stack", phase_stack),
    ("first model", phase_first_model),
    ("steady traffic", phase_steady),
    ("campaign", phase_campaign),
    ("retraining", phase_retraining),
    ("after", phase_after),
    ("compare", phase_compare),
    ("canary", phase_canary),
    ("report", phase_report),
]


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    from demo.status import Status

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workdir", default=".esteira/demo")
    parser.add_argument("--reports", default="reports")
    parser.add_argument("--no-canary", action="store_true", help="skip the canary act after the loop")
    args = parser.parse_args(argv)
    phases = [(n, p) for n, p in PHASES if n != "canary" or (CANARY and not args.no_canary)]
    workdir = Path(args.workdir).resolve()
    ctx = Context(workdir, Path(args.reports).resolve())
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "demo.pid").write_text(str(os.getpid()))
    signal.signal(signal.SIGTERM, _terminate)  # `make demo-down`: clean up like Ctrl-C
    status = Status(ctx).start()
    failed: str | None = None
    try:
        for i, (name, phase) in enumerate(phases, 1):
            ctx.phase = name
            entry: dict[str, Any] = {"name": name, "start": round(ctx.now(), 2)}
            ctx.phases.append(entry)
            status.phase_started(i, len(phases), name)
            try:
                line = phase(ctx)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # any phase failure ends the demo with a clear message
                entry["end"], entry["status"] = round(ctx.now(), 2), "failed"
                failed = f"phase '{name}' failed: {exc}"
                break
            entry["end"], entry["status"], entry["line"] = round(ctx.now(), 2), "ok", line
            status.phase_done(name, line, entry["end"] - entry["start"])
    except KeyboardInterrupt as exc:
        failed = f"interrupted ({exc or 'Ctrl-C'})"
    finally:
        status.stop()
        if "aws" in ctx.state:  # any AccessDenied fails the demo: it would have failed in AWS
            from localaws.applied import record_iam_usage

            try:
                record_iam_usage(ctx.state["aws"], "demo")
            except AssertionError as exc:
                failed = failed or str(exc)
        for cleanup in reversed(ctx.cleanups):
            try:
                cleanup()
            except Exception as exc:  # keep cleaning up the rest
                print(f"cleanup: {exc!r}", file=sys.stderr)
        (workdir / "demo.pid").unlink(missing_ok=True)
    total = ctx.now()
    ctx.results["phases"] = ctx.phases
    ctx.results["events"] = ctx.events
    ctx.results["total_seconds"] = round(total, 1)
    (workdir / "results.json").write_text(json.dumps(ctx.results, indent=1, default=str))
    if failed:
        print(f"demo FAILED after {total:.0f}s: {failed}", file=sys.stderr)
        return 1
    loop = ctx.results.get("loop", {})
    print(
        f"demo finished in {total:.0f}s (the loop {loop.get('loop_seconds')} s, alarm -> new model serving "
        f"{loop.get('alarm_to_new_model_s')} s); "
        f"report {ctx.results.get('report')}; results in {workdir / 'results.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
