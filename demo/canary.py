"""Canary releases on the embedded AWS, under load: one that succeeds and one that is rolled back.

`run_canary_demo(aws, stack, ...)` runs on the LocalAWS and the AppliedStack (localaws/applied.py:
what `tofu apply` created) the demo already has, a champion serving behind the applied load balancer.
With a load generator sending BANKING77 messages the whole time, it starts the applied state machine
twice with `deployment_strategy: "canary"` in the execution input:
1. a candidate trained on a fresh 98 % sample of the same data: 10 % -> 50 % -> 100 %, every check
   healthy, promoted;
2. a deliberately degraded candidate (trained on shuffled labels; the offline gate is lowered for
   this run so that it reaches production): the first live check sees its low confidence and its
   prediction drift against the champion, traffic goes back (the `champion` alias never moved), the
   release ends RolledBack and the workflow's execution FAILED.
Both phases must end with zero failed requests.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from pipelines import executions


class LoadGenerator:
    """Closed-loop clients posting one message per request; counts answers per model version and failures."""

    def __init__(self, url: str, texts: Sequence[str], *, clients: int = 2, pause: float = 0.01) -> None:
        self.url, self.texts, self.clients, self.pause = url, list(texts), clients, pause
        self.ok = 0
        self.failed = 0
        self.failures: list[str] = []
        self.versions: Counter[str] = Counter()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                text = rng.choice(self.texts)
                try:
                    resp = client.post("/predict", json={"text": text})
                    good, why = resp.status_code == 200, f"{resp.status_code} {resp.text[:120]}"
                    version = resp.headers.get("x-model-version", "?")
                except httpx.HTTPError as exc:
                    good, why, version = False, repr(exc), "?"
                with self._lock:
                    if good:
                        self.ok += 1
                        self.versions[version] += 1
                    else:
                        self.failed += 1
                        self.failures.append(why)
                self._stop.wait(self.pause)

    def start(self) -> LoadGenerator:
        for i in range(self.clients):
            t = threading.Thread(target=self._run, args=(i,), daemon=True, name=f"load-{i}")
            t.start()
            self._threads.append(t)
        return self

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"ok": self.ok, "failed": self.failed, "versions": dict(self.versions)}

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        for t in self._threads:
            t.join(35)
        return {**self.snapshot(), "failures": self.failures[:5]}


def _frame(train_data: str | Path) -> pd.DataFrame:
    if Path(train_data).exists():
        return pd.read_csv(train_data, dtype=str, keep_default_na=False)
    from pipelines.validate_data import load_validated  # a data URI such as banking77:train

    data = load_validated(str(train_data))
    return pd.DataFrame({"text": list(data.texts), "category": list(data.labels)})


def fresh_sample(train_data: str | Path, out: Path, frac: float = 0.98, seed: int = 11) -> Path:
    """A new training set from the same distribution (as a retrain on fresh data would see): a new dataset
    hash, so the trainer makes a new version instead of reusing the champion's."""
    _frame(train_data).sample(frac=frac, random_state=seed).to_csv(out, index=False)
    return out


def shuffled_labels(train_csv: str | Path, out: Path, seed: int = 7, per_intent: int | None = None) -> Path:
    """The degraded training set: the same label set, labels permuted at random.

    `per_intent` keeps that many rows of each intent first. Labels that carry no signal never let the
    linear models converge: on all 10,003 BANKING77 rows the fit runs to its iteration limits (107 s on
    an idle 2-core machine, 219 s inside the demo). 15 rows per intent fit in about 5 s and are just as
    useless: 98 % of the answers fall below the low-confidence bar.
    """
    frame = _frame(train_csv)
    if per_intent is not None:
        frame = frame.groupby("category", sort=False).head(per_intent).reset_index(drop=True)
    frame["category"] = frame["category"].sample(frac=1.0, random_state=seed).to_numpy()
    frame.to_csv(out, index=False)
    return out


def skewed_labels(train_csv: str | Path, out: Path, share: float = 0.85, seed: int = 7) -> Path:
    """A model that over-predicts one intent: `share` of the other intents' rows relabelled to the first.

    Every label stays present (validation still passes), but the learnt prior is skewed: its live
    intent mix drifts from the champion's, the kind of degradation the prediction-drift check is for.
    """
    import numpy as np

    frame = pd.read_csv(train_csv, dtype=str, keep_default_na=False)
    first = sorted(frame["category"].unique())[0]
    flip = (np.random.default_rng(seed).random(len(frame)) < share) & (frame["category"] != first).to_numpy()
    keep_one = ~frame.duplicated("category")  # at least one row of every intent keeps its label
    frame.loc[flip & ~keep_one.to_numpy(), "category"] = first
    frame.to_csv(out, index=False)
    return out


DATA_INPUTS = ("train_data", "eval_data", "smoke_data")


def stage_data(stack: Any, execution: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """`inputs` with every local file among the data inputs replaced by its copy in the data bucket."""
    out = dict(inputs)
    s3 = stack.local.client("s3")
    for key in DATA_INPUTS:
        value = out.get(key)
        if isinstance(value, str | Path) and Path(value).is_file():
            object_key = f"releases/{execution}/{key}{Path(value).suffix}"
            s3.upload_file(str(value), stack.buckets["data"], object_key)
            out[key] = f"s3://{stack.buckets['data']}/{object_key}"
    return out


def run_release(
    stack: Any,
    name: str,
    inputs: dict[str, Any],
    timeout: float = 900,
    on_start: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """Start one execution, wait for it; (description, states entered, history events).

    Data inputs that name a file on this machine are first copied to the stack's data bucket
    (`releases/<execution>/<input>.csv`), as a user's `aws s3 cp` would: the training task and the
    functions run from their images and cannot read this machine's files, no more than in AWS."""
    inputs = stage_data(stack, name, inputs)
    sfn = stack.local.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=stack.outputs["state_machine_arn"], name=name, input=json.dumps(inputs))[
        "executionArn"
    ]
    if on_start is not None:
        on_start(arn)
    deadline = time.monotonic() + timeout
    while (desc := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} still running after {timeout} s")
        time.sleep(0.5)
    events = executions.history(sfn, arn)
    states = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    print(f"{name}: {desc['status']}; seconds per state {state_seconds(events)}", file=sys.stderr)
    return dict(desc), states, events


def state_seconds(events: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds spent in each state (summed over visits, from the history's timestamps): where a release's time goes."""
    spent: dict[str, float] = {}
    entered: dict[str, Any] = {}
    for e in events:
        if "stateEnteredEventDetails" in e:
            entered[e["stateEnteredEventDetails"]["name"]] = e["timestamp"]
        elif "stateExitedEventDetails" in e and (name := e["stateExitedEventDetails"]["name"]) in entered:
            took = (e["timestamp"] - entered.pop(name)).total_seconds()
            spent[name] = round(spent.get(name, 0.0) + took, 1)
    return spent


def weights_seen(events: list[dict[str, Any]]) -> list[int]:
    """The traffic percentages the CanaryShift steps set, in order (from the execution history)."""
    out = []
    for e in events:
        details = e.get("lambdaFunctionSucceededEventDetails") or {}
        try:
            doc = json.loads(details.get("output") or "{}")
        except ValueError:
            continue
        if isinstance(doc, dict) and {"weight", "next_index", "shifted_at"} <= doc.keys():
            out.append(int(doc["weight"]))
    return out


def _abort(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The CanaryAbort result in an execution history ({} if the release was not rolled back)."""
    for e in events:
        if e["type"] == "LambdaFunctionSucceeded":
            doc = json.loads(e["lambdaFunctionSucceededEventDetails"]["output"])
            if isinstance(doc, dict) and doc.get("status") == "rolled_back":
                return doc
    return {}


def ensure_metrics_interval(stack: Any, seconds: float = 1.0) -> None:
    """Canary checks need fresh metrics: give the stable service a short EMF interval if it has none."""
    ecs = stack.local.client("ecs")
    svc = ecs.describe_services(cluster=stack.cluster, services=[stack.service])["services"][0]
    td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
    serving = next(c for c in td["containerDefinitions"] if c["name"] == "serving")
    env = {e["name"]: e["value"] for e in serving.get("environment", [])}
    if "ESTEIRA_SERVING_METRICS_INTERVAL_S" in env or "SERVING_METRICS_INTERVAL_S" in env:
        return
    env["ESTEIRA_SERVING_METRICS_INTERVAL_S"] = str(seconds)
    keep = ("family", "networkMode", "requiresCompatibilities", "cpu", "memory", "executionRoleArn", "taskRoleArn")
    request = {k: td[k] for k in keep if td.get(k)}
    request["containerDefinitions"] = [
        {**c, "environment": [{"name": k, "value": v} for k, v in sorted(env.items())]} if c is serving else c
        for c in td["containerDefinitions"]
    ]
    new = ecs.register_task_definition(**request)["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=stack.cluster, service=stack.service, taskDefinition=new)
    wait_service_stable(stack, new)


def wait_service_stable(stack: Any, task_definition: str, timeout: float = 180) -> None:
    ecs = stack.local.client("ecs")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deps = ecs.describe_services(cluster=stack.cluster, services=[stack.service])["services"][0]["deployments"]
        if len(deps) == 1 and deps[0]["taskDefinition"] == task_definition and deps[0]["rolloutState"] == "COMPLETED":
            return
        time.sleep(0.5)
    raise TimeoutError(f"{stack.service} did not settle on {task_definition}")


def run_canary_demo(
    aws: Any,
    stack: Any,
    *,
    train_data: str,
    eval_data: str,
    workdir: Path,
    bake_seconds: int = 5,
    steps: Sequence[int] = (10, 50, 100),
    load_texts: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """One successful and one rolled-back canary under load. `train_data`: a CSV (text,category) or data URI.

    Needs the demo's LocalAWS and AppliedStack (a champion already serving). Returns a summary dict;
    raises RuntimeError if either release ends differently than expected or any request failed.
    """
    del aws  # the stack carries its LocalAWS; the parameter keeps the demo's call site explicit
    workdir.mkdir(parents=True, exist_ok=True)
    ensure_metrics_interval(stack)
    lam = stack.local.client("lambda")
    saved = {
        fn: lam.get_function_configuration(FunctionName=stack.outputs["functions"][fn])["Environment"]["Variables"]
        for fn in ("evaluate", "canary_check")
    }
    try:
        return _two_releases(stack, train_data, eval_data, workdir, bake_seconds, steps, load_texts, log)
    finally:  # the demo's later phases get the gate and bars they had
        for fn, env in saved.items():
            lam.update_function_configuration(
                FunctionName=stack.outputs["functions"][fn], Environment={"Variables": env}
            )


def _two_releases(
    stack: Any,
    train_data: str,
    eval_data: str,
    workdir: Path,
    bake_seconds: int,
    steps: Sequence[int],
    load_texts: Sequence[str] | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    from model.config import Settings
    from pipelines import registry
    from pipelines.validate_data import load_validated

    settings = Settings.from_env()
    model_name = settings.registered_model_name
    # The demo retrains on the data the champion saw: no improvement is expected, so that bar is lowered.
    stack.update_function_env("evaluate", ESTEIRA_GATE_MIN_IMPROVEMENT="-1", ESTEIRA_GATE_MAX_INTENT_F1_DROP="1")
    stack.update_function_env("canary_check", ESTEIRA_CANARY_MIN_REQUESTS="20")
    texts = list(load_texts or load_validated(eval_data).texts[:2000])
    url = stack.outputs["serving_url"]
    release = {"deployment_strategy": "canary", "canary_steps": list(steps), "canary_bake_seconds": bake_seconds}
    summary: dict[str, Any] = {}

    def champion() -> str | None:
        v = registry.version_by_alias(settings, registry.CHAMPION)
        return None if v is None else str(v.version)

    # 1. A healthy candidate.
    before = champion()
    load = LoadGenerator(url, texts).start()
    t0 = time.monotonic()
    fresh = fresh_sample(train_data, workdir / "train-fresh-sample.csv")
    desc, states, events = run_release(
        stack, f"canary-good-{int(time.time())}", {"train_data": str(fresh), "eval_data": eval_data, **release}
    )
    traffic = load.stop()
    good = {
        "status": desc["status"],
        "seconds": round(time.monotonic() - t0, 1),
        "weights": weights_seen(events),
        "champion": {"before": before, "after": champion()},
        "load": traffic,
        "states": state_seconds(events),
    }
    summary["good"] = good
    log(
        f"canary 1 (healthy candidate): {good['status']}, steps {good['weights']}, champion {before} -> "
        f"{good['champion']['after']}, {traffic['ok']} requests ok, {traffic['failed']} failed"
    )
    if desc["status"] != "SUCCEEDED" or traffic["failed"]:
        raise RuntimeError(f"healthy canary: {desc['status']}, {_abort(events)}, load {traffic}")

    # 2. A degraded candidate that only the live checks can catch.
    bad_train = shuffled_labels(train_data, workdir / "train-shuffled-labels.csv", per_intent=15)
    stack.update_function_env("evaluate", ESTEIRA_GATE_MIN_ACCURACY="0", ESTEIRA_GATE_MIN_MACRO_F1="0")
    before = champion()
    load = LoadGenerator(url, texts).start()
    t0 = time.monotonic()
    desc, states, events = run_release(
        stack, f"canary-bad-{int(time.time())}", {"train_data": str(bad_train), "eval_data": eval_data, **release}
    )
    traffic = load.stop()
    abort = _abort(events)
    candidate = abort.get("model_version")
    tags = registry.client(settings).get_model_version(model_name, candidate).tags if candidate else {}
    bad = {
        "status": desc["status"],
        "seconds": round(time.monotonic() - t0, 1),
        "weights": weights_seen(events),
        "reason": abort.get("reason"),
        "breaches": [b["kind"] for b in abort.get("breaches", [])],
        "champion": {"before": before, "after": champion()},
        "mlflow_tags": {k: v for k, v in tags.items() if k.startswith("canary.")},
        "load": traffic,
        "states": state_seconds(events),
    }
    summary["degraded"] = bad
    log(
        f"canary 2 (degraded candidate v{candidate}): {bad['status']} at {bad['weights']} %, breaches "
        f"{bad['breaches']}, champion stays {bad['champion']['after']}, {traffic['ok']} requests ok, "
        f"{traffic['failed']} failed"
    )
    if desc["status"] != "FAILED" or "CanaryAbort" not in states or traffic["failed"] or champion() != before:
        raise RuntimeError(f"degraded canary: {desc['status']}, states {states}, load {traffic}")
    return summary
