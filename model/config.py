"""The pipeline steps' settings.

Product code never knows where it runs: bucket names, endpoints, the MLflow URI and the model URI all
come from environment variables, read by the project's one settings mechanism (model/settings.py) with
their types, ranges and defaults declared here; docs/settings.md lists them all. A Lambda, an ECS
task, the CLI and the local demo differ only in these values.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

from model.contract import contract
from model.settings import EsteiraSettings, setting


class Settings(EsteiraSettings):
    """Data, training, gate and registry settings of the pipeline steps; build one with `Settings.from_env()`."""

    doc_title: ClassVar[str] = "Pipeline (model/config.py `Settings`)"

    data_dir: str | None = setting(
        None,
        env="ESTEIRA_DATA_DIR",
        description="Where BANKING77 lives. Unset: downloaded from `ESTEIRA_DATA_URL` into the cache.",
    )
    cache_dir: Path = setting(
        env="ESTEIRA_CACHE_DIR",
        default_factory=lambda: Path.home() / ".cache" / "esteira",
        default_doc="~/.cache/esteira",
        description="Download cache for the public data set (and the local snapshot root).",
    )
    labels_uri: str | None = setting(
        None,
        env="ESTEIRA_LABELS_URI",
        description="The intent taxonomy (a JSON list) labels are validated against, s3:// or a local path. Terraform "
        "sets it to the data bucket's labels/categories.json (steps in private subnets have no route to the internet). "
        "Unset: BANKING77's own list.",
    )
    data_url: str = setting(
        "https://raw.githubusercontent.com/PolyAI-LDN/task-specific-datasets/master/banking_data",
        env="ESTEIRA_DATA_URL",
        description="Public source of BANKING77 (PolyAI-LDN/task-specific-datasets, folder banking_data).",
    )
    mlflow_tracking_uri: str = setting(
        "http://127.0.0.1:5500",
        env="MLFLOW_TRACKING_URI",
        description="MLflow tracking server and registry (the demo starts one on 127.0.0.1:5500).",
    )
    experiment_name: str = setting(
        "esteira-intent", env="ESTEIRA_EXPERIMENT", description="MLflow experiment of the runs."
    )
    registered_model_name: str = setting(
        "esteira-intent", env="ESTEIRA_MODEL_NAME", description="Registered model the versions and aliases belong to."
    )
    gate_min_improvement: float = setting(
        0.0,
        env="ESTEIRA_GATE_MIN_IMPROVEMENT",
        ge=-1.0,
        le=1.0,
        description="Gate: a challenger must beat the champion by this much accuracy on the same evaluation set.",
    )
    gate_max_intent_f1_drop: float = setting(
        0.10,
        env="ESTEIRA_GATE_MAX_INTENT_F1_DROP",
        ge=0.0,
        le=1.0,
        description="Gate: no intent's F1 may fall by more than this against the champion.",
    )
    gate_min_accuracy: float = setting(
        0.85,
        env="ESTEIRA_GATE_MIN_ACCURACY",
        ge=0.0,
        le=1.0,
        description="Gate: the accuracy the first model (no champion yet) must reach.",
    )
    gate_min_macro_f1: float = setting(
        0.85,
        env="ESTEIRA_GATE_MIN_MACRO_F1",
        ge=0.0,
        le=1.0,
        description="Gate: the macro F1 the first model (no champion yet) must reach.",
    )
    max_text_chars: int = setting(
        1000, env="ESTEIRA_MAX_TEXT_CHARS", ge=1, description="Validation: the longest text a data set may hold."
    )
    min_rows: int = setting(
        20, env="ESTEIRA_MIN_ROWS", ge=1, description="Validation: the fewest rows a data set may have."
    )
    max_rows: int = setting(
        2_000_000, env="ESTEIRA_MAX_ROWS", ge=1, description="Validation: the most rows a data set may have."
    )
    max_file_bytes: int = setting(
        500 * 1024 * 1024, env="ESTEIRA_MAX_FILE_BYTES", ge=1, description="Validation: the largest data file read."
    )
    snapshot_uri: str | None = setting(
        None,
        env="ESTEIRA_SNAPSHOT_URI",
        default_doc="s3://<ESTEIRA_DATA_BUCKET>/<contract snapshots_prefix>/, else <cache dir>/snapshots",
        description="Where validated data is kept, immutable, one folder per dataset hash (pipelines/snapshot.py): an "
        "s3:// prefix or a local folder. Terraform and CDK set it to the data bucket's snapshots prefix.",
    )
    data_bucket: str | None = setting(
        None,
        env="ESTEIRA_DATA_BUCKET",
        description="The data bucket; when ESTEIRA_SNAPSHOT_URI is unset, the snapshots live under its "
        "contract.yaml snapshots_prefix.",
    )
    aws_endpoint_url: str | None = setting(
        None, env="AWS_ENDPOINT_URL", description="AWS endpoint override (moto, LocalStack, localaws); unset in AWS."
    )
    aws_region: str = setting("us-east-1", env="AWS_DEFAULT_REGION", also=("AWS_REGION",), description="AWS region.")

    @classmethod
    def from_env(cls) -> Self:
        settings = cls.read_env()
        if settings.snapshot_uri is None and settings.data_bucket:
            settings = settings.replace(snapshot_uri=f"s3://{settings.data_bucket}/{contract().snapshots_prefix}/")
        return settings

    def snapshot_root(self) -> str:
        """The snapshot root as configured, or a folder under the cache when nothing names one."""
        return self.snapshot_uri or str(self.cache_dir / "snapshots")
