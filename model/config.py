"""Every setting esteira reads, in one place.

Product code never knows where it runs: bucket names, endpoints, the MLflow URI and the model URI all
come from environment variables read here, with the defaults documented next to them. A Lambda, an ECS
task, the CLI and the local demo differ only in these values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from model.contract import contract


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_float(name: str, default: float) -> float:
    raw = env_str(name, str(default))
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={raw!r} is not a number") from exc


def env_int(name: str, default: int) -> int:
    raw = env_str(name, str(default))
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from exc


@dataclass(frozen=True)
class Settings:
    """A snapshot of the configuration; build one with `Settings.from_env()`."""

    # Where BANKING77 lives. Unset: download from the public source into `cache_dir`.
    data_dir: str | None = None
    # Download cache for the public data set.
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "esteira")
    # The intent taxonomy (a JSON list) that labels are validated against, as s3:// or a local path.
    # Terraform sets it to the data bucket's labels/categories.json (pipelines/seed_data.py writes it):
    # steps in private subnets have no route to the internet. Unset: BANKING77's own list.
    labels_uri: str | None = None
    # Public source of BANKING77 (PolyAI-LDN/task-specific-datasets, folder banking_data).
    data_url: str = "https://raw.githubusercontent.com/PolyAI-LDN/task-specific-datasets/master/banking_data"
    # MLflow tracking server and registry (the demo starts one on 127.0.0.1:5500).
    mlflow_tracking_uri: str = "http://127.0.0.1:5500"
    experiment_name: str = "esteira-intent"
    registered_model_name: str = "esteira-intent"
    # Gate: a challenger must beat the champion by this much accuracy on the same evaluation set...
    gate_min_improvement: float = 0.0
    # ...and no intent's F1 may fall by more than this.
    gate_max_intent_f1_drop: float = 0.10
    # The first model (no champion yet) must clear these absolute bars.
    gate_min_accuracy: float = 0.85
    gate_min_macro_f1: float = 0.85
    # Validation limits.
    max_text_chars: int = 1000
    min_rows: int = 20
    max_rows: int = 2_000_000
    max_file_bytes: int = 500 * 1024 * 1024
    # Where validated data is kept, immutable, one folder per dataset hash (pipelines/snapshot.py):
    # ESTEIRA_SNAPSHOT_URI, an s3:// prefix or a local folder. Terraform and CDK set it to the data
    # bucket's snapshots prefix (contract.yaml snapshots_prefix). Unset: that prefix of
    # ESTEIRA_DATA_BUCKET when it is set, else <cache_dir>/snapshots (see `snapshot_root`).
    snapshot_uri: str | None = None
    # AWS endpoint override (moto/LocalStack); unset in AWS.
    aws_endpoint_url: str | None = None
    aws_region: str = "us-east-1"

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = os.environ.get("ESTEIRA_DATA_DIR") or None
        return cls(
            data_dir=data_dir,
            cache_dir=Path(env_str("ESTEIRA_CACHE_DIR", str(Path.home() / ".cache" / "esteira"))),
            labels_uri=os.environ.get("ESTEIRA_LABELS_URI") or None,
            data_url=env_str("ESTEIRA_DATA_URL", cls.data_url),
            mlflow_tracking_uri=env_str("MLFLOW_TRACKING_URI", cls.mlflow_tracking_uri),
            experiment_name=env_str("ESTEIRA_EXPERIMENT", cls.experiment_name),
            registered_model_name=env_str("ESTEIRA_MODEL_NAME", cls.registered_model_name),
            gate_min_improvement=env_float("ESTEIRA_GATE_MIN_IMPROVEMENT", cls.gate_min_improvement),
            gate_max_intent_f1_drop=env_float("ESTEIRA_GATE_MAX_INTENT_F1_DROP", cls.gate_max_intent_f1_drop),
            gate_min_accuracy=env_float("ESTEIRA_GATE_MIN_ACCURACY", cls.gate_min_accuracy),
            gate_min_macro_f1=env_float("ESTEIRA_GATE_MIN_MACRO_F1", cls.gate_min_macro_f1),
            max_text_chars=env_int("ESTEIRA_MAX_TEXT_CHARS", cls.max_text_chars),
            min_rows=env_int("ESTEIRA_MIN_ROWS", cls.min_rows),
            max_rows=env_int("ESTEIRA_MAX_ROWS", cls.max_rows),
            max_file_bytes=env_int("ESTEIRA_MAX_FILE_BYTES", cls.max_file_bytes),
            snapshot_uri=_snapshot_uri_from_env(),
            aws_endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
            aws_region=env_str("AWS_DEFAULT_REGION", env_str("AWS_REGION", cls.aws_region)),
        )

    def snapshot_root(self) -> str:
        """The snapshot root as configured, or a folder under the cache when nothing names one."""
        return self.snapshot_uri or str(self.cache_dir / "snapshots")


def _snapshot_uri_from_env() -> str | None:
    """ESTEIRA_SNAPSHOT_URI, else the contract's snapshots prefix of ESTEIRA_DATA_BUCKET, else None."""
    explicit = os.environ.get("ESTEIRA_SNAPSHOT_URI")
    if explicit:
        return explicit
    bucket = os.environ.get("ESTEIRA_DATA_BUCKET")
    if not bucket:
        return None
    return f"s3://{bucket}/{contract().snapshots_prefix}/"
