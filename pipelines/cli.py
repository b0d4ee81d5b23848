"""`esteira`: one subcommand per pipeline step, each printing its JSON result on stdout.

Exit codes: 0 done (read `status` in the JSON), 2 the data failed validation or could not be read,
1 anything else. Errors are printed as JSON too, so a Step Functions task or a script can parse them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from model.data import DataSourceError
from model.validate import DataValidationError


def _print(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2, default=str))


def _run(step: str, fn: Callable[[], dict[str, Any]]) -> int:
    try:
        _print(fn())
        return 0
    except DataValidationError as exc:
        _print(
            {
                "step": step,
                "status": "invalid",
                "error": str(exc),
                "issues": [str(i) for i in exc.issues if i.severity == "error"][:50],
            }
        )
        print(str(exc), file=sys.stderr)
        return 2
    except DataSourceError as exc:
        _print({"step": step, "status": "unreadable", "error": str(exc)})
        print(str(exc), file=sys.stderr)
        return 2
    except ValueError as exc:  # configuration the step cannot run with (e.g. ESTEIRA_CAPTURE_S3_URI unset)
        _print({"step": step, "status": "error", "error": str(exc)})
        print(str(exc), file=sys.stderr)
        return 1


def _lineage(args: argparse.Namespace) -> int:
    """`esteira lineage <version>` / `esteira lineage --serving`: read-only, rendered afresh from MLflow."""
    from model.config import Settings
    from pipelines import lineage, registry

    settings = Settings.from_env()
    if args.serving:
        report = lineage.serving(settings, url=args.url, samples=args.samples)
        print(lineage.render_serving_text(report) if args.format == "text" else json.dumps(report, indent=2), end="")
        if args.format == "json":
            print()
        return 0 if report["agree"] else 3
    if not args.version:
        print("esteira lineage: give a model version, or --serving", file=sys.stderr)
        return 2
    version = args.version
    if not version.isdigit():
        found = registry.version_by_alias(settings, version)
        if found is None:
            print(f"no version has the alias {version!r}", file=sys.stderr)
            return 1
        version = str(found.version)
    doc = lineage.build_document(settings, version)
    print(lineage.render_text(doc) if args.format == "text" else json.dumps(doc, indent=2, default=str), end="")
    if args.format == "json":
        print()
    return 0


def _start_training(state_machine_arn: str | None, raw_input: str) -> dict[str, Any]:
    """Start the workflow with a trigger naming the caller (STS GetCallerIdentity) as a person."""
    import os
    import time
    import uuid

    from pipelines import aws, lineage

    arn = state_machine_arn or os.environ.get("ESTEIRA_STATE_MACHINE_ARN", "")
    if not arn:
        raise ValueError("give --state-machine-arn or set ESTEIRA_STATE_MACHINE_ARN")
    payload = json.loads(raw_input)
    if not isinstance(payload, dict):
        raise ValueError("--input must be a JSON object")
    payload["trigger"] = lineage.person_trigger()
    name = f"person-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
    started = aws.client("stepfunctions").start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))
    return {
        "step": "start-training",
        "status": "started",
        "execution_arn": started["executionArn"],
        "trigger": payload["trigger"],
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esteira", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate-data", help="validate a labelled CSV/Parquet (local path, s3:// or banking77:<split>)")
    p.add_argument("--data", default="banking77:train")
    p.add_argument("--new-label", action="append", default=[], help="declare a label not in BANKING77 (repeatable)")
    p.add_argument("--label-column", default=None)

    p = sub.add_parser("train", help="validate, train, log to MLflow, register as challenger")
    p.add_argument("--train-data", default="banking77:train")
    p.add_argument("--eval-data", default="banking77:test")
    p.add_argument("--new-label", action="append", default=[])
    p.add_argument("--search", action="store_true", help="hyper-parameter search, logged as nested runs")
    p.add_argument(
        "--reference",
        default="auto",
        choices=["auto", "evaluation", "recent-traffic"],
        help="what the drift reference profile describes (pipelines/reference.py, docs/drift.md)",
    )
    p.add_argument("--execution-arn", default=None, help="the Step Functions execution (recorded in the lineage)")
    p.add_argument("--trigger", default=None, help="JSON: what started the execution (pipelines/lineage.py)")

    p = sub.add_parser("evaluate", help="score challenger and champion on one evaluation set; apply the gate")
    p.add_argument("--model-version", default=None, help="default: the 'challenger' alias")
    p.add_argument("--eval-data", default="banking77:test")
    p.add_argument("--execution-arn", default=None)

    p = sub.add_parser("promote", help="move 'champion' to the version if the gate passes")
    p.add_argument("--model-version", default=None)
    p.add_argument("--eval-data", default="banking77:test")
    p.add_argument("--execution-arn", default=None)

    p = sub.add_parser("lineage", help="a version's lineage (docs/governance.md), or which version serves and why")
    p.add_argument("version", nargs="?", default=None, help="a model version (or an alias: champion, challenger)")
    p.add_argument("--serving", action="store_true", help="ask the service which version answers traffic now")
    p.add_argument("--url", default=None, help="with --serving: the service (default ESTEIRA_SERVING_URL)")
    p.add_argument("--samples", type=int, default=10, help="with --serving: GET /ready this many times")
    p.add_argument("--format", choices=["json", "text"], default="json")

    p = sub.add_parser("start-training", help="start the workflow as yourself (the trigger names you)")
    p.add_argument("--state-machine-arn", default=None, help="default: ESTEIRA_STATE_MACHINE_ARN")
    p.add_argument("--input", default="{}", help="JSON object: the execution input (train_data, eval_data, ...)")

    p = sub.add_parser("seed-data", help="validate data into s3://BUCKET/train/ and eval/")
    p.add_argument("--bucket", required=True, help="the data bucket (Terraform output bucket_names.data)")
    p.add_argument("--train-data", default="banking77:train")
    p.add_argument("--eval-data", default="banking77:test")
    p.add_argument("--exclude-intent", action="append", default=[], help="leave an intent out (repeatable)")

    p = sub.add_parser("drift-check", help="compare the latest capture window with the champion's reference profile")
    p.add_argument("--model-version", default=None, help="default: the 'champion' alias")
    p.add_argument("--no-publish", action="store_true", help="do not send CloudWatch metrics")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A SageMaker training job (and an operator who names the secret) has no injected credential: the
    # MLflow user comes from ESTEIRA_MLFLOW_CREDENTIALS_SECRET. Does nothing where one is already set.
    from pipelines.registry import use_credentials_from_secret

    use_credentials_from_secret()
    if args.command == "validate-data":
        from pipelines.validate_data import validate_data

        return _run(
            "validate-data",
            lambda: validate_data(args.data, new_labels=args.new_label, label_column=args.label_column),
        )
    if args.command == "train":
        from pipelines.train import train

        return _run(
            "train",
            lambda: train(
                args.train_data,
                args.eval_data,
                search=args.search,
                new_labels=args.new_label,
                reference_policy=args.reference,
                execution_arn=args.execution_arn,
                trigger=args.trigger,
            ),
        )
    if args.command == "evaluate":
        from pipelines.evaluate import evaluate

        return _run("evaluate", lambda: evaluate(args.model_version, args.eval_data, execution_arn=args.execution_arn))
    if args.command == "promote":
        from pipelines.promote import promote

        return _run(
            "promote", lambda: promote(args.model_version, eval_uri=args.eval_data, execution_arn=args.execution_arn)
        )
    if args.command == "lineage":
        return _lineage(args)
    if args.command == "start-training":
        return _run("start-training", lambda: _start_training(args.state_machine_arn, args.input))
    if args.command == "seed-data":
        from pipelines.seed_data import seed_data

        return _run(
            "seed-data",
            lambda: seed_data(
                args.bucket,
                train_source=args.train_data,
                eval_source=args.eval_data,
                exclude_intents=args.exclude_intent,
            ),
        )
    if args.command == "drift-check":
        from pipelines.drift_check import drift_check

        return _run("drift-check", lambda: drift_check(args.model_version, publish_metrics=not args.no_publish))
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
