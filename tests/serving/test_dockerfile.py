"""The serving image, checked without a Docker engine: hadolint plus the rules that matter for ECS."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "serving.Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nCMD python app.py\n")
    hadolint = Path(sys.executable).parent / "hadolint"
    assert subprocess.run([str(hadolint), str(bad)], capture_output=True).returncode != 0


def test_image_rules() -> None:
    ins = _instructions()
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    arg_default = next(rest for word, rest in ins if word == "ARG" and rest.startswith("PYTHON_IMAGE="))
    base = arg_default.split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
    final = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM") :]
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "runs as non-root"
    health = " ".join(rest for word, rest in final if word == "HEALTHCHECK")
    assert "/ready" in health
    assert any(w == "ENTRYPOINT" and "model.serving" in r for w, r in final)
    copies = [rest for word, rest in final if word == "COPY"]
    assert all("--from=build" in c for c in copies), "the runtime stage only takes the build's output"
    build = " ".join(rest for word, rest in ins if word == "RUN")
    # Core dependencies only (no [platform]/[dev] extras), pinned by the lock.
    assert "uv pip compile pyproject.toml --constraint requirements/dev.lock" in build
    assert "--extra" not in build and "[dev]" not in build and "pytest" not in build
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[0 if not ignore[0].startswith("#") else 1] == "*" and "!model/" in ignore
