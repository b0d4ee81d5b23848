"""Build esteira's images from their Dockerfiles with a real OCI builder (buildah here, docker in CI).

    python -m oci.build                      # every image, stand-in bases where the upstream ones cannot be pulled
    python -m oci.build serving training     # some of them
    python -m oci.build --base upstream      # insist on the pinned upstream bases (fails without a registry)

Each image is built from the repository root with its own ignore file (`docker/<x>.Dockerfile.dockerignore`)
and the commit it is built from (`GIT_COMMIT`, also the OCI revision label), tagged
`localhost/esteira/<repository>:<commit>`; the result (reference, digest, size, base, seconds) goes to
`build/images-local.json`, which `oci.run`, the embedded ECS and the benchmarks read.

Bases: the Dockerfiles name upstream images (python:3.11.x-slim-bookworm, public.ecr.aws/lambda/python).
Where no registry is reachable (this project's build machines) a stand-in with the same contract is
built from Debian packages (`mmdebstrap`, then docker/standin/*.Dockerfile) and passed as the base's
build argument; docs/images.md lists what differs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("ESTEIRA_CACHE", Path.home() / ".cache" / "esteira"))
RESULTS = ROOT / "build" / "images-local.json"
LOCAL_PREFIX = "localhost/esteira"

# buildah and podman as measured on these machines (../shared/STACK-NOTES.md): runc, not crun (cgroups in
# hybrid mode); rlimits below the host's (no CAP_SYS_RESOURCE); RUN steps on the host network with its CA
# bundle and pip configuration, so `pip install` reaches PyPI through this network's TLS proxy. The mounts
# apply to RUN steps only; nothing of the host lands in an image.
RUNTIME = ["--runtime", "runc"]
ULIMITS = ["--ulimit", "nofile=10000:10000", "--ulimit", "nproc=9000:9000"]

STANDIN_DEBIAN = "localhost/esteira-standin/debian:bookworm"
STANDIN_PYTHON = "localhost/esteira-standin/python:3.11-slim-bookworm"
STANDIN_LAMBDA = "localhost/esteira-standin/lambda-python:3.11"


@dataclass(frozen=True)
class ImageSpec:
    name: str  # the ECR repository's short name (infra/terraform/modules/registry)
    dockerfile: str
    base_arg: str  # the build argument naming the base image
    standin: str  # the stand-in for that base


IMAGES: dict[str, ImageSpec] = {
    spec.name: spec
    for spec in (
        ImageSpec("serving", "docker/serving.Dockerfile", "PYTHON_IMAGE", STANDIN_PYTHON),
        ImageSpec("training", "docker/training.Dockerfile", "PYTHON_IMAGE", STANDIN_PYTHON),
        ImageSpec("lambdas", "docker/lambda.Dockerfile", "LAMBDA_BASE_IMAGE", STANDIN_LAMBDA),
        ImageSpec("mlflow", "docker/mlflow.Dockerfile", "PYTHON_IMAGE", STANDIN_PYTHON),
    )
}


@dataclass(frozen=True)
class BuiltImage:
    name: str
    ref: str  # localhost/esteira/<name>:<commit>
    image_id: str
    digest: str  # sha256:... of the manifest
    size_bytes: int
    base: str  # the base image the build used
    standin: bool
    commit: str
    seconds: float


class BuildError(RuntimeError):
    """A build failed: the message names the image, the Dockerfile and the step's output."""


def missing_tools() -> list[str]:
    """The OCI tools missing on this machine (empty: images can be built and run here)."""
    return [tool for tool in ("buildah", "podman", "runc", "mmdebstrap") if shutil.which(tool) is None]


def git_commit() -> str:
    """The commit an image is built from: the checkout's, never an inherited GIT_COMMIT."""
    from pipelines.provenance import checkout_commit

    return checkout_commit()


def _run(argv: list[str], what: str, log: Path | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise BuildError(f"{what} failed (exit {proc.returncode}): {' '.join(argv[:6])} ...\n{tail}")
    return proc.stdout


def _build_mounts() -> list[str]:
    mounts = ["--volume", "/etc/ssl/certs:/etc/ssl/certs:ro"]
    if Path("/etc/pip.conf").is_file():
        mounts += ["--volume", "/etc/pip.conf:/etc/pip.conf:ro"]
    return mounts


def exists(ref: str) -> bool:
    return subprocess.run(["podman", "image", "exists", ref], capture_output=True).returncode == 0


def inspect(ref: str) -> dict[str, Any]:
    data = json.loads(_run(["podman", "image", "inspect", ref], f"inspect {ref}"))
    return dict(data[0])


def buildah_bud(
    dockerfile: Path, tag: str, *, args: dict[str, str], context: Path, ignorefile: Path | None, what: str
) -> None:
    argv = ["buildah", "bud", *RUNTIME, "--network", "host", *ULIMITS, *_build_mounts(), "--layers"]
    argv += ["--file", str(dockerfile), "--tag", tag]
    if ignorefile is not None:
        argv += ["--ignorefile", str(ignorefile)]
    for key, value in sorted(args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    argv.append(str(context))
    _run(argv, what, log=ROOT / "build" / "logs" / f"{tag.rsplit('/', 1)[-1].replace(':', '-')}.log")


# ---- stand-in bases ---------------------------------------------------------------------------------------
def _debian() -> None:
    if exists(STANDIN_DEBIAN):
        return
    tar = CACHE / "images" / "debian-bookworm.tar"
    tar.parent.mkdir(parents=True, exist_ok=True)
    packages = "python3.11,python3.11-venv,ca-certificates,passwd,netbase,tzdata"
    mirror = os.environ.get("ESTEIRA_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    _run(
        ["mmdebstrap", "--variant=apt", f"--include={packages}", "bookworm", str(tar), mirror],
        "mmdebstrap (stand-in Debian bookworm base)",
    )
    _run(["podman", "import", "--change", "ENV LANG=C.UTF-8", str(tar), STANDIN_DEBIAN], "podman import")
    tar.unlink()


def lambda_rie() -> Path:
    """The Lambda runtime interface emulator, built from the Go module proxy (scripts/tools.sh pins it)."""
    binary = CACHE / "tools" / "bin" / "aws-lambda-rie"
    if not binary.is_file():
        _run(["bash", str(ROOT / "scripts" / "tools.sh"), "--rie"], "build aws-lambda-rie")
    return binary


def standin(ref: str) -> None:
    """Build the stand-in base `ref` (and what it stands on) unless podman already holds it."""
    if exists(ref):
        return
    _debian()
    standin_dir = ROOT / "docker" / "standin"
    if ref == STANDIN_PYTHON:
        dockerfile, context, what = standin_dir / "python.Dockerfile", standin_dir, "stand-in python base"
    elif ref == STANDIN_LAMBDA:  # its context: the runtime interface emulator and the two start-up scripts
        dockerfile, context, what = (
            standin_dir / "lambda-python.Dockerfile",
            CACHE / "images" / "lambda-standin",
            "stand-in Lambda Python base",
        )
        shutil.rmtree(context, ignore_errors=True)
        context.mkdir(parents=True)
        shutil.copy2(lambda_rie(), context / "aws-lambda-rie")
        for name in ("lambda-entrypoint.sh", "bootstrap"):
            shutil.copy2(standin_dir / name, context / name)
    else:
        raise BuildError(f"no stand-in is defined for {ref}")
    buildah_bud(dockerfile, ref, args={"DEBIAN_IMAGE": STANDIN_DEBIAN}, context=context, ignorefile=None, what=what)


def upstream_base(spec: ImageSpec) -> str:
    """The base the Dockerfile names by default (its ARG), e.g. python:3.11.14-slim-bookworm."""
    for line in (ROOT / spec.dockerfile).read_text().splitlines():
        if line.startswith(f"ARG {spec.base_arg}="):
            return line.split("=", 1)[1].strip()
    raise BuildError(f"{spec.dockerfile} declares no ARG {spec.base_arg}")


def pullable(ref: str, timeout: float = 30.0) -> bool:
    if exists(ref):
        return True
    try:
        return subprocess.run(["podman", "pull", "--quiet", ref], capture_output=True, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


# ---- images -------------------------------------------------------------------------------------------------
def build(name: str, *, commit: str | None = None, base: str = "auto") -> BuiltImage:
    """Build one image; `base` is auto (upstream if it can be pulled, else the stand-in), upstream or standin."""
    spec = IMAGES[name]
    commit = commit or git_commit()
    upstream = upstream_base(spec)
    use_standin = base == "standin" or (base == "auto" and not pullable(upstream))
    args = {"GIT_COMMIT": commit}
    if use_standin:
        standin(spec.standin)
        args[spec.base_arg] = spec.standin
    tag = f"{LOCAL_PREFIX}/{name}:{commit}"
    started = time.monotonic()
    dockerfile = ROOT / spec.dockerfile
    buildah_bud(
        dockerfile,
        tag,
        args=args,
        context=ROOT,
        ignorefile=ROOT / f"{spec.dockerfile}.dockerignore",
        what=f"image {name} ({spec.dockerfile})",
    )
    seconds = time.monotonic() - started
    info = inspect(tag)
    recorded = [e for e in (info.get("Config") or {}).get("Env", []) if e.startswith("GIT_COMMIT=")]
    if recorded != [f"GIT_COMMIT={commit}"]:  # a stale cached layer would misstate every run's provenance
        raise BuildError(f"image {name} ({spec.dockerfile}) records {recorded or 'no GIT_COMMIT'}, built from {commit}")
    return BuiltImage(
        name=name,
        ref=tag,
        image_id=str(info["Id"]),
        digest=str(info.get("Digest") or ""),
        size_bytes=int(str(info.get("Size") or 0)),
        base=spec.standin if use_standin else upstream,
        standin=use_standin,
        commit=commit,
        seconds=round(seconds, 1),
    )


def record(images: list[BuiltImage], path: Path = RESULTS) -> None:
    """Merge the built images into build/images-local.json (name -> BuiltImage)."""
    current = json.loads(path.read_text()) if path.is_file() else {}
    current.update({img.name: asdict(img) for img in images})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


def built(name: str, path: Path = RESULTS) -> BuiltImage | None:
    """The last image built for `name` here, if podman still holds it."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text()).get(name)
    if not data or not exists(data["ref"]):
        return None
    return BuiltImage(**data)


def publish_local(name: str, repository_url: str) -> str | None:
    """`docker push` for the emulated account: tag the image built here under its ECR repository (this
    machine's OCI storage is the registry the embedded ECS pulls from) and return the reference pinned by
    digest, as deploy.yml passes images to Terraform. None when no image of `name` was built here."""
    image = built(name)
    if image is None or not image.digest:
        return None
    _run(["podman", "tag", image.ref, f"{repository_url}:{image.commit}"], f"podman tag {name}")
    return f"{repository_url}@{image.digest}"


def ensure(name: str) -> BuiltImage:
    """The image for the code as it is now: built (layers cached) unless this commit's is already here."""
    commit = git_commit()
    image = built(name)
    if image is not None and image.commit == commit and not commit.endswith("-dirty"):
        return image
    image = build(name, commit=commit)
    record([image])
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="*", help=f"images to build, of {', '.join(IMAGES)} (default: all)")
    parser.add_argument("--base", choices=("auto", "upstream", "standin"), default="auto")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.images) - set(IMAGES))
    if unknown:
        parser.error(f"unknown image(s) {', '.join(unknown)}; known: {', '.join(IMAGES)}")
    missing = missing_tools()
    if missing:
        print(f"cannot build images: {', '.join(missing)} not installed (apt-get install {' '.join(missing)})")
        return 2
    done = []
    for name in args.images or list(IMAGES):
        try:
            image = build(name, base=args.base)
        except BuildError as exc:
            print(exc, file=sys.stderr)
            return 1
        done.append(image)
        print(
            f"{image.name:9} {image.ref}  {image.size_bytes / 1e6:7.1f} MB  {image.seconds:6.1f} s  "
            f"base {image.base}{' (stand-in)' if image.standin else ''}"
        )
    record(done)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
