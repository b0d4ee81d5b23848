"""The release zip CodePipeline's S3 source reads (delivery = codepipeline, docs/delivery.md).

  release.py build   --images build/images.json --out build/release.zip   # manifest + workflow input + tree
  release.py publish --zip build/release.zip --bucket B --key releases/release.zip
  release.py make-vars release.json    # GIT_SHA=... SERVING_IMAGE=... for make tf-plan (the deploy build)

release.json = build/images.json ({git_sha, images: {serving, training, lambda, mlflow}}, digests);
workflow-input.json = the state machine's input: the JSON object in $TRAIN_INPUT (or --input; e.g. the
data URIs, training_backend) with `trigger` (kind "ci", the CI run, the caller); the rest is `git archive`
of the commit, which the deploy build runs `make release-deploy` in.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

IMAGES = {"serving": "SERVING_IMAGE", "training": "TRAINING_IMAGE", "lambda": "LAMBDA_IMAGE", "mlflow": "MLFLOW_IMAGE"}
DIGEST = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")


def manifest(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text())
    if not re.fullmatch(r"[0-9a-f]{40}", str(data.get("git_sha", ""))):
        raise SystemExit(f"{path}: git_sha must be a full commit SHA")
    for key in IMAGES:
        if not DIGEST.match(str(data.get("images", {}).get(key, ""))):
            raise SystemExit(f"{path}: images.{key} must be pinned by digest")
    return dict(data)


def workflow_input(sha: str, extra: str) -> dict[str, object]:
    """The execution input the pipeline's Step Functions action passes: `extra` (a JSON object) + trigger."""
    from pipelines.lineage import ci_trigger

    try:
        given = json.loads(extra or "{}")
    except json.JSONDecodeError as exc:
        raise SystemExit(f"the workflow input is not JSON: {exc}") from exc
    if not isinstance(given, dict):
        raise SystemExit("the workflow input must be a JSON object")
    return {"trigger": ci_trigger(f"release {sha[:12]}"), **given}


def build(images: Path, out: Path, extra_input: str = "") -> None:
    data = manifest(images)
    tree = subprocess.run(["git", "archive", "--format=tar", str(data["git_sha"])], check=True, capture_output=True)
    inputs = workflow_input(str(data["git_sha"]), extra_input)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf, tarfile.open(fileobj=io.BytesIO(tree.stdout)) as tf:
        for member in tf.getmembers():
            if member.isfile():
                extracted = tf.extractfile(member)
                assert extracted is not None
                info = zipfile.ZipInfo(member.name, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (member.mode & 0o777) << 16
                zf.writestr(info, extracted.read())
        zf.writestr("release.json", json.dumps(data, indent=1, sort_keys=True))
        zf.writestr("workflow-input.json", json.dumps(inputs, sort_keys=True))
    print(f"{out}: release {data['git_sha']}")


def publish(zip_path: Path, bucket: str, key: str) -> None:
    import boto3

    got = boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=zip_path.read_bytes())
    print(f"s3://{bucket}/{key} version {got.get('VersionId')}: the pipeline starts on it")


def make_vars(path: Path) -> None:
    data = manifest(path)
    images = dict(data["images"])  # type: ignore[call-overload]
    print(" ".join([f"GIT_SHA={data['git_sha']}"] + [f"{var}={images[key]}" for key, var in IMAGES.items()]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--images", type=Path, required=True)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument(
        "--input",
        default=os.environ.get("TRAIN_INPUT") or "{}",
        help="JSON object merged into workflow-input.json (default: $TRAIN_INPUT, so no shell quoting)",
    )
    p = sub.add_parser("publish")
    p.add_argument("--zip", type=Path, required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--key", required=True)
    m = sub.add_parser("make-vars")
    m.add_argument("manifest", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "build":
        build(args.images, args.out, args.input)
    elif args.cmd == "publish":
        publish(args.zip, args.bucket, args.key)
    else:
        make_vars(args.manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
