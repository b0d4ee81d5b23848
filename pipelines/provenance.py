"""Where a run comes from: the commit, the image, the code and the libraries that made it.

Every MLflow run and model version carries these tags, so a version answers "which build made you"
in any account. The commit is baked into each image at build time (GIT_COMMIT; a checkout asks git).
The image is the reference the stack gave the container (contract.yaml `image_variable`, set by
Terraform to the digest-pinned URI deploy.yml passes); a checkout has none.

Training reuse is keyed on what determines the fitted model, not on the commit: the training data,
the parameters, the source of the code that trains (model/ and pipelines/, hashed as installed, so an
image and a checkout of the same code agree and a README change does not retrain) and the versions
of the numeric libraries. A commit of `unknown` or `-dirty` can therefore never return a stale model.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

import model
import pipelines
from model.contract import contract

# The libraries whose version changes the fitted model (or how it is pickled).
MODEL_LIBRARIES = ("scikit-learn", "numpy", "scipy", "joblib")


@cache
def git_commit() -> str:
    """The commit the code runs from: GIT_COMMIT (set in images and CI), else the checkout's."""
    return os.environ.get("GIT_COMMIT") or checkout_commit()


def checkout_commit() -> str:
    """HEAD of the checkout this package is in, `-dirty` when the tree has changes HEAD does not hold."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def image() -> str:
    """The image this process runs in, as the stack named it ("" outside a container)."""
    return os.environ.get(contract().image_variable, "")


@cache
def code_digest() -> str:
    """sha256 over the Python source of the model and pipelines packages, by relative path."""
    digest = hashlib.sha256()
    for package in (model, pipelines):
        root = Path(package.__file__ or "").resolve().parent
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{package.__name__}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return "sha256:" + digest.hexdigest()


def libraries() -> dict[str, str]:
    return {name: metadata.version(name) for name in MODEL_LIBRARIES}


def training_key(dataset_hash: str, eval_dataset_hash: str, params_hash: str) -> str:
    """What decides the fitted model and its evaluation: equal keys, equal models."""
    parts = [dataset_hash, eval_dataset_hash, params_hash, code_digest()]
    parts += [f"{k}=={v}" for k, v in sorted(libraries().items())]
    return "sha256:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()


def tags() -> dict[str, str]:
    """The tags every MLflow run and model version carries."""
    return {"git_commit": git_commit(), "image": image() or "none (not in a container)", "code_digest": code_digest()}
