"""The names the CDK app shares with Terraform and the Python code, read from <repo>/contract.yaml.

Why read the file rather than keep constants here: the alarms, metrics, Lambdas and environment
variables CDK creates are read by code that Terraform deploys too (retrain_trigger matches alarm
names, the drift check and the service publish the metrics the alarms watch). One file that both
deployment paths and the Python package read (model/contract.py) cannot drift; where the two paths
used to disagree (alarm names, environment variables), Terraform's naming is the one written down.
The constructs check at synth that what they build holds exactly the contract's names.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import REPO_ROOT

CONTRACT_PATH = REPO_ROOT / "contract.yaml"


class ContractMismatch(ValueError):
    """A construct builds a name set that differs from contract.yaml (raised at synth)."""


@dataclass(frozen=True)
class Contract:
    """Typed views of contract.yaml (the file's comments say what each name means)."""

    raw: Mapping[str, Any]

    @property
    def lambda_functions(self) -> tuple[str, ...]:
        return tuple(self.raw["lambda_functions"])

    @property
    def workflow_environment(self) -> tuple[str, ...]:
        return tuple(self.raw["workflow_environment"])

    @property
    def serving_environment(self) -> tuple[str, ...]:
        return tuple(self.raw["serving_environment"])

    @property
    def image_variable(self) -> str:
        """The variable every container and function gets, set to the image it runs (e.g. ESTEIRA_IMAGE).

        Its value differs per resource, so it is in neither environment list (refused at synth if it is).
        """
        name = str(self.raw["image_variable"])
        if name in (*self.workflow_environment, *self.serving_environment):
            raise ContractMismatch(f"image_variable {name} is also in workflow_environment or serving_environment")
        return name

    @property
    def serving_service_name(self) -> str:
        return str(self.raw["serving_service_name"])

    @property
    def metrics_namespace(self) -> str:
        return str(self.raw["metrics"]["namespace"])

    def metric(self, key: str) -> str:
        """A metric name by its contract key (e.g. "drift_score" -> "DriftScore")."""
        return str(self.raw["metrics"]["names"][key])

    def dimension(self, key: str) -> str:
        return str(self.raw["metrics"]["dimensions"][key])

    @property
    def alarm_suffixes(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.raw["alarms"]["suffixes"].items()}

    def alarm_name(self, name: str, purpose: str) -> str:
        """<name>-<suffix>, e.g. esteira-dev-model-drift."""
        return f"{name}-{self.alarm_suffixes[purpose]}"

    def retrain_alarm_prefix(self, name: str) -> str:
        return f"{name}{self.raw['alarms']['retrain_prefix']}"

    def canary_alarm_prefix(self, name: str) -> str:
        return f"{name}{self.raw['alarms']['canary_prefix']}"

    @property
    def capture_prefix(self) -> str:
        return str(self.raw["capture"]["prefix"])

    @property
    def labels_key(self) -> str:
        return str(self.raw["labels_key"])

    @property
    def snapshots_prefix(self) -> str:
        """Prefix of the data snapshots in the data bucket, without slashes at either end."""
        return str(self.raw["snapshots_prefix"]).strip("/")

    @property
    def asl_variables(self) -> tuple[str, ...]:
        return tuple(self.raw["asl_variables"])


def load(path: Path = CONTRACT_PATH) -> Contract:
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, Mapping):
        raise ContractMismatch(f"{path}: not a mapping")
    return Contract(document)


@functools.cache
def contract() -> Contract:
    return load()


def require_same(what: str, built: Iterable[str], expected: Iterable[str]) -> None:
    """Refuse at synth a name set that differs from the contract's, naming each difference."""
    built_set, expected_set = set(built), set(expected)
    if built_set != expected_set:
        raise ContractMismatch(
            f"{what} differ from contract.yaml: not in the contract {sorted(built_set - expected_set)}, "
            f"missing {sorted(expected_set - built_set)}"
        )
