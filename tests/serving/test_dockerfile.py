"""The serving image, checked without a Docker engine: hadolint plus the rules that matter for ECS."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "serving.Dockerfile"


def _instructions(dockerfile: Path = DOCKERFILE) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_passes() -> None:
    """Every Dockerfile: the images' and the stand-in bases' (docker/standin)."""
    hadolint = Path(sys.executable).parent / "hadolint"
    files = sorted(str(p) for p in (ROOT / "docker").rglob("*.Dockerfile"))
    done = subprocess.run([str(hadolint), "--failure-threshold", "info", *files], capture_output=True, text=True)
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
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", base), base
    assert all(rest.startswith("${PYTHON_IMAGE}${PYTHON_DIGEST:+@}${PYTHON_DIGEST}") for rest in froms)
    final = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM") :]
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "runs as non-root"
    health = " ".join(rest for word, rest in final if word == "HEALTHCHECK")
    assert "/ready" in health
    assert any(w == "ENTRYPOINT" and "model.serving" in r for w, r in final)
    copies = [rest for word, rest in final if word == "COPY"]
    assert all("--from=build" in c for c in copies), "the runtime stage only takes the build's output"
    build = " ".join(rest for word, rest in ins if word == "RUN")
    # Core dependencies only (no [platform]/[dev] extras), at the versions the runtime lock pins.
    assert "pip install --no-deps --requirement /tmp/serving.lock" in build
    assert "dev.lock" not in build and "pytest" not in build
    ignore = [
        line
        for line in (ROOT / "docker" / "serving.Dockerfile.dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert ignore[0] == "*" and "!model/" in ignore and "!requirements/serving.lock" in ignore


# -- base images: an exact tag, and a digest once someone with registry access resolved it ---------------
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# An exact release: a version with at least major.minor.patch in the tag (3.11.14-slim-bookworm,
# 3.11.2025.11.13.14), never a moving tag such as latest, 3.11 or 3.11-slim.
EXACT_TAG = re.compile(r"[^@\s]+:\d+\.\d+\.\d+[A-Za-z0-9._-]*")
HOOK = re.compile(r"\$\{(?P<image>[A-Z0-9_]+_IMAGE)\}\$\{(?P<digest>[A-Z0-9_]+_DIGEST):\+@\}\$\{(?P=digest)\}")


def base_image_problems(dockerfile: Path) -> list[str]:
    """Every FROM must be `tag@sha256:<64 hex>` or the ARG hook over an exact tag (see pin-base-images.sh)."""
    ins = [(w, r) for w, r in _instructions(dockerfile)]
    first_from = next(i for i, (w, _) in enumerate(ins) if w == "FROM")
    args = dict(r.split("=", 1) for w, r in ins[:first_from] if w == "ARG" and "=" in r)
    stages: set[str] = set()
    problems = []
    for word, rest in ins:
        if word != "FROM":
            continue
        parts = [p for p in rest.split() if not p.startswith("--platform")]
        image = parts[0]
        if len(parts) >= 3 and parts[1].upper() == "AS":
            stages.add(parts[2].lower())
        if image.lower() in stages:
            continue  # FROM an earlier stage
        if m := HOOK.fullmatch(image):
            tag, digest = args.get(m["image"]), args.get(m["digest"])
            if tag is None or digest is None:
                problems.append(f"{image}: ARG {m['image']} and ARG {m['digest']} must be declared before FROM")
            elif not EXACT_TAG.fullmatch(tag):
                problems.append(f"{image}: {m['image']}={tag} is not an exact version tag")
            elif digest and not DIGEST.fullmatch(digest):
                problems.append(f"{image}: {m['digest']}={digest} is not sha256:<64 hex>")
        elif "@" in image:
            tag, _, digest = image.partition("@")
            if not DIGEST.fullmatch(digest) or "$" in tag:
                problems.append(f"{image}: not tag@sha256:<64 hex>")
        else:
            problems.append(f"{image}: neither tag@sha256:<digest> nor the *_IMAGE/*_DIGEST ARG hook")
    return problems


def test_every_base_image_is_an_exact_tag_with_a_digest_hook() -> None:
    files = sorted((ROOT / "docker").glob("*.Dockerfile"))
    assert len(files) >= 3
    for dockerfile in files:
        assert base_image_problems(dockerfile) == [], dockerfile.name


def test_base_image_rules_reject_moving_tags_and_bad_digests(tmp_path: Path) -> None:
    cases = {
        "FROM python:3.11-slim\n": "neither",
        "FROM python:latest@sha256:abc\n": "not tag@sha256",
        "ARG PYTHON_IMAGE=python:3.11-slim\nARG PYTHON_DIGEST=\n"
        "FROM ${PYTHON_IMAGE}${PYTHON_DIGEST:+@}${PYTHON_DIGEST}\n": "not an exact version tag",
        "ARG PYTHON_IMAGE=python:3.11.14-slim\nARG PYTHON_DIGEST=sha256:12\n"
        "FROM ${PYTHON_IMAGE}${PYTHON_DIGEST:+@}${PYTHON_DIGEST}\n": "is not sha256",
        "ARG PYTHON_IMAGE=python:3.11.14-slim\nFROM ${PYTHON_IMAGE}\n": "neither",
    }
    for text, expected in cases.items():
        bad = tmp_path / "x.Dockerfile"
        bad.write_text(text)
        problems = base_image_problems(bad)
        assert problems and expected in problems[0], (text, problems)
    good = tmp_path / "good.Dockerfile"
    good.write_text(f"FROM python:3.11.14-slim-bookworm@sha256:{'a' * 64} AS build\nFROM build\n")
    assert base_image_problems(good) == []


def test_pin_script_writes_resolved_digests(tmp_path: Path) -> None:
    """The script against a stand-in `docker` (the registry is unreachable here): it writes what the
    registry answers into each *_DIGEST arg, and the result passes the rules with the digest in place."""
    script = ROOT / "scripts" / "pin-base-images.sh"
    shellcheck = Path(sys.executable).parent / "shellcheck"
    done = subprocess.run([str(shellcheck), str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    fake = tmp_path / "docker"
    calls = tmp_path / "calls.txt"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {calls}\n'
        'case "$4" in\n'
        "  python:*) d=1111111111111111111111111111111111111111111111111111111111111111 ;;\n"
        "  *) d=2222222222222222222222222222222222222222222222222222222222222222 ;;\n"
        "esac\n"
        'printf \'{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:%s","size":1}\' "$d"\n'
    )
    fake.chmod(0o755)
    copies = []
    for src in sorted((ROOT / "docker").glob("*.Dockerfile")):
        dst = tmp_path / src.name
        dst.write_text(src.read_text())
        copies.append(dst)
    env = {**__import__("os").environ, "DOCKER": str(fake)}
    done = subprocess.run(["bash", str(script), *map(str, copies)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "buildx imagetools inspect python:3.11" in calls.read_text()
    for dst in copies:
        text = dst.read_text()
        assert re.search(r"^ARG [A-Z_]+_DIGEST=sha256:[0-9a-f]{64}$", text, re.M), dst.name
        assert base_image_problems(dst) == []
    serving = (tmp_path / "serving.Dockerfile").read_text()
    assert f"ARG PYTHON_DIGEST=sha256:{'1' * 64}" in serving
    # --check passes once pinned and fails when the registry has moved on.
    check = ["bash", str(script), "--check", *map(str, copies)]
    assert subprocess.run(check, capture_output=True, env=env).returncode == 0
    (tmp_path / "serving.Dockerfile").write_text(serving.replace("1" * 64, "3" * 64))
    assert subprocess.run(check, capture_output=True, env=env).returncode == 1
