"""The names esteira's parts share, read from contract.yaml: the one definition of each.

Why a file and not Python constants: Terraform (yamldecode), the CDK app (yaml.safe_load) and this
package must agree on the metric namespace and names, the alarm names, the capture layout, the labels
key, the Lambda keys and the environment variable names. Defined once, a name cannot drift between
its three readers; a constant here would be a fourth copy.

Where the file is found, first hit wins:
  1. <repository root>/contract.yaml, next to the model/ package: a checkout or an editable install.
  2. model/contract.yaml, a copy shipped inside the package: the images (docker/*.Dockerfile copy the
     root file there) and wheel installs (pyproject.toml lists it as package data). It is never kept
     in the repository (.gitignore), so a checkout cannot read a stale copy.
None of them: ContractError names every place looked at.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

FILE_NAME = "contract.yaml"
_PACKAGE_DIR = Path(__file__).resolve().parent


class ContractError(RuntimeError):
    """contract.yaml is missing or does not hold what this module expects."""


@dataclass(frozen=True)
class Dimensions:
    service: str
    model_version: str
    intent: str


@dataclass(frozen=True)
class MetricNames:
    request_count: str
    latency_p50: str
    latency_p90: str
    latency_p99: str
    http_4xx: str
    http_5xx: str
    capture_dropped: str
    mean_confidence: str
    low_confidence_rate: str
    mean_text_length: str
    predictions: str
    shadow_requests: str
    shadow_agreements: str
    shadow_dropped: str
    shadow_errors: str
    canary_prediction_drift: str
    canary_drift_breach: str
    drift_score: str
    prediction_drift: str
    confidence_drop: str
    oov_rate_increase: str
    input_drift: str
    drift_detected: str


@dataclass(frozen=True)
class AlarmSuffixes:
    error_rate: str
    p99_latency: str
    unhealthy_hosts: str
    failed_executions: str
    drift: str
    low_confidence: str


@dataclass(frozen=True)
class Alarms:
    suffixes: AlarmSuffixes
    retrain_prefix: str  # appended to <name>: only <name><retrain_prefix>* alarms start retraining
    canary_prefix: str  # appended to <name>: per-version canary alarms

    def name(self, stack_name: str, kind: str) -> str:
        """The alarm's name: <name>-<suffix> (kind is a field of AlarmSuffixes, e.g. "drift")."""
        return f"{stack_name}-{getattr(self.suffixes, kind)}"


@dataclass(frozen=True)
class Capture:
    prefix: str  # ESTEIRA_CAPTURE_S3_URI = s3://<capture bucket>/<prefix>/
    partition: str  # "model_version={model_version}/dt={date}/hour={hour}/"

    def partition_key(self, model_version: str, date: str, hour: str) -> str:
        """The partition of one model version and hour (date YYYY-MM-DD, hour HH, UTC); ends with "/"."""
        return self.partition.format(model_version=model_version, date=date, hour=hour)


@dataclass(frozen=True)
class Contract:
    lambda_functions: tuple[str, ...]
    workflow_environment: tuple[str, ...]
    serving_environment: tuple[str, ...]
    # The environment variable naming the image a container or function runs (ESTEIRA_IMAGE); set by
    # the stack on each resource, in neither list above (its value differs per resource).
    image_variable: str
    serving_service_name: str
    metrics_namespace: str
    dimensions: Dimensions
    metrics: MetricNames
    alarms: Alarms
    capture: Capture
    labels_key: str
    # Snapshots of validated data: s3://<data bucket>/<snapshots_prefix>/sha256=<hex>/ (pipelines/snapshot.py).
    snapshots_prefix: str
    asl_variables: tuple[str, ...]
    path: Path


def candidates() -> list[Path]:
    """Where the file is looked for, in order (see the module docstring)."""
    return [_PACKAGE_DIR.parent / FILE_NAME, _PACKAGE_DIR / FILE_NAME]


def _record(cls: type[Any], raw: Any, where: str) -> Any:
    """Build a flat dataclass of strings from a mapping holding exactly its fields."""
    if not isinstance(raw, Mapping):
        raise ContractError(f"{where}: expected a mapping, got {type(raw).__name__}")
    names = {f.name for f in fields(cls)}
    if set(raw) != names:
        missing, extra = sorted(names - set(raw)), sorted(set(raw) - names)
        raise ContractError(f"{where}: missing {missing}, unexpected {extra}")
    for key, value in raw.items():
        if not isinstance(value, str) or not value:
            raise ContractError(f"{where}.{key}: expected a non-empty string, got {value!r}")
    return cls(**raw)


def _names(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(v, str) and v for v in raw):
        raise ContractError(f"{where}: expected a non-empty list of strings")
    if len(set(raw)) != len(raw):
        raise ContractError(f"{where}: duplicate entries")
    return tuple(raw)


def _string(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise ContractError(f"{where}{key}: expected a non-empty string, got {value!r}")
    return value


def parse(document: Any, path: Path) -> Contract:
    """Check the document's shape and build the typed contract (ContractError says what is wrong)."""
    if not isinstance(document, Mapping):
        raise ContractError(f"{path}: not a mapping")
    metrics, alarms, capture = document.get("metrics"), document.get("alarms"), document.get("capture")
    for key, value in (("metrics", metrics), ("alarms", alarms), ("capture", capture)):
        if not isinstance(value, Mapping):
            raise ContractError(f"{path}: {key} must be a mapping")
    assert isinstance(metrics, Mapping) and isinstance(alarms, Mapping) and isinstance(capture, Mapping)
    workflow_environment = _names(document.get("workflow_environment"), "workflow_environment")
    serving_environment = _names(document.get("serving_environment"), "serving_environment")
    image_variable = _string(document, "image_variable", "")
    if image_variable in (*workflow_environment, *serving_environment):
        raise ContractError(f"image_variable {image_variable} is also in workflow_environment or serving_environment")
    return Contract(
        lambda_functions=_names(document.get("lambda_functions"), "lambda_functions"),
        workflow_environment=workflow_environment,
        serving_environment=serving_environment,
        image_variable=image_variable,
        serving_service_name=_string(document, "serving_service_name", ""),
        metrics_namespace=_string(metrics, "namespace", "metrics."),
        dimensions=_record(Dimensions, metrics.get("dimensions"), "metrics.dimensions"),
        metrics=_record(MetricNames, metrics.get("names"), "metrics.names"),
        alarms=Alarms(
            suffixes=_record(AlarmSuffixes, alarms.get("suffixes"), "alarms.suffixes"),
            retrain_prefix=_string(alarms, "retrain_prefix", "alarms."),
            canary_prefix=_string(alarms, "canary_prefix", "alarms."),
        ),
        capture=_record(Capture, capture, "capture"),
        labels_key=_string(document, "labels_key", ""),
        snapshots_prefix=_string(document, "snapshots_prefix", "").strip("/"),
        asl_variables=_names(document.get("asl_variables"), "asl_variables"),
        path=path,
    )


def load(path: Path | None = None) -> Contract:
    """Read and check contract.yaml: `path`, or the first of candidates() that exists."""
    if path is None:
        path = next((p for p in candidates() if p.is_file()), None)
        if path is None:
            looked = ", ".join(str(p) for p in candidates())
            raise ContractError(f"{FILE_NAME} not found (looked at {looked}); images must copy it to model/")
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ContractError(f"{path}: cannot read: {exc}") from exc
    return parse(document, path)


@functools.cache
def contract() -> Contract:
    """The contract, read once per process."""
    return load()
