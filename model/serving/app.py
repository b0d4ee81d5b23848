"""The inference service: FastAPI routes over a micro-batched classifier, with EMF metrics and S3 capture.

Why the request bodies are parsed by hand (and documented through `openapi_extra`): the service must
answer every malformed request with a 4xx naming the field - a body that is not UTF-8, not JSON, the
wrong content type, the wrong types, empty or whitespace text, too long, too many - and FastAPI's own
body handling reports several of these as a generic 400 or as the misleading "body: field required". A
small validator also costs less per request than a pydantic round trip, and responses are written as
ready JSON bytes for the same reason.

Why orjson with the standard library behind it: orjson parses and writes the hot path's small documents
~5x faster (~5 us of a ~90 us request), but it is stricter than the JSON grammar the API has always
accepted (a lone surrogate escape such as "\\ud800", NaN). So a body orjson rejects is parsed again by
`json`, which accepts it or produces the error message, and an answer orjson cannot encode (a lone
surrogate echoed in an error) is written by `json`, ASCII-escaped. Every input gets the status and field
it got before, only sooner (one difference in wording: an integer beyond 64 bits, which orjson reads as a
number, is "not an integer" instead of "out of range").
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from model.serving.batching import BatcherClosed, MicroBatcher
from model.serving.capture import CaptureWriter
from model.serving.emf import Metrics
from model.serving.loader import LoadedModel, ModelLoadError, load
from model.serving.settings import ServingSettings
from model.serving.shadow import ShadowMirror

log = logging.getLogger("esteira.serving")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
SHADOW_HEADER = b"x-esteira-shadow"  # set by model/serving/shadow.py on the copies it sends


# -- errors ---------------------------------------------------------------------------------------------
class BadRequest(Exception):
    """A client error with the offending field; becomes a JSON 4xx."""

    def __init__(self, status: int, error: str, field: str | None, message: str):
        super().__init__(message)
        self.status, self.error, self.field, self.message = status, error, field, message


def encode_json(body: dict[str, Any]) -> bytes:
    """The answer as JSON bytes: orjson, or the standard library for what orjson refuses (lone surrogates)."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, separators=(",", ":")).encode()


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        encode_json(body),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _error_body(error: str, field: str | None, message: str) -> dict[str, Any]:
    return {"error": error, "field": field, "message": message}


def _error(status: int, error: str, field: str | None, message: str) -> Response:
    return _json(_error_body(error, field, message), status)


# -- OpenAPI models (documentation; validation is in `_parse_*`) ----------------------------------------
class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable error code")
    field: str | None = Field(description="the request field at fault (e.g. `texts[3]`), or `body`")
    message: str


class Intent(BaseModel):
    intent: str
    confidence: float


class PredictionBody(BaseModel):
    intent: str
    confidence: float = Field(ge=0, le=1)
    top_k: list[Intent]


class PredictResponse(PredictionBody):
    model_version: str
    request_id: str


class BatchPredictResponse(BaseModel):
    model_version: str
    request_id: str
    predictions: list[PredictionBody]


class Contribution(BaseModel):
    token: str
    weight: float


class ExplainResponse(BaseModel):
    model_version: str
    request_id: str
    intent: str
    confidence: float
    contributions: list[Contribution]


class ReadyBody(BaseModel):
    status: str
    model_version: str | None = None
    model_uri: str | None = None
    reason: str | None = None


def _text_schema(max_chars: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_chars, "pattern": r"\S"}


def _predict_schema(s: ServingSettings) -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Exactly one of `text` (one text) or `texts` (a batch).",
        "properties": {
            "text": _text_schema(s.max_text_chars),
            "texts": {"type": "array", "minItems": 1, "maxItems": s.max_batch, "items": _text_schema(s.max_text_chars)},
            "top_k": {"type": "integer", "minimum": 1, "maximum": s.max_top_k, "default": s.default_top_k},
        },
        "additionalProperties": False,
        "oneOf": [{"required": ["text"]}, {"required": ["texts"]}],
        "example": {"text": "I still have not received my new card", "top_k": 3},
    }


def _explain_schema(s: ServingSettings) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "text": _text_schema(s.max_text_chars),
            "top_n": {"type": "integer", "minimum": 1, "maximum": 50, "default": 8},
            "intent": {"type": "string", "description": "explain this intent instead of the predicted one"},
        },
        "required": ["text"],
        "additionalProperties": False,
        "example": {"text": "my card payment was declined"},
    }


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "body is not UTF-8 JSON"},
    413: {"model": ErrorBody, "description": "body larger than SERVING_MAX_BODY_BYTES"},
    415: {"model": ErrorBody, "description": "content type is not application/json"},
    422: {"model": ErrorBody, "description": "a field is missing, of the wrong type or out of bounds"},
    503: {"model": ErrorBody, "description": "model not loaded (see /ready) or shutting down"},
}


# -- request parsing ------------------------------------------------------------------------------------
def _check_content_type(ctype: str) -> None:
    media = ctype.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise BadRequest(415, "unsupported_media_type", "content-type", f"expected application/json, got {ctype!r}")


def _check_declared_length(declared: str | None, max_bytes: int) -> None:
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BadRequest(413, "body_too_large", "body", f"body is {declared} bytes; the limit is {max_bytes}")


def _too_large(max_bytes: int) -> BadRequest:
    return BadRequest(413, "body_too_large", "body", f"body exceeds the limit of {max_bytes} bytes")


def decode_json(raw: bytes) -> Any:
    """UTF-8 JSON or a 400 naming the body (RFC 8259: JSON between systems is UTF-8)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass  # the standard library decides: it accepts what orjson is stricter about, or explains the error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(400, "invalid_encoding", "body", f"body is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise BadRequest(400, "invalid_json", "body", "body is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise BadRequest(400, "invalid_json", "body", f"invalid JSON: {exc.msg} at {where}") from None
    except RecursionError:
        raise BadRequest(400, "invalid_json", "body", "JSON nested too deeply") from None


def _check_body_headers(ctype: str, declared: str | None, max_bytes: int) -> None:
    """The checks the headers alone decide: a JSON content type, a declared length within the limit."""
    _check_content_type(ctype)
    _check_declared_length(declared, max_bytes)


async def _read_json(request: Request, max_bytes: int) -> Any:
    _check_body_headers(request.headers.get("content-type", ""), request.headers.get("content-length"), max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return decode_json(b"".join(chunks))


def _check_text(value: Any, field: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise BadRequest(422, "invalid_type", field, f"{field} must be a string, got {_json_type(value)}")
    if not value.strip():
        raise BadRequest(422, "empty_text", field, f"{field} is empty or only whitespace")
    if len(value) > max_chars:
        raise BadRequest(422, "text_too_long", field, f"{field} has {len(value)} characters; the limit is {max_chars}")
    return value


def _check_int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(422, "invalid_type", field, f"{field} must be an integer, got {_json_type(value)}")
    if not low <= value <= high:
        raise BadRequest(422, "out_of_range", field, f"{field} must be between {low} and {high}, got {value}")
    return value


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _check_object(doc: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise BadRequest(422, "invalid_type", "body", f"body must be a JSON object, got {_json_type(doc)}")
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise BadRequest(422, "unknown_field", unknown[0], f"unknown field {unknown[0]!r}; allowed: {sorted(allowed)}")
    return doc


def parse_predict(doc: Any, s: ServingSettings) -> tuple[list[str], bool, int]:
    """Return (texts, is_batch, top_k) or raise BadRequest naming the field."""
    body = _check_object(doc, {"text", "texts", "top_k"})
    top_k = _check_int(body["top_k"], "top_k", 1, s.max_top_k) if "top_k" in body else s.default_top_k
    if "text" in body and "texts" in body:
        raise BadRequest(422, "conflicting_fields", "texts", "send either text or texts, not both")
    if "text" in body:
        return [_check_text(body["text"], "text", s.max_text_chars)], False, top_k
    if "texts" not in body:
        raise BadRequest(422, "missing_field", "text", "field required: text (one text) or texts (a batch)")
    texts = body["texts"]
    if not isinstance(texts, list):
        raise BadRequest(422, "invalid_type", "texts", f"texts must be an array of strings, got {_json_type(texts)}")
    if not texts:
        raise BadRequest(422, "empty_batch", "texts", "texts is empty")
    if len(texts) > s.max_batch:
        raise BadRequest(422, "batch_too_large", "texts", f"texts has {len(texts)} items; the limit is {s.max_batch}")
    return [_check_text(t, f"texts[{i}]", s.max_text_chars) for i, t in enumerate(texts)], True, top_k


def parse_explain(doc: Any, s: ServingSettings) -> tuple[str, int, str | None]:
    body = _check_object(doc, {"text", "top_n", "intent"})
    if "text" not in body:
        raise BadRequest(422, "missing_field", "text", "field required: text")
    text = _check_text(body["text"], "text", s.max_text_chars)
    top_n = _check_int(body["top_n"], "top_n", 1, 50) if "top_n" in body else 8
    intent = body.get("intent")
    if intent is not None and not isinstance(intent, str):
        raise BadRequest(422, "invalid_type", "intent", f"intent must be a string, got {_json_type(intent)}")
    return text, top_n, intent


# -- state ----------------------------------------------------------------------------------------------
class ServingState:
    """Everything the routes share: the current model, its loader status, the batcher, metrics, capture."""

    def __init__(self, settings: ServingSettings, loader: Callable[[str, bool], LoadedModel] | None = None):
        self.settings = settings
        self.model: LoadedModel | None = None
        self.status = "loading"
        self.reason: str | None = "model is loading"
        self.shutting_down = False
        self.reloading = False
        self.last_reload_error: str | None = None
        self._loader = loader or (
            lambda uri, first: load(
                uri, settings.mlflow_tracking_uri, fallback_version=settings.model_version, collect=first
            )
        )
        self.metrics = Metrics(settings.service_name, settings.low_confidence)
        self.shadow = ShadowMirror.from_settings(settings)  # None unless SHADOW_URL is set
        self.capture: CaptureWriter | None = None
        if settings.capture_s3_uri:
            self.capture = CaptureWriter(
                settings.capture_s3_uri,
                sample_rate=settings.capture_sample_rate,
                flush_s=settings.capture_flush_s,
                flush_records=settings.capture_flush_records,
                max_buffer=settings.capture_max_buffer,
                retries=settings.capture_retries,
                redaction=settings.capture_redaction,
                redaction_key=settings.capture_redaction_key,
                endpoint_url=settings.aws_endpoint_url,
                region=settings.aws_region,
            )
            capture = self.capture
            self.metrics.set_dropped_counter(lambda: capture.dropped)
        self.batcher: MicroBatcher | None = None
        self.in_flight = 0
        self.reloads = 0

    def _load_beside(self, uri: str) -> LoadedModel:
        return self._loader(uri, False)

    @property
    def version(self) -> str:
        return self.model.version if self.model else "none"

    def model_ref(self) -> tuple[str, Callable[[list[str], int], Any]]:
        model = self.model
        if model is None:
            raise ModelLoadError(self.reason or "model not loaded")
        return model.version, model.classifier.predict

    def record_batch(self, version: str, texts: list[str], preds: list[Any]) -> None:
        """Count a batch's predictions in its version's metrics (every prediction, shadow copies included)."""
        self.metrics.record_predictions(
            version, [p.intent for p in preds], [p.confidence for p in preds], [len(t) for t in texts]
        )

    async def load_initial(self) -> None:
        try:
            self.model = await asyncio.to_thread(self._loader, self.settings.model_uri, True)
        except Exception as exc:
            self.status, self.reason = "failed", str(exc) if isinstance(exc, ModelLoadError) else repr(exc)
            log.error("model load failed", extra={"reason": self.reason, "model_uri": self.settings.model_uri})
            return
        self.status, self.reason = "ready", None
        log.info(
            "model loaded",
            extra={
                "model_version": self.model.version,
                "model_uri": self.model.uri,
                "seconds": round(self.model.load_seconds, 2),
            },
        )

    async def reload(self, model_uri: str | None = None) -> bool:
        """Load a new model beside the current one, then swap the reference; on failure keep serving the old.

        Nothing heavy runs on the event loop: resolving, loading, the self-test (which warms the new model)
        and freezing happen in a worker thread while the old model answers every request; the swap is one
        reference assignment, so each batch is served whole by one model. The old model is freed by
        reference counting once its last batch is answered (no full GC on the loop: that stalled requests
        for seconds under load).
        """
        if self.reloading:
            return False
        self.reloading = True
        uri = model_uri or self.settings.model_uri
        started = time.perf_counter()
        try:
            new = await asyncio.to_thread(self._load_beside, uri)
        except Exception as exc:
            self.last_reload_error = str(exc)
            log.error("model reload failed; still serving the previous model", extra={"reason": str(exc)})
            if self.model is None:
                self.status, self.reason = "failed", str(exc)
            return False
        finally:
            self.reloading = False
        old = self.version
        self.model = new  # atomic: the next batch uses the new model, the running one finishes on the old
        self.reloads += 1
        self.status, self.reason, self.last_reload_error = "ready", None, None
        log.info(
            "model swapped",
            extra={
                "from_version": old,
                "model_version": new.version,
                "model_uri": new.uri,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        return True


# (status, JSON payload, model version, request id): how an answer to POST /predict leaves, on either path.
Respond = Callable[[int, bytes, str, str], None]


def handle_predict(
    state: ServingState, headers: list[tuple[bytes, bytes]], body: bytes | None, started: float, respond: Respond
) -> None:
    """Answer one POST /predict through `respond`, exactly once, and count it in the metrics.

    At once for a client error (`body` None means it passed the size limit), an unready model or a
    shutdown; otherwise from the batcher's callback when the request's batch has run. Never raises: a
    failure of its own is logged and answered as a JSON 500. Shared by the two ways a request arrives:
    the HTTP protocol's fast path (model/serving/http_protocol.py), which runs no task per request, and
    the ASGI app (for what that path leaves to uvicorn: pipelined requests, `Expect: 100-continue`).
    """
    ctype, declared, rid_header, mirrored = _predict_headers(headers)
    rid = request_id(rid_header)
    answered = False
    state.in_flight += 1

    def answer(status: int, doc: dict[str, Any], version: str) -> None:
        nonlocal answered
        if answered:
            return
        payload = encode_json(doc)  # before `answered`: if this raised, `fail` could still send its 500
        answered = True
        state.in_flight -= 1
        try:
            state.metrics.record_request(version, status, (time.perf_counter() - started) * 1000.0)
        except Exception:  # metrics must never cost a request its answer
            log.exception("recording a request failed")
        respond(status, payload, version, rid)

    def fail(exc: BaseException) -> None:
        log.error("unhandled error", exc_info=exc, extra={"path": "/predict"})
        answer(500, _error_body("internal_error", None, "internal error; see the service logs"), state.version)

    def done(version: Any, preds: list[Any] | None, error: BaseException | None) -> None:
        if isinstance(error, ModelLoadError):
            answer(503, _error_body("model_not_ready", None, str(error)), state.version)
        elif error is not None or preds is None:
            fail(error or RuntimeError("the batcher answered without predictions"))
        else:
            try:
                answer(200, _prediction_body(state, texts, is_batch, top_k, version, preds, rid, mirrored), version)
            except Exception as exc:
                fail(exc)

    try:
        settings = state.settings
        try:
            _check_body_headers(ctype, declared, settings.max_body_bytes)
            if body is None:
                raise _too_large(settings.max_body_bytes)
            texts, is_batch, top_k = parse_predict(decode_json(body), settings)
        except BadRequest as exc:
            answer(exc.status, _error_body(exc.error, exc.field, exc.message), state.version)
            return
        if state.model is None or state.batcher is None:
            answer(503, _error_body("model_not_ready", None, state.reason or "model not loaded"), state.version)
            return
        try:
            state.batcher.submit_nowait(texts, top_k, done)
        except BatcherClosed:
            answer(503, _error_body("shutting_down", None, "the service is shutting down"), state.version)
    except Exception as exc:
        fail(exc)


def _prediction_body(
    state: ServingState,
    texts: list[str],
    is_batch: bool,
    top_k: int,
    version: str,
    preds: list[Any],
    rid: str,
    mirrored: bool,
) -> dict[str, Any]:
    """The 200 answer; on the way, offer the texts to the shadow mirror and the capture (unless mirrored)."""
    items = [
        {
            "intent": p.intent,
            "confidence": p.confidence,
            "top_k": [{"intent": i, "confidence": c} for i, c in p.top_k[:top_k]],
        }
        for p in preds
    ]
    if state.shadow is not None and not mirrored:
        state.shadow.offer(texts, [p.intent for p in preds])
    if state.capture is not None and not mirrored:
        ts = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        state.capture.add(
            [
                {
                    "ts": ts,
                    "request_id": rid if not is_batch else f"{rid}-{i}",
                    "text": t,
                    "intent": p.intent,
                    "confidence": p.confidence,
                    "model_version": version,
                }
                for i, (t, p) in enumerate(zip(texts, preds, strict=True))
            ]
        )
    body: dict[str, Any] = {"model_version": version, "request_id": rid}
    if is_batch:
        body["predictions"] = items
    else:
        body.update(items[0])
    return body


async def predict_once(
    state: ServingState, headers: list[tuple[bytes, bytes]], body: bytes | None, started: float
) -> tuple[int, bytes, str, str]:
    """`handle_predict` for a coroutine: return (status, payload, version, request id)."""
    fut: asyncio.Future[tuple[int, bytes, str, str]] = asyncio.get_running_loop().create_future()

    def respond(status: int, payload: bytes, version: str, rid: str) -> None:
        if not fut.done():
            fut.set_result((status, payload, version, rid))

    handle_predict(state, headers, body, started, respond)
    return await fut


async def _read_body(receive: Receive, max_bytes: int) -> tuple[bool, bytes | None]:
    """(client still there, body or None if it passed max_bytes); reading stops at the limit."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False, None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            return True, None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return True, b"".join(chunks)


def _predict_headers(headers: list[tuple[bytes, bytes]]) -> tuple[str, str | None, bytes | None, bool]:
    """(content type, declared length, X-Request-Id, is a shadow copy) from one pass over the headers."""
    ctype, declared, rid_header, mirrored = "", None, None, False
    for name, value in headers:
        if name == b"content-type":
            ctype = value.decode("latin-1")
        elif name == b"content-length":
            declared = value.decode("latin-1")
        elif name == b"x-request-id":
            rid_header = value
        elif name == SHADOW_HEADER:
            mirrored = True  # a copy from the champion: counted here, not captured, not copied on
    return ctype, declared, rid_header, mirrored


def _refused_by_headers(headers: list[tuple[bytes, bytes]], max_bytes: int) -> bool:
    """True if the content type or the declared length alone means a 4xx (no need to read the body)."""
    ctype, declared, _, _ = _predict_headers(headers)
    try:
        _check_body_headers(ctype, declared, max_bytes)
    except BadRequest:
        return True
    return False


def _response_headers(payload: bytes, version: str, rid: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"x-model-version", version.encode()),
        (b"x-request-id", rid.encode("latin-1", "replace")),
    ]


# -- metrics / header middleware ------------------------------------------------------------------------
_QUIET_PATHS = {"/health", "/ready", "/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"}

# Request ids for requests that bring none: a random per-process prefix and a counter. Unique like a
# uuid4 (48 random bits tell processes apart, the counter tells requests apart) at a tenth of its cost.
_RID_PREFIX = os.urandom(6).hex()
_rid_counter = itertools.count()


def new_request_id() -> str:
    return f"{_RID_PREFIX}{next(_rid_counter):012x}"


def request_id(header: bytes | None) -> str:
    """The client's X-Request-Id (its first 128 bytes; the HTTP parser has already refused control
    characters, so it can be echoed as it came), or a new one."""
    return header[:128].decode("latin-1") if header else new_request_id()


class ServingMiddleware:
    """Add X-Model-Version and X-Request-Id to every response; time and count requests for EMF.

    Pure ASGI (not BaseHTTPMiddleware), because that wrapper costs a task and a stream per request, and the
    outermost layer (create_app returns it wrapped around FastAPI), so a POST /predict that reaches the
    ASGI app goes straight to `handle_predict` without passing FastAPI's routing and middleware. (Most
    never reach it: the HTTP protocol answers them, see model/serving/http_protocol.py.)
    """

    def __init__(self, app: ASGIApp, state: ServingState):
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/predict" and scope["method"] == "POST":
            await self._predict(scope, receive, send)
            return
        start = time.perf_counter()
        state = self.state
        rid = request_id(next((v for k, v in scope.get("headers", ()) if k == b"x-request-id"), None))
        scope.setdefault("state", {})["request_id"] = rid
        status = 0  # stays 0 if the client left before an answer started: not counted as a server error
        version_seen = state.version

        async def _send(message: Message) -> None:
            nonlocal status, version_seen
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                names = {h[0].lower() for h in headers}
                if b"x-model-version" not in names:
                    headers.append((b"x-model-version", state.version.encode()))
                else:
                    version_seen = next(v.decode() for k, v in headers if k.lower() == b"x-model-version")
                headers.append((b"x-request-id", scope["state"]["request_id"].encode("latin-1", "replace")))
                message["headers"] = headers
            await send(message)

        state.in_flight += 1
        try:
            await self.app(scope, receive, _send)
        except Exception:
            status = status or 500  # the outer error middleware answers 500; count it here
            raise
        finally:
            state.in_flight -= 1
            # Probes are not traffic: /ready answers 503 by design while loading or draining.
            if scope["path"] not in _QUIET_PATHS and status:
                state.metrics.record_request(version_seen, status, (time.perf_counter() - start) * 1000.0)
            if status >= 500 and scope["path"] != "/ready":
                log.error("server error", extra={"path": scope["path"], "status": status})

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        """POST /predict on ASGI: what the protocol's fast path leaves to uvicorn (see handle_predict)."""
        started = time.perf_counter()
        max_bytes = self.state.settings.max_body_bytes
        # When the headers alone mean a 4xx, answer before reading (handle_predict checks them first): a
        # client that sent `Expect: 100-continue` gets its 415/413 instead of a "100 Continue" and an upload.
        body: bytes | None = b""
        if not _refused_by_headers(scope["headers"], max_bytes):
            present, body = await _read_body(receive, max_bytes)
            if not present:  # the client left before sending its body: nothing to answer or count
                return
        status, payload, version, rid = await predict_once(self.state, scope["headers"], body, started)
        await send(
            {"type": "http.response.start", "status": status, "headers": _response_headers(payload, version, rid)}
        )
        await send({"type": "http.response.body", "body": payload})


# -- the app --------------------------------------------------------------------------------------------
def create_app(settings: ServingSettings | None = None, state: ServingState | None = None) -> ServingMiddleware:
    """The ASGI app uvicorn serves: ServingMiddleware (with the /predict fast path) around the FastAPI app."""
    settings = settings or ServingSettings.from_env()
    state = state or ServingState(settings)
    background: list[asyncio.Task[Any]] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.batcher = MicroBatcher(
            state.model_ref,
            settings.batch_max_rows,
            settings.batch_wait_ms / 1000.0,
            settings.batch_in_thread,
            on_batch=state.record_batch,
        )
        state.batcher.start()
        if state.capture is not None:
            state.capture.start()
        if state.shadow is not None:
            state.shadow.start()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, lambda: background.append(loop.create_task(state.reload())))
        background.append(loop.create_task(state.load_initial()))
        background.append(loop.create_task(_emit_metrics(state, settings.metrics_interval_s)))
        try:
            yield
        finally:
            # uvicorn has stopped accepting and has finished (or timed out) in-flight requests.
            state.shutting_down = True
            await state.batcher.close()
            for task in background:
                task.cancel()
            if state.capture is not None:
                await asyncio.to_thread(state.capture.close, max(1.0, settings.shutdown_timeout_s / 2))
            if state.shadow is not None:
                await asyncio.to_thread(state.shadow.stop)
            state.metrics.flush()
            stats = state.batcher.stats
            log.info(
                "shutdown complete",
                extra={
                    "batches": stats.batches,
                    "rows": stats.rows,
                    "mean_batch_rows": round(stats.rows / stats.batches, 1) if stats.batches else 0,
                    "max_batch_rows": stats.max_rows_seen,
                },
            )

    app = FastAPI(
        title="esteira intent classifier",
        version="1.0",
        description=(
            "Classifies banking customer messages into BANKING77 intents. Every response carries the "
            "model version in the body and the `X-Model-Version` header."
        ),
        lifespan=lifespan,
    )
    app.state.serving = state

    @app.exception_handler(BadRequest)
    async def _bad_request(_: Request, exc: BadRequest) -> Response:
        return _error(exc.status, exc.error, exc.field, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query")) or "body"
        return _error(422, "invalid_request", field, str(first.get("msg", "invalid request")))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, None, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return _error(500, "internal_error", None, "internal error; see the service logs")

    def _unavailable() -> Response | None:
        if state.model is None:
            return _error(503, "model_not_ready", None, state.reason or "model not loaded")
        return None

    @app.get("/health", summary="Liveness: the process is up", responses={200: {"description": "alive"}})
    async def health() -> Response:
        return _json({"status": "ok", "model_version": state.version, "role": settings.role})

    @app.get(
        "/ready",
        summary="Readiness: the model is loaded and passed its self-test",
        responses={200: {"model": ReadyBody}, 503: {"model": ReadyBody}},
    )
    async def ready() -> Response:
        if state.shutting_down:
            return _json({"status": "shutting_down", "reason": "the service is shutting down"}, 503)
        if state.model is None:
            return _json({"status": state.status, "reason": state.reason, "model_uri": settings.model_uri}, 503)
        return _json({"status": "ready", "model_version": state.model.version, "model_uri": state.model.uri})

    @app.post(
        "/predict",
        summary="Classify one text or a batch",
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": _predict_schema(settings)}}}
        },
        responses={200: {"model": PredictResponse | BatchPredictResponse}, **_ERRORS},
    )
    async def predict(request: Request) -> Response:
        # Documentation: ServingMiddleware (or the HTTP protocol before it) answers POST /predict first.
        started = time.perf_counter()
        _, body = await _read_body(request.receive, settings.max_body_bytes)
        status, payload, version, rid = await predict_once(state, request.scope["headers"], body, started)
        return Response(payload, status, headers={"x-model-version": version, "x-request-id": rid})

    @app.post(
        "/explain",
        summary="Which words pushed the text toward the predicted (or given) intent",
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": _explain_schema(settings)}}}
        },
        responses={200: {"model": ExplainResponse}, **_ERRORS},
    )
    async def explain(request: Request) -> Response:
        text, top_n, intent = parse_explain(await _read_json(request, settings.max_body_bytes), settings)
        if (busy := _unavailable()) is not None:
            return busy
        model = state.model
        assert model is not None
        if intent is not None and intent not in set(model.classifier.classes_):
            raise BadRequest(422, "unknown_intent", "intent", f"unknown intent {intent[:80]!r}")
        result = model.classifier.explain(text, top_n=top_n, intent=intent)
        body = {"model_version": model.version, "request_id": request.scope["state"]["request_id"], **result}
        return _json(body, headers={"x-model-version": model.version})

    return ServingMiddleware(app, state)


async def _emit_metrics(state: ServingState, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            state.metrics.flush()
        except Exception:  # metrics must never take the service down
            log.exception("metrics flush failed")
