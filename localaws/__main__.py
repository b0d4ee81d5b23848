"""`python -m localaws`: start the embedded AWS, deploy the workflow on it, optionally run it once.

    python -m localaws --deploy --run --train-data banking77:train --eval-data banking77:test

Needs MLFLOW_TRACKING_URI (a running MLflow server, e.g. the demo's). Prints the endpoint and, with
--run, the states the execution went through; without --run it serves until Ctrl-C so other tools
can use AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from localaws.server import LocalAWS
from localaws.stack import WorkflowStack

ENV_PASSTHROUGH = (
    "MLFLOW_TRACKING_URI",
    "ESTEIRA_MODEL_NAME",
    "ESTEIRA_EXPERIMENT",
    "ESTEIRA_DATA_DIR",
    "ESTEIRA_MIN_ROWS",
    "ESTEIRA_GATE_MIN_ACCURACY",
    "ESTEIRA_GATE_MIN_MACRO_F1",
    "ESTEIRA_GATE_MIN_IMPROVEMENT",
)


def _run(aws: LocalAWS, stack: WorkflowStack, inputs: dict[str, Any], timeout: float) -> int:
    sfn = aws.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=stack.outputs["state_machine_arn"], name=f"cli-{int(time.time())}", input=json.dumps(inputs)
    )["executionArn"]
    deadline = time.monotonic() + timeout
    while (desc := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        if time.monotonic() > deadline:
            print(f"still running after {timeout} s", file=sys.stderr)
            return 1
        time.sleep(1)
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    for e in events:
        if "stateEnteredEventDetails" in e:
            print(f"  {e['stateEnteredEventDetails']['name']}")
        for key, val in e.items():
            if key.endswith("FailedEventDetails"):
                print(f"    ! {val.get('error')}: {str(val.get('cause'))[:300]}")
    print(json.dumps({"status": desc["status"], "serving_url": stack.outputs["serving_url"]}, indent=1))
    return 0 if desc["status"] == "SUCCEEDED" else 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localaws", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--deploy", action="store_true", help="deploy the train-evaluate-deploy workflow")
    parser.add_argument("--run", action="store_true", help="run the workflow once and exit")
    parser.add_argument("--train-data", default="banking77:train")
    parser.add_argument("--eval-data", default="banking77:test")
    parser.add_argument("--smoke-data", default="")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args(argv)
    aws = LocalAWS(port=args.port).start()
    print(f"localaws endpoint: {aws.endpoint_url}  (workdir {aws.workdir})", flush=True)
    try:
        if args.deploy or args.run:
            env = {k: os.environ[k] for k in ENV_PASSTHROUGH if os.environ.get(k)}
            if "MLFLOW_TRACKING_URI" not in env:
                print("MLFLOW_TRACKING_URI is not set: start MLflow first (make demo does)", file=sys.stderr)
                return 2
            stack = WorkflowStack(aws, environment=env).deploy()
            print(f"state machine: {stack.outputs['state_machine_arn']}\nserving: {stack.outputs['serving_url']}")
            if args.run:
                inputs = {"train_data": args.train_data, "eval_data": args.eval_data, "smoke_data": args.smoke_data}
                return _run(aws, stack, inputs, args.timeout)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        aws.stop()


if __name__ == "__main__":
    sys.exit(main())
