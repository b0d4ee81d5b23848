"""`python -m localaws`: start the embedded AWS, `tofu apply` the stack on it, optionally run it once.

    python -m localaws --deploy --run --train-data banking77:train --eval-data banking77:test

--deploy applies infra/terraform with envs/dev.tfvars (localaws.applied), exactly as `make demo` does.
Needs MLFLOW_TRACKING_URI (a running MLflow server, e.g. the demo's), which serves the stack's MLflow
service. Prints the endpoint and, with --run, the states the execution went through; without --run
it serves until Ctrl-C so other tools can use AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from localaws.applied import AppliedStack, applied_stack
from localaws.server import LocalAWS
from pipelines import executions


def _run(stack: AppliedStack, inputs: dict[str, Any], timeout: float) -> int:
    sfn = stack.local.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=stack.outputs["state_machine_arn"], name=f"cli-{int(time.time())}", input=json.dumps(inputs)
    )["executionArn"]
    deadline = time.monotonic() + timeout
    while (desc := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        if time.monotonic() > deadline:
            print(f"still running after {timeout} s", file=sys.stderr)
            return 1
        time.sleep(1)
    events = executions.history(sfn, arn)
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
    parser.add_argument("--deploy", action="store_true", help="tofu apply infra/terraform (envs/dev.tfvars)")
    parser.add_argument("--run", action="store_true", help="run the workflow once and exit")
    parser.add_argument("--train-data", default="banking77:train", help="copied to s3://<data bucket>/train/")
    parser.add_argument("--eval-data", default="banking77:test", help="copied to s3://<data bucket>/eval/")
    parser.add_argument("--smoke-data", default="")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--workdir", default=".esteira/localaws-cli")
    args = parser.parse_args(argv)
    try:
        if args.deploy or args.run:
            uri = os.environ.get("MLFLOW_TRACKING_URI")
            if not uri:
                print("MLFLOW_TRACKING_URI is not set: start MLflow first (make demo does)", file=sys.stderr)
                return 2
            with applied_stack(Path(args.workdir).resolve(), uri) as stack:
                print(f"localaws endpoint: {stack.local.endpoint_url}", flush=True)
                print(f"state machine: {stack.outputs['state_machine_arn']}\nserving: {stack.outputs['serving_url']}")
                if args.run:
                    from pipelines.seed_data import seed_data

                    # The data steps read S3, never the internet: the data sets and the label set go in first.
                    os.environ.update(stack.local.env())
                    seeded = seed_data(stack.buckets["data"], train_source=args.train_data, eval_source=args.eval_data)
                    rows = f"{seeded['train']['rows']} + {seeded['eval']['rows']} rows"
                    print(f"seeded s3://{stack.buckets['data']}/: {rows}")
                    return _run(stack, {"smoke_data": args.smoke_data}, args.timeout)
                _serve_forever()
            return 0
        with LocalAWS(port=args.port) as aws:
            print(f"localaws endpoint: {aws.endpoint_url}  (workdir {aws.workdir})", flush=True)
            _serve_forever()
        return 0
    except KeyboardInterrupt:
        return 0


def _serve_forever() -> None:
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
