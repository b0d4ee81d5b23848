"""What a container image would run, read from the Dockerfile that builds it: ENTRYPOINT and CMD.

Local tasks run as processes from this checkout, not from an image, so a container definition that
leaves the command to the image (the serving task does) needs the image's own ENTRYPOINT and CMD.
They are read from the Dockerfile of the image's ECR repository (the last path segment of the
repository name, as infra/terraform/modules/registry names them) and combined as Docker does: the
definition's entryPoint replaces ENTRYPOINT (and then the image's CMD is dropped), its command
replaces CMD.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = {
    "serving": ROOT / "docker" / "serving.Dockerfile",
    "training": ROOT / "docker" / "training.Dockerfile",
    "lambdas": ROOT / "docker" / "lambda.Dockerfile",
}
_INSTRUCTION = re.compile(r"^(FROM|ENTRYPOINT|CMD|WORKDIR|USER)\s+(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""


def repository(image_uri: str) -> str:
    """`<acct>.dkr.ecr.<region>.amazonaws.com/esteira-dev/serving:tag` -> `serving`."""
    path = image_uri.split("/", 1)[-1].split("@", 1)[0]
    return path.rsplit(":", 1)[0].rsplit("/", 1)[-1]


def _words(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        return [str(v) for v in json.loads(value)]
    return ["/bin/sh", "-c", value]  # shell form, as Docker runs it


@cache
def image_config(image_uri: str) -> ImageConfig | None:
    """The final stage's ENTRYPOINT, CMD, WORKDIR and USER, or None if no Dockerfile builds this image."""
    dockerfile = DOCKERFILES.get(repository(image_uri))
    if dockerfile is None or not dockerfile.is_file():
        return None
    lines = re.sub(r"\\\n", " ", dockerfile.read_text()).splitlines()
    entry: list[str] = []
    cmd: list[str] = []
    workdir = user = ""
    for line in lines:
        match = _INSTRUCTION.match(line.strip())
        if not match:
            continue
        kind, value = match.group(1).upper(), match.group(2)
        if kind == "FROM":  # a new stage starts from scratch
            entry, cmd, workdir, user = [], [], "", ""
        elif kind == "ENTRYPOINT":
            entry, cmd = _words(value), []  # Docker: a new ENTRYPOINT resets CMD
        elif kind == "CMD":
            cmd = _words(value)
        elif kind == "WORKDIR":
            workdir = value.strip()
        elif kind == "USER":
            user = value.strip()
    return ImageConfig(entry, cmd, workdir, user)
