"""The inference service's configuration, read from environment variables in one place.

Why a module of its own rather than model/config.py: the serving limits only matter to this process,
and the serving image should not import training code. Names, types, ranges and defaults are declared
with the project's one settings mechanism (model/settings.py; every name in docs/settings.md). Every
knob has a documented default that suits ECS Fargate behind an ALB (one uvicorn worker per task, scale
out with tasks). The names before the ESTEIRA_ scheme (MODEL_URI, PORT, SERVING_*, CAPTURE_*, SHADOW_*,
...) are still read, with a deprecation warning, until the next release.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self, get_args

from pydantic import model_validator

from model.contract import contract
from model.redact import MIN_KEY_CHARS, MODES
from model.settings import EsteiraSettings, Flag, lower, setting

ROLES = ("serving", "shadow")
Role = Literal["serving", "shadow"]
Redaction = Literal["redact", "hash", "drop"]
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
assert get_args(Role) == ROLES and set(get_args(Redaction)) == set(MODES)


class ServingSettings(EsteiraSettings):
    """The inference service (model/serving); build one with `ServingSettings.from_env()`."""

    doc_title: ClassVar[str] = "Inference service (model/serving/settings.py `ServingSettings`)"

    model_uri: str = setting(
        "",
        env="ESTEIRA_MODEL_URI",
        old=("MODEL_URI",),
        description="What to serve: models:/<name>@<alias>, models:/<name>/<version>, s3://... or a local MLflow "
        "model directory. The deploy step pins models:/<name>/<version>.",
    )
    model_version: str = setting(
        "",
        env="ESTEIRA_MODEL_VERSION",
        old=("MODEL_VERSION",),
        description="Reported model version for s3:// and local URIs (registry URIs resolve it from MLflow).",
    )
    host: str = setting(
        "0.0.0.0", env="ESTEIRA_SERVING_HOST", old=("HOST",), description="Address the service listens on."
    )
    port: int = setting(
        8080, env="ESTEIRA_SERVING_PORT", old=("PORT",), ge=0, le=65535, description="Port it listens on."
    )
    service_name: str = setting(
        contract().serving_service_name,
        env="ESTEIRA_SERVICE_NAME",
        old=("SERVICE_NAME",),
        description="The ECS service; the Service dimension of the metrics the alarms read.",
    )
    mlflow_tracking_uri: str | None = setting(
        None, env="MLFLOW_TRACKING_URI", description="MLflow server resolving models:/ URIs."
    )
    max_text_chars: int = setting(
        1000,
        env="ESTEIRA_SERVING_MAX_TEXT_CHARS",
        old=("SERVING_MAX_TEXT_CHARS",),
        ge=1,
        le=1_000_000,
        description="Request limit: longer text gets a 4xx naming the field.",
    )
    max_batch: int = setting(
        64,
        env="ESTEIRA_SERVING_MAX_BATCH",
        old=("SERVING_MAX_BATCH",),
        ge=1,
        le=10_000,
        description="Request limit: the most texts in one request.",
    )
    max_body_bytes: int = setting(
        1_048_576,
        env="ESTEIRA_SERVING_MAX_BODY_BYTES",
        old=("SERVING_MAX_BODY_BYTES",),
        ge=64,
        le=1 << 30,
        description="Request limit: the largest request body.",
    )
    max_top_k: int = setting(
        10,
        env="ESTEIRA_SERVING_MAX_TOP_K",
        old=("SERVING_MAX_TOP_K",),
        ge=1,
        le=1000,
        description="Request limit: the most intents a prediction may list.",
    )
    default_top_k: int = setting(
        3,
        env="ESTEIRA_SERVING_DEFAULT_TOP_K",
        old=("SERVING_DEFAULT_TOP_K",),
        ge=1,
        le=1000,
        description="Intents listed when a request does not say.",
    )
    batch_max_rows: int = setting(
        64,
        env="ESTEIRA_SERVING_BATCH_MAX_ROWS",
        old=("SERVING_BATCH_MAX_ROWS",),
        ge=1,
        le=100_000,
        description="Micro-batcher: rows per vectorised predict.",
    )
    batch_wait_ms: float = setting(
        2.0,
        env="ESTEIRA_SERVING_BATCH_WAIT_MS",
        old=("SERVING_BATCH_WAIT_MS",),
        ge=0.0,
        le=1000.0,
        description="Micro-batcher: the longest a request waits for company.",
    )
    batch_in_thread: Flag = setting(
        False,
        env="ESTEIRA_SERVING_BATCH_THREAD",
        old=("SERVING_BATCH_THREAD",),
        description="1: predict in a worker thread instead of on the event loop.",
    )
    metrics_interval_s: float = setting(
        60.0,
        env="ESTEIRA_SERVING_METRICS_INTERVAL_S",
        old=("SERVING_METRICS_INTERVAL_S",),
        ge=0.05,
        le=3600.0,
        description="EMF metrics aggregation interval.",
    )
    low_confidence: float = setting(
        0.5,
        env="ESTEIRA_SERVING_LOW_CONFIDENCE",
        old=("SERVING_LOW_CONFIDENCE",),
        ge=0.0,
        le=1.0,
        description="Confidence below which a prediction counts as low.",
    )
    capture_s3_uri: str = setting(
        "",
        env="ESTEIRA_CAPTURE_S3_URI",
        old=("CAPTURE_S3_URI",),
        description="Inference capture root, s3://<bucket>/<prefix>/ (unset: no capture).",
    )
    capture_sample_rate: float = setting(
        1.0,
        env="ESTEIRA_CAPTURE_SAMPLE_RATE",
        old=("CAPTURE_SAMPLE_RATE",),
        ge=0.0,
        le=1.0,
        description="Share of requests captured.",
    )
    capture_flush_s: float = setting(
        5.0,
        env="ESTEIRA_CAPTURE_FLUSH_S",
        old=("CAPTURE_FLUSH_S",),
        ge=0.05,
        le=3600.0,
        description="Seconds between capture uploads.",
    )
    capture_flush_records: int = setting(
        1000,
        env="ESTEIRA_CAPTURE_FLUSH_RECORDS",
        old=("CAPTURE_FLUSH_RECORDS",),
        ge=1,
        le=1_000_000,
        description="Records that trigger an upload before the interval is up.",
    )
    capture_max_buffer: int = setting(
        50_000,
        env="ESTEIRA_CAPTURE_MAX_BUFFER",
        old=("CAPTURE_MAX_BUFFER",),
        ge=1,
        le=10_000_000,
        description="Records kept while uploads fail; beyond it records are dropped (and counted).",
    )
    capture_retries: int = setting(
        5, env="ESTEIRA_CAPTURE_RETRIES", old=("CAPTURE_RETRIES",), ge=0, le=100, description="Upload retries."
    )
    capture_redaction: Annotated[Redaction, lower] = setting(
        "redact",
        env="ESTEIRA_CAPTURE_REDACTION",
        old=("CAPTURE_REDACTION",),
        description="What the capture keeps of a message's text (model/redact.py): redact (typed placeholders), "
        "hash (keyed HMAC tokens, needs ESTEIRA_CAPTURE_REDACTION_KEY) or drop (no text). The prediction always "
        "uses the original text.",
    )
    capture_redaction_key: str = setting(
        "",
        env="ESTEIRA_CAPTURE_REDACTION_KEY",
        old=("CAPTURE_REDACTION_KEY",),
        repr=False,
        description=f"Key of the hash mode, at least {MIN_KEY_CHARS} characters: configuration only (a secret in the "
        "task definition), never code.",
    )
    aws_endpoint_url: str | None = setting(
        None, env="AWS_ENDPOINT_URL", description="AWS endpoint override (moto, LocalStack, localaws); unset in AWS."
    )
    aws_region: str = setting("us-east-1", env="AWS_DEFAULT_REGION", also=("AWS_REGION",), description="AWS region.")
    shutdown_timeout_s: float = setting(
        20.0,
        env="ESTEIRA_SERVING_SHUTDOWN_TIMEOUT_S",
        old=("SERVING_SHUTDOWN_TIMEOUT_S",),
        ge=0.0,
        le=3600.0,
        description="uvicorn: seconds to finish in-flight requests after SIGTERM (ECS stopTimeout is 30 s).",
    )
    keep_alive_s: int = setting(
        65,
        env="ESTEIRA_SERVING_KEEP_ALIVE_S",
        old=("SERVING_KEEP_ALIVE_S",),
        ge=1,
        le=3600,
        description="uvicorn keep-alive, above the ALB idle timeout (60 s) so the ALB never reuses a closed "
        "connection.",
    )
    log_level: Annotated[LogLevel, lower] = setting(
        "info", env="ESTEIRA_LOG_LEVEL", old=("LOG_LEVEL",), description="Log level of the service."
    )
    fast_path: Flag = setting(
        True,
        env="ESTEIRA_SERVING_FAST_PATH",
        old=("SERVING_FAST_PATH",),
        description="1: POST /predict answered in uvicorn's protocol (model/serving/fast_path.py) while the "
        "installed uvicorn is the tested one; 0: plain uvicorn.",
    )
    role: Role = setting(
        "serving",
        env="ESTEIRA_SERVING_ROLE",
        old=("SERVING_ROLE",),
        description="Release role: serving (the stable fleet, and a canary candidate) or shadow (a candidate that "
        "only receives copies; set by the shadow release).",
    )
    shadow_url: str = setting(
        "",
        env="ESTEIRA_SHADOW_URL",
        old=("SHADOW_URL",),
        description="A serving process copies its traffic here while the process there answers /health with role "
        "shadow (docs/canary.md, shadow mode). Unset: no copies.",
    )
    shadow_sample_rate: float = setting(
        1.0,
        env="ESTEIRA_SHADOW_SAMPLE_RATE",
        old=("SHADOW_SAMPLE_RATE",),
        ge=0.0,
        le=1.0,
        description="Share of requests copied to the shadow.",
    )
    shadow_timeout_s: float = setting(
        2.0,
        env="ESTEIRA_SHADOW_TIMEOUT_S",
        old=("SHADOW_TIMEOUT_S",),
        ge=0.05,
        le=60.0,
        description="Timeout of one copy.",
    )
    shadow_max_pending: int = setting(
        1000,
        env="ESTEIRA_SHADOW_MAX_PENDING",
        old=("SHADOW_MAX_PENDING",),
        ge=1,
        le=1_000_000,
        description="Copies in flight at most; beyond it copies are dropped.",
    )
    shadow_probe_s: float = setting(
        10.0,
        env="ESTEIRA_SHADOW_PROBE_S",
        old=("SHADOW_PROBE_S",),
        ge=0.05,
        le=3600.0,
        description="Seconds between probes of the shadow's /health.",
    )

    @model_validator(mode="after")
    def _hash_needs_a_key(self) -> Self:
        if self.capture_redaction == "hash" and len(self.capture_redaction_key) < MIN_KEY_CHARS:
            raise ValueError(
                f"ESTEIRA_CAPTURE_REDACTION=hash needs ESTEIRA_CAPTURE_REDACTION_KEY of at least {MIN_KEY_CHARS} "
                "characters"
            )
        return self
