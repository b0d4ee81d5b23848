"""What every handler shares: a JSON log line per call, and naming transient failures so they are retried.

Step Functions names a Lambda error after the exception class (`errorType`). Network-level failures
are re-raised as `TransientError`, the one name the state machine retries with backoff; every other
error keeps its own name (DataValidationError, SmokeTestFailed, ...) and goes to the Catch.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.exceptions import ConnectionError as BotoConnectionError

log = logging.getLogger("esteira.lambda")
log.setLevel(logging.INFO)

_THROTTLING = {
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalFailure",
    "ProvisionedThroughputExceededException",
}


class TransientError(RuntimeError):
    """Worth retrying: the network or a throttled API, not our input."""


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, EndpointConnectionError | BotoConnectionError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code") in _THROTTLING
    try:
        from mlflow.exceptions import MlflowException
    except ImportError:  # pragma: no cover - mlflow is in the image
        return False
    if isinstance(exc, MlflowException):
        text = str(exc)
        return "Max retries exceeded" in text or "Connection refused" in text or " 50" in text[:200]
    return False


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

# The MLflow credential each function read from its secret, once per execution environment (its cold
# start), keyed by (function name, secret).
_credentials: dict[tuple[str, str], dict[str, str]] = {}


def mlflow_credentials() -> None:
    """The function's MLflow user from the secret ESTEIRA_MLFLOW_CREDENTIALS_SECRET names, read at the
    first call (pipelines.registry.use_credentials_from_secret) and set for every call. A failure is
    raised in the call, so the step's Retry/Catch sees it, and is tried again next call.

    In AWS an execution environment holds one function. The embedded AWS runs several in one process,
    so the cache is per function and set on each call: each function reads the secret itself, with its
    own role, as it must in AWS. Keyed by the secret alone, one function's read served the others, and
    a role without secretsmanager:GetSecretValue would have passed here and failed there."""
    from pipelines.registry import CREDENTIALS_SECRET_VARIABLE, use_credentials_from_secret

    arn = os.environ.get(CREDENTIALS_SECRET_VARIABLE, "")
    if not arn:
        return
    key = (os.environ.get("AWS_LAMBDA_FUNCTION_NAME", ""), arn)
    if key not in _credentials:
        read = {CREDENTIALS_SECRET_VARIABLE: arn}
        use_credentials_from_secret(read)
        _credentials[key] = {k: v for k, v in read.items() if k != CREDENTIALS_SECRET_VARIABLE}
    os.environ.update(_credentials[key])


def step(name: str) -> Callable[[Callable[[dict[str, Any]], dict[str, Any]]], Handler]:
    def wrap(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Handler:
        @functools.wraps(fn)
        def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
            started = time.monotonic()
            try:
                mlflow_credentials()
                result = fn(event or {})
            except Exception as exc:
                log.error(json.dumps({"step": name, "error": type(exc).__name__, "message": str(exc)[:2000]}))
                if _is_transient(exc):
                    raise TransientError(f"{type(exc).__name__}: {exc}") from exc
                raise
            log.info(json.dumps({"step": name, "seconds": round(time.monotonic() - started, 3)}))
            return json.loads(json.dumps(result, default=str))

        return handler

    return wrap
