"""The hand-written request validator and response models model/serving/app.py used until 2026-12-07,
kept unchanged as the baseline of benchmarks/request_contract.py (the service now uses
model/serving/contract.py). Not imported by the service.

The original module docstring follows.

The inference service: FastAPI routes over a micro-batched classifier, with EMF metrics and S3 capture.

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

import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from model.serving.settings import ServingSettings

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


def _prediction_body(
    state: Any,
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
