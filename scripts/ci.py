"""CI/CD helpers that Jenkins, GitHub Actions and a laptop call through mk/ci.mk.

Why a script and not shell in the pipelines: the same logic must run in Jenkins, in GitHub Actions and
locally, must be testable against a real HTTP server and an emulated AWS, and must never echo a token.
Only the standard library and boto3 (already in the lock) are used.

Subcommands:
  report     summarise reports/junit-*.xml and reports/coverage-*.xml as Markdown (job summaries)
  images     resolve the pushed images' digests from ECR and write build/images.json
  dispatch   start the GitHub Actions deploy workflow (workflow_dispatch) with those digests
  smoke      post-deploy smoke test of the inference service (API in docs/serving.md, names in contract.yaml)
  train      start the train-evaluate-deploy state machine and optionally wait for its result

Environment (all optional unless the subcommand needs it):
  GITHUB_TOKEN        token allowed to dispatch workflows (dispatch); never printed
  GITHUB_API_URL      GitHub API base, default https://api.github.com (GitHub Enterprise, tests)
  AWS_REGION          region for boto3 clients (images, train)
  AWS_ENDPOINT_URL    emulator endpoint (tests only); boto3 honours it natively
  TRAIN_INPUT         JSON object added to the execution input (train), default {}
  TRAIN_TRIGGER       who started the run, recorded in the input (train), default "ci"
  TRAIN_DATA_URI      training data override added as data_uri (train), default unset
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# ECR image reference pinned by digest: what deploy.yml accepts, so a tag can never be deployed.
DIGEST_REF = re.compile(r"^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$")
GIT_SHA = re.compile(r"^[0-9a-f]{40}$")
# Image keys -> workflow_dispatch input names of .github/workflows/deploy.yml.
IMAGE_INPUTS = {
    "serving": "serving_image",
    "training": "training_image",
    "lambda": "lambda_image",
    "mlflow": "mlflow_image",
}


class CiError(Exception):
    """A failure the pipeline should show as one clear line (no traceback)."""


# ---------------------------------------------------------------------------------------------- report
@dataclass
class SuiteTotals:
    name: str
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0


def junit_totals(path: Path) -> SuiteTotals:
    """Totals of one JUnit XML file (pytest writes <testsuites><testsuite .../></testsuites>)."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    totals = SuiteTotals(path.stem.removeprefix("junit-"))
    for suite in suites:
        totals.tests += int(suite.get("tests", 0))
        totals.failures += int(suite.get("failures", 0))
        totals.errors += int(suite.get("errors", 0))
        totals.skipped += int(suite.get("skipped", 0))
        totals.seconds += float(suite.get("time", 0.0))
    return totals


def coverage_rate(path: Path) -> float:
    """Line coverage (0..1) of a Cobertura XML file as written by pytest-cov."""
    return float(ET.parse(path).getroot().get("line-rate", 0.0))


def report(reports: Path) -> tuple[str, bool]:
    """Markdown summary and whether every suite passed; no JUnit file at all is a failure."""
    junits = sorted(reports.glob("junit-*.xml"))
    if not junits:
        raise CiError(f"no JUnit XML in {reports}/ (pytest writes reports/junit-<target>.xml)")
    lines = ["| suite | tests | failed | errors | skipped | seconds |", "|---|---:|---:|---:|---:|---:|"]
    ok = True
    for path in junits:
        t = junit_totals(path)
        ok = ok and t.failures == 0 and t.errors == 0
        lines.append(f"| {t.name} | {t.tests} | {t.failures} | {t.errors} | {t.skipped} | {t.seconds:.1f} |")
    covs = sorted(reports.glob("coverage-*.xml"))
    if covs:
        lines += ["", "| coverage | lines |", "|---|---:|"]
        lines += [f"| {p.stem.removeprefix('coverage-')} | {coverage_rate(p):.1%} |" for p in covs]
    head = "### Tests: passed" if ok else "### Tests: FAILED"
    return "\n".join([head, "", *lines]) + "\n", ok


# ---------------------------------------------------------------------------------------------- images
def parse_image_refs(items: list[str]) -> dict[str, str]:
    """`key=registry/repo:tag` pairs -> {key: ref}; keys must be the deploy workflow's images."""
    refs: dict[str, str] = {}
    for item in items:
        key, sep, ref = item.partition("=")
        if not sep or key not in IMAGE_INPUTS or ":" not in ref.rsplit("/", 1)[-1]:
            raise CiError(f"--image wants <{'|'.join(IMAGE_INPUTS)}>=<registry>/<repo>:<tag>, got {item!r}")
        refs[key] = ref
    return refs


def resolve_digests(refs: dict[str, str], git_sha: str, ecr: Any) -> dict[str, Any]:
    """Ask ECR (the source of truth, not the local Docker cache) for each pushed tag's digest."""
    images: dict[str, str] = {}
    for key, ref in refs.items():
        repo_part, tag = ref.rsplit(":", 1)
        registry, repository = repo_part.split("/", 1)
        try:
            detail = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"]
        except ecr.exceptions.ImageNotFoundException as exc:
            raise CiError(f"{ref} is not in ECR: push it first (make push-images)") from exc
        images[key] = f"{registry}/{repository}@{detail[0]['imageDigest']}"
    return {"git_sha": git_sha, "images": images}


# ---------------------------------------------------------------------------------------------- dispatch
def dispatch_inputs(images_file: Path) -> dict[str, str]:
    """The deploy workflow's inputs from build/images.json, validated so a bad file fails here, not there."""
    data = json.loads(images_file.read_text())
    sha = str(data.get("git_sha", ""))
    if not GIT_SHA.match(sha):
        raise CiError(f"{images_file}: git_sha must be 40 hex characters, got {sha!r}")
    inputs = {"git_sha": sha}
    for key, name in IMAGE_INPUTS.items():
        ref = str(data.get("images", {}).get(key, ""))
        if not DIGEST_REF.match(ref):
            raise CiError(f"{images_file}: images.{key} must be an ECR reference pinned by digest, got {ref!r}")
        inputs[name] = ref
    return inputs


def dispatch(api: str, repo: str, workflow: str, ref: str, inputs: dict[str, str], token: str) -> None:
    """POST a workflow_dispatch event; GitHub answers 204 with no body on success."""
    url = f"{api.rstrip('/')}/repos/{repo}/actions/workflows/{workflow}/dispatches"
    body = json.dumps({"ref": ref, "inputs": inputs}).encode()
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Accept", "application/vnd.github+json")
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("X-GitHub-Api-Version", "2022-11-28")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise CiError(f"GitHub refused the dispatch of {workflow} on {repo}: HTTP {exc.code} {detail}") from None
    except urllib.error.URLError as exc:
        raise CiError(f"cannot reach {api}: {exc.reason}") from None
    if status != 204:
        raise CiError(f"unexpected HTTP {status} from GitHub for the dispatch of {workflow}")


# ---------------------------------------------------------------------------------------------- smoke
def http_json(method: str, url: str, payload: Any | None, timeout: float) -> tuple[int, dict[str, str], Any]:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw, status, headers = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        raw, status, headers = exc.read(), exc.code, dict(exc.headers)
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    return status, {k.lower(): v for k, v in headers.items()}, body


def has_key(obj: Any, key: str) -> bool:
    """True when `key` appears at any depth (the contract fixes the field, not its nesting)."""
    if isinstance(obj, dict):
        return key in obj or any(has_key(v, key) for v in obj.values())
    if isinstance(obj, list):
        return any(has_key(v, key) for v in obj)
    return False


def smoke(base: str, text: str, retries: int, wait: float, timeout: float) -> list[str]:
    """Check the deployed service against its contract; returns the checks that passed.

    Why these checks: /ready proves the model loaded, a real prediction proves the image and model
    agree, X-Model-Version proves which model answered, and a bad request must be a 4xx, never a 5xx.
    The ALB may need a minute to register new tasks, so /ready is retried.
    """
    base = base.rstrip("/")
    passed: list[str] = []
    for attempt in range(1, retries + 1):
        try:
            status, _, _ = http_json("GET", f"{base}/ready", None, timeout)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            status = f"unreachable ({exc})"  # type: ignore[assignment]
        if status == 200:
            break
        if attempt == retries:
            raise CiError(f"{base}/ready answered {status} after {retries} attempts")
        time.sleep(wait)
    passed.append("GET /ready -> 200")

    status, headers, body = http_json("POST", f"{base}/predict", {"text": text}, timeout)
    if status != 200:
        raise CiError(f"POST /predict answered {status}: {body}")
    version = headers.get("x-model-version")
    if not version:
        raise CiError("POST /predict: no X-Model-Version header")
    if not has_key(body, "intent"):
        raise CiError(f"POST /predict: no intent in the answer: {body}")
    passed.append(f"POST /predict -> 200, model version {version}")

    status, _, body = http_json("POST", f"{base}/predict", {"wrong": 1}, timeout)
    if not 400 <= status < 500:
        raise CiError(f"POST /predict with a bad body answered {status}, expected 4xx: {body}")
    passed.append(f"POST /predict bad body -> {status}")
    return passed


def serving_url(outputs: Path) -> str:
    """serving_url from `tofu output -json` (written by make tf-apply)."""
    data = json.loads(outputs.read_text())
    try:
        return str(data["serving_url"]["value"])
    except KeyError as exc:
        raise CiError(f"{outputs} has no serving_url output") from exc


# ---------------------------------------------------------------------------------------------- train
def start_training(sfn: Any, arn: str, payload: dict[str, Any], name: str) -> str:
    return str(sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))["executionArn"])


def wait_execution(sfn: Any, execution_arn: str, timeout: float, poll: float) -> dict[str, Any]:
    """Poll until the execution leaves RUNNING; a timeout is a failure but the execution keeps running."""
    deadline = time.monotonic() + timeout
    while True:
        desc: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if desc["status"] != "RUNNING":
            return desc
        if time.monotonic() > deadline:
            raise CiError(f"{execution_arn} still RUNNING after {timeout:.0f} s (it keeps running in AWS)")
        time.sleep(poll)


def execution_name(prefix: str) -> str:
    """Executions must have unique names (a reused name is rejected for 90 days)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:8]}"[:80]


# ---------------------------------------------------------------------------------------------- main
def boto_client(service: str) -> Any:
    import boto3  # deferred: the report/dispatch/smoke paths need no AWS SDK

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return boto3.client(service, region_name=region)  # type: ignore[call-overload]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/ci.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("report")
    p.add_argument("--reports", type=Path, default=Path("reports"))
    p.add_argument("--out", type=Path, help="also write the Markdown here")

    p = sub.add_parser("images")
    p.add_argument("--image", action="append", default=[], required=True, help="key=registry/repo:tag")
    p.add_argument("--git-sha", required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("dispatch")
    p.add_argument("--repo", required=True, help="owner/name")
    p.add_argument("--workflow", default="deploy.yml")
    p.add_argument("--ref", default="main")
    p.add_argument("--images", type=Path, required=True)

    p = sub.add_parser("smoke")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--url")
    g.add_argument("--outputs", type=Path, help="tofu output -json file with serving_url")
    p.add_argument("--text", default="I still have not received my new card, how long does delivery take?")
    p.add_argument("--retries", type=int, default=30)
    p.add_argument("--wait", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=10.0)

    p = sub.add_parser("train")
    p.add_argument("--state-machine-arn", required=True)
    p.add_argument(
        "--input",
        default=os.environ.get("TRAIN_INPUT") or "{}",
        help="JSON object merged into the execution input (default: $TRAIN_INPUT, so no shell quoting)",
    )
    p.add_argument(
        "--trigger",
        default=os.environ.get("TRAIN_TRIGGER") or "ci",
        help="a label for the trigger; the input's `trigger` also names the CI run and the caller (docs/governance.md)",
    )
    p.add_argument("--data-uri", default=os.environ.get("TRAIN_DATA_URI") or "", help="training data override")
    p.add_argument("--name-prefix", default="ci")
    p.add_argument("--wait", action="store_true")
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--poll", type=float, default=15.0)
    p.add_argument("--out", type=Path, help="write {executionArn, status} here")

    args = parser.parse_args(argv)
    try:
        if args.cmd == "report":
            text, ok = report(args.reports)
            print(text, end="")
            if args.out:
                args.out.write_text(text)
            return 0 if ok else 1
        if args.cmd == "images":
            if not GIT_SHA.match(args.git_sha):
                raise CiError(f"--git-sha must be 40 hex characters, got {args.git_sha!r}")
            result = resolve_digests(parse_image_refs(args.image), args.git_sha, boto_client("ecr"))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2) + "\n")
            print(json.dumps(result, indent=2))
            return 0
        if args.cmd == "dispatch":
            token = os.environ.get("GITHUB_TOKEN", "")
            if not token:
                raise CiError("GITHUB_TOKEN is not set (Jenkins binds it with withCredentials)")
            inputs = dispatch_inputs(args.images)
            api = os.environ.get("GITHUB_API_URL", "https://api.github.com")
            dispatch(api, args.repo, args.workflow, args.ref, inputs, token)
            print(f"dispatched {args.workflow} on {args.repo}@{args.ref} for {inputs['git_sha']}")
            return 0
        if args.cmd == "smoke":
            url = args.url or serving_url(args.outputs)
            for line in smoke(url, args.text, args.retries, args.wait, args.timeout):
                print(f"ok  {line}")
            return 0
        if args.cmd == "train":
            extra = json.loads(args.input)
            if not isinstance(extra, dict):
                raise CiError("--input must be a JSON object")
            sfn = boto_client("stepfunctions")
            from pipelines.lineage import ci_trigger  # deferred like boto3: only this path needs it

            payload: dict[str, Any] = {"trigger": ci_trigger(args.trigger), **extra}
            if args.data_uri:
                payload["data_uri"] = args.data_uri
            arn = start_training(sfn, args.state_machine_arn, payload, execution_name(args.name_prefix))
            print(f"started {arn}")
            status = "RUNNING"
            desc: dict[str, Any] = {}
            if args.wait:
                desc = wait_execution(sfn, arn, args.timeout, args.poll)
                status = desc["status"]
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps({"executionArn": arn, "status": status}) + "\n")
            if args.wait and status != "SUCCEEDED":
                why = f"{desc.get('error', '')} {desc.get('cause', '')}".strip()
                raise CiError(f"execution {status}: {why or 'no cause given'}")
            print(f"status {status}")
            return 0
    except CiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
