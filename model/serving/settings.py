"""The inference service's configuration, read from environment variables in one place.

Why a module of its own rather than model/config.py: the serving limits only matter to this process
and are validated against ranges here, and the serving image should not import training code.
Every knob has a documented default that suits
ECS Fargate behind an ALB (one uvicorn worker per task, scale out with tasks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from model.contract import contract
from model.redact import MIN_KEY_CHARS, MODES


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def _num(name: str, default: float, cast: type, low: float, high: float) -> float:
    raw = _env(name, str(default))
    try:
        value = cast(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={raw!r} is not a {cast.__name__}") from exc
    if not low <= value <= high:
        raise ValueError(f"environment variable {name}={value} must be between {low} and {high}")
    return value


@dataclass(frozen=True)
class ServingSettings:
    """A snapshot of the serving configuration; build one with `ServingSettings.from_env()`."""

    # What to serve: models:/<name>@<alias>, models:/<name>/<version>, s3://... or a local MLflow model dir.
    model_uri: str = ""
    # Reported model version for s3:// and local URIs (registry URIs resolve it from MLflow).
    model_version: str = ""
    host: str = "0.0.0.0"
    port: int = 8080
    service_name: str = contract().serving_service_name
    mlflow_tracking_uri: str | None = None
    # Request limits: longer text, bigger batches or bodies get a 4xx naming the field.
    max_text_chars: int = 1000
    max_batch: int = 64
    max_body_bytes: int = 1_048_576
    max_top_k: int = 10
    default_top_k: int = 3
    # Micro-batcher: rows per vectorised predict and the longest a request waits for company.
    batch_max_rows: int = 64
    batch_wait_ms: float = 2.0
    batch_in_thread: bool = False
    # EMF aggregation interval and the confidence below which a prediction counts as "low".
    metrics_interval_s: float = 60.0
    low_confidence: float = 0.5
    # Inference capture (unset URI = off).
    capture_s3_uri: str = ""
    capture_sample_rate: float = 1.0
    capture_flush_s: float = 5.0
    capture_flush_records: int = 1000
    capture_max_buffer: int = 50_000
    capture_retries: int = 5
    # What the capture keeps of a message's text (model/redact.py): "redact" (typed placeholders),
    # "hash" (keyed HMAC tokens, needs CAPTURE_REDACTION_KEY) or "drop" (no text). The prediction always
    # uses the original text. The key is configuration only (a secret in the task definition), never code.
    capture_redaction: str = "redact"
    capture_redaction_key: str = field(default="", repr=False)
    aws_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    # uvicorn: seconds to finish in-flight requests after SIGTERM (ECS stopTimeout is 30 s), and the
    # keep-alive, kept above the ALB idle timeout (60 s) so the ALB never reuses a closed connection.
    shutdown_timeout_s: float = 20.0
    keep_alive_s: int = 65
    log_level: str = "info"
    # POST /predict answered in uvicorn's protocol (model/serving/fast_path.py): on by default while the
    # installed uvicorn is the tested one; SERVING_FAST_PATH=0 runs plain uvicorn.
    fast_path: bool = True
    # Release role: "serving" (the stable fleet, and a canary candidate) or "shadow" (a candidate that
    # only receives copies). A serving process with SHADOW_URL set copies its traffic to that URL while
    # the process there answers /health with role "shadow" (docs/canary.md, shadow mode).
    role: str = "serving"
    shadow_url: str = ""
    shadow_sample_rate: float = 1.0
    shadow_timeout_s: float = 2.0
    shadow_max_pending: int = 1000
    shadow_probe_s: float = 10.0

    @classmethod
    def from_env(cls) -> ServingSettings:
        return cls(
            model_uri=_env("MODEL_URI", ""),
            model_version=_env("MODEL_VERSION", ""),
            host=_env("HOST", cls.host),
            port=int(_num("PORT", cls.port, int, 0, 65535)),
            service_name=_env("SERVICE_NAME", cls.service_name),
            mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or None,
            max_text_chars=int(_num("SERVING_MAX_TEXT_CHARS", cls.max_text_chars, int, 1, 1_000_000)),
            max_batch=int(_num("SERVING_MAX_BATCH", cls.max_batch, int, 1, 10_000)),
            max_body_bytes=int(_num("SERVING_MAX_BODY_BYTES", cls.max_body_bytes, int, 64, 1 << 30)),
            max_top_k=int(_num("SERVING_MAX_TOP_K", cls.max_top_k, int, 1, 1000)),
            default_top_k=int(_num("SERVING_DEFAULT_TOP_K", cls.default_top_k, int, 1, 1000)),
            batch_max_rows=int(_num("SERVING_BATCH_MAX_ROWS", cls.batch_max_rows, int, 1, 100_000)),
            batch_wait_ms=_num("SERVING_BATCH_WAIT_MS", cls.batch_wait_ms, float, 0.0, 1000.0),
            batch_in_thread=bool(_num("SERVING_BATCH_THREAD", int(cls.batch_in_thread), int, 0, 1)),
            metrics_interval_s=_num("SERVING_METRICS_INTERVAL_S", cls.metrics_interval_s, float, 0.05, 3600.0),
            low_confidence=_num("SERVING_LOW_CONFIDENCE", cls.low_confidence, float, 0.0, 1.0),
            capture_s3_uri=_env("CAPTURE_S3_URI", ""),
            capture_sample_rate=_num("CAPTURE_SAMPLE_RATE", cls.capture_sample_rate, float, 0.0, 1.0),
            capture_flush_s=_num("CAPTURE_FLUSH_S", cls.capture_flush_s, float, 0.05, 3600.0),
            capture_flush_records=int(_num("CAPTURE_FLUSH_RECORDS", cls.capture_flush_records, int, 1, 1_000_000)),
            capture_max_buffer=int(_num("CAPTURE_MAX_BUFFER", cls.capture_max_buffer, int, 1, 10_000_000)),
            capture_retries=int(_num("CAPTURE_RETRIES", cls.capture_retries, int, 0, 100)),
            capture_redaction=_redaction(
                _env("CAPTURE_REDACTION", cls.capture_redaction).lower(), _env("CAPTURE_REDACTION_KEY", "")
            ),
            capture_redaction_key=_env("CAPTURE_REDACTION_KEY", ""),
            aws_endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
            aws_region=_env("AWS_DEFAULT_REGION", _env("AWS_REGION", cls.aws_region)),
            shutdown_timeout_s=_num("SERVING_SHUTDOWN_TIMEOUT_S", cls.shutdown_timeout_s, float, 0.0, 3600.0),
            keep_alive_s=int(_num("SERVING_KEEP_ALIVE_S", cls.keep_alive_s, int, 1, 3600)),
            log_level=_env("LOG_LEVEL", cls.log_level).lower(),
            fast_path=bool(_num("SERVING_FAST_PATH", int(cls.fast_path), int, 0, 1)),
            role=_role(_env("SERVING_ROLE", cls.role)),
            shadow_url=_env("SHADOW_URL", ""),
            shadow_sample_rate=_num("SHADOW_SAMPLE_RATE", cls.shadow_sample_rate, float, 0.0, 1.0),
            shadow_timeout_s=_num("SHADOW_TIMEOUT_S", cls.shadow_timeout_s, float, 0.05, 60.0),
            shadow_max_pending=int(_num("SHADOW_MAX_PENDING", cls.shadow_max_pending, int, 1, 1_000_000)),
            shadow_probe_s=_num("SHADOW_PROBE_S", cls.shadow_probe_s, float, 0.05, 3600.0),
        )


ROLES = ("serving", "shadow")


def _role(value: str) -> str:
    if value not in ROLES:
        raise ValueError(f"environment variable SERVING_ROLE={value!r} must be one of {ROLES}")
    return value


def _redaction(mode: str, key: str) -> str:
    if mode not in MODES:
        raise ValueError(f"environment variable CAPTURE_REDACTION={mode!r} must be one of {MODES}")
    if mode == "hash" and len(key) < MIN_KEY_CHARS:
        raise ValueError(f"CAPTURE_REDACTION=hash needs CAPTURE_REDACTION_KEY of at least {MIN_KEY_CHARS} characters")
    return mode
