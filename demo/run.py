"""`make demo`: run the production line locally, phase by phase, and stop at the first failure.

Each phase is a function taking the shared context and returning a short line for the progress log.
Later phases (the emulator, serving, traffic, drift, retraining) are added to PHASES in order.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo.mlflow_server import MlflowServer, free_port


@dataclass
class Context:
    workdir: Path
    results: dict[str, Any] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)


class PhaseFailed(RuntimeError):
    pass


def phase_mlflow(ctx: Context) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return f"using remote MLflow at {uri}"
    server = MlflowServer(ctx.workdir / "mlflow", free_port()).start()
    ctx.cleanups.append(server.stop)
    os.environ["MLFLOW_TRACKING_URI"] = server.uri
    return f"mlflow server healthy at {server.uri} (sqlite, artifacts in {server.root})"


def phase_validate(ctx: Context) -> str:
    from pipelines.validate_data import validate_data

    res = validate_data("banking77:train")
    ctx.results["validate"] = res
    return f"{res['rows']} rows, {res['labels']} intents, dataset {res['dataset_hash'][:19]}"


def phase_train(ctx: Context) -> str:
    from pipelines.train import train

    res = train("banking77:train", "banking77:test")
    ctx.results["train"] = res
    m = res["metrics"]
    acc, f1 = m.get("accuracy", 0.0), m.get("macro_f1", 0.0)
    return f"model version {res['model_version']} ({res['status']}): accuracy {acc:.4f}, macro-F1 {f1:.4f}"


def phase_evaluate(ctx: Context) -> str:
    from pipelines.evaluate import evaluate

    res = evaluate(ctx.results["train"]["model_version"])
    ctx.results["evaluate"] = res
    return f"gate {'passed' if res['gate']['passed'] else 'REJECTED'}: {'; '.join(res['gate']['reasons'])}"


def phase_promote(ctx: Context) -> str:
    from pipelines.promote import promote

    res = promote(ctx.results["train"]["model_version"], evaluation=ctx.results["evaluate"])
    ctx.results["promote"] = res
    if res["status"] == "rejected":
        raise PhaseFailed(f"the first model was rejected by the gate: {res['reasons']}")
    return f"{res['status']}: champion is version {res['champion']}"


def phase_local_aws(ctx: Context) -> str:
    """The embedded AWS plus the workflow stack. Terraform is not applied to it here (see docs/infra-notes.md:
    moto cannot create alarms or the state machine through the provider), so the stack is created by
    localaws.stack, which mirrors infra/terraform/modules/workflow resource for resource."""
    from localaws.__main__ import ENV_PASSTHROUGH
    from localaws.server import LocalAWS
    from localaws.stack import WorkflowStack

    aws = LocalAWS().start()
    ctx.cleanups.append(aws.stop)
    env = {k: os.environ[k] for k in ENV_PASSTHROUGH if os.environ.get(k)}
    stack = WorkflowStack(aws, environment=env).deploy()
    ctx.results["local_aws"] = {
        "endpoint": aws.endpoint_url,
        **{k: v for k, v in stack.outputs.items() if isinstance(v, str)},
    }
    ctx.aws, ctx.stack = aws, stack  # type: ignore[attr-defined]
    return f"moto + localaws at {aws.endpoint_url}; bootstrap: localaws.stack (Python), not tofu apply"


def phase_workflow(ctx: Context) -> str:
    """Run the real state machine: validate, train (ECS task), evaluate, gate, promote, deploy, smoke test."""
    import time as _time

    aws, stack = ctx.aws, ctx.stack  # type: ignore[attr-defined]
    sfn = aws.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=stack.outputs["state_machine_arn"],
        name=f"demo-{int(_time.time())}",
        input=json.dumps({"train_data": "banking77:train", "eval_data": "banking77:test"}),
    )["executionArn"]
    while (desc := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        _time.sleep(1)
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    states = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    ctx.results["workflow"] = {"status": desc["status"], "states": states}
    if desc["status"] != "SUCCEEDED":
        raise PhaseFailed(f"execution {desc['status']}: states {' -> '.join(states)}")
    return f"SUCCEEDED through {len(states)} states; serving at {stack.outputs['serving_url']}"


def phase_traffic(ctx: Context) -> str:
    """Send BANKING77 test messages to the deployed endpoint and check its answers."""
    import httpx

    from pipelines.validate_data import load_validated

    url = ctx.stack.outputs["serving_url"]  # type: ignore[attr-defined]
    test = load_validated("banking77:test")
    texts, labels = test.texts[:640], test.labels[:640]
    correct, versions = 0, set()
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(0, len(texts), 64):
            resp = client.post("/predict", json={"texts": texts[i : i + 64]})
            if resp.status_code != 200:
                raise PhaseFailed(f"/predict answered {resp.status_code}: {resp.text[:200]}")
            versions.add(resp.headers.get("x-model-version"))
            preds = resp.json()["predictions"]
            correct += sum(p["intent"] == lbl for p, lbl in zip(preds, labels[i : i + 64], strict=True))
    ctx.results["traffic"] = {"requests": len(texts), "accuracy": correct / len(texts), "versions": sorted(versions)}
    return f"{len(texts)} messages, accuracy {correct / len(texts):.3f}, model version(s) {sorted(versions)} at {url}"


PHASES: list[tuple[str, Callable[[Context], str]]] = [
    ("mlflow", phase_mlflow),
    ("validate", phase_validate),
    ("train", phase_train),
    ("evaluate", phase_evaluate),
    ("promote", phase_promote),
    ("local-aws", phase_local_aws),
    ("workflow", phase_workflow),
    ("traffic", phase_traffic),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workdir", default=".esteira/demo")
    args = parser.parse_args(argv)
    ctx = Context(Path(args.workdir).resolve())
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    failed: str | None = None
    try:
        for i, (name, phase) in enumerate(PHASES, 1):
            t0 = time.monotonic()
            print(f"[{i}/{len(PHASES)}] {name} ...", flush=True)
            try:
                line = phase(ctx)
            except Exception as exc:  # any phase failure ends the demo with a clear message
                failed = f"phase '{name}' failed: {exc}"
                break
            print(f"      {line}  ({time.monotonic() - t0:.1f}s)", flush=True)
    except KeyboardInterrupt:
        failed = "interrupted"
    finally:
        for cleanup in reversed(ctx.cleanups):
            cleanup()
    (ctx.workdir / "results.json").write_text(json.dumps(ctx.results, indent=1, default=str))
    if failed:
        print(f"demo FAILED after {time.monotonic() - started:.0f}s: {failed}", file=sys.stderr)
        return 1
    print(f"demo finished in {time.monotonic() - started:.0f}s; results in {ctx.workdir / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
