"""The service's HTTP contract: what a request may hold, what an answer holds, its headers and its errors.

Each body is defined once, as a msgspec Struct, and that one definition both validates and documents:
requests are decoded straight into their Struct (types, lengths, ranges, unknown fields), answers are
encoded from theirs, and /openapi.json is generated from the same Structs (`openapi_components`).
**To add a field to POST /predict**, add it to `Contract.__init__`'s `PredictRequest` (and, if it changes
the answer, to `Prediction` or `PredictResponse` below); the validator, the answer and the docs follow.

Why msgspec: measured per request against pydantic v2 and the hand-written validator it replaces
(benchmarks/request_contract.py), it was the cheapest at both (~0.6 us to decode one text, ~2 us to
encode its answer), and its JSON Schema states every limit the validator enforces. The limits come from
the settings (ESTEIRA_SERVING_MAX_TEXT_CHARS and friends), so the request Structs are built per service.

Every client error is a 4xx whose JSON names the field at fault (`texts[3]`, `top_k`, `body`, ...):
msgspec's messages have a fixed form ("Expected `str` of length <= 1000 - at `$.texts[3]`"), which
`_bad_request` turns into the service's error codes. What a schema cannot say is checked here too:
text that is only whitespace, and exactly one of `text` / `texts`.

Bodies msgspec's strict JSON parser refuses are parsed again by the standard library, which the API has
always followed: it accepts a lone surrogate escape ("\\ud800") or NaN (then a 422 names the field), and
explains a malformed body (a 400). An answer orjson cannot write (a lone surrogate echoed in an error) is
written by `json`, ASCII-escaped.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from typing import Annotated, Any

import msgspec
import orjson
from msgspec import UNSET, Meta, UnsetType

from model.serving.settings import ServingSettings

# -- headers ---------------------------------------------------------------------------------------------
MODEL_VERSION_HEADER = b"x-model-version"
REQUEST_ID_HEADER = b"x-request-id"
SHADOW_HEADER = b"x-esteira-shadow"  # set by model/serving/shadow.py on the copies it sends

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


def answer_headers(version: str, rid: str) -> list[tuple[bytes, bytes]]:
    """The headers every answer carries, on every path (the fast path, ASGI, the FastAPI routes)."""
    return [(MODEL_VERSION_HEADER, version.encode()), (REQUEST_ID_HEADER, rid.encode("latin-1", "replace"))]


def predict_headers(headers: list[tuple[bytes, bytes]]) -> tuple[str, str | None, bytes | None, bool]:
    """(content type, declared length, X-Request-Id, is a shadow copy) from one pass over the headers."""
    ctype, declared, rid_header, mirrored = "", None, None, False
    for name, value in headers:
        if name == b"content-type":
            ctype = value.decode("latin-1")
        elif name == b"content-length":
            declared = value.decode("latin-1")
        elif name == REQUEST_ID_HEADER:
            rid_header = value
        elif name == SHADOW_HEADER:
            mirrored = True  # a copy from the champion: counted here, not captured, not copied on
    return ctype, declared, rid_header, mirrored


# -- errors ----------------------------------------------------------------------------------------------
class BadRequest(Exception):
    """A client error with the offending field; becomes a JSON 4xx."""

    def __init__(self, status: int, error: str, field: str | None, message: str):
        super().__init__(message)
        self.status, self.error, self.field, self.message = status, error, field, message


def error_body(error: str, field: str | None, message: str) -> dict[str, Any]:
    return {"error": error, "field": field, "message": message}


def encode_json(body: dict[str, Any]) -> bytes:
    """A dict as JSON bytes: orjson, or the standard library for what orjson refuses (lone surrogates)."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, separators=(",", ":")).encode()


def check_body_headers(ctype: str, declared: str | None, max_bytes: int) -> None:
    """What the headers alone decide: a JSON content type (415) and a declared length within the limit (413)."""
    media = ctype.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise BadRequest(415, "unsupported_media_type", "content-type", f"expected application/json, got {ctype!r}")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BadRequest(413, "body_too_large", "body", f"body is {declared} bytes; the limit is {max_bytes}")


def too_large(max_bytes: int) -> BadRequest:
    return BadRequest(413, "body_too_large", "body", f"body exceeds the limit of {max_bytes} bytes")


def decode_json(raw: bytes) -> Any:
    """UTF-8 JSON by the standard library's grammar, or a 400 naming the body (RFC 8259: UTF-8 between systems)."""
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


# -- answers ---------------------------------------------------------------------------------------------
class Intent(msgspec.Struct, gc=False):
    intent: str
    confidence: float


class Prediction(msgspec.Struct, gc=False):
    intent: str
    confidence: Annotated[float, Meta(ge=0, le=1)]
    top_k: list[Intent]


class PredictResponse(Prediction, kw_only=True, gc=False):
    model_version: str
    request_id: str


class BatchPredictResponse(msgspec.Struct, gc=False):
    model_version: str
    request_id: str
    predictions: list[Prediction]


class Contribution(msgspec.Struct, gc=False):
    token: str
    weight: float


class ExplainResponse(msgspec.Struct, kw_only=True):
    model_version: str
    request_id: str
    intent: str
    confidence: float
    contributions: list[Contribution]


class ReadyBody(msgspec.Struct, omit_defaults=True):
    status: str
    model_version: str | None = None
    model_uri: str | None = None
    reason: str | None = None


class HealthBody(msgspec.Struct):
    status: str
    model_version: str
    role: str


class ErrorBody(msgspec.Struct):
    error: Annotated[str, Meta(description="machine-readable error code")]
    field: Annotated[str | None, Meta(description="the request field at fault (e.g. `texts[3]`), or `body`")]
    message: str


_encoder = msgspec.json.Encoder()
encode = _encoder.encode  # a Struct answer as JSON bytes


def prediction_answer(version: str, rid: str, is_batch: bool, preds: list[Any], top_k: int) -> bytes:
    """The 200 answer to POST /predict, from the model's predictions."""
    items = [Prediction(p.intent, p.confidence, [Intent(i, c) for i, c in p.top_k[:top_k]]) for p in preds]
    if is_batch:
        return encode(BatchPredictResponse(version, rid, items))
    one = items[0]
    return encode(PredictResponse(one.intent, one.confidence, one.top_k, model_version=version, request_id=rid))


# -- requests --------------------------------------------------------------------------------------------
EXPLAIN_MAX_TOP_N = 50
EXPLAIN_DEFAULT_TOP_N = 8


def _blank(field: str) -> BadRequest:
    return BadRequest(422, "empty_text", field, f"{field} is empty or only whitespace")


def _predict_post_init(self: Any) -> None:
    """What a schema cannot say: exactly one of text / texts, and no text that is only whitespace."""
    has_text, has_texts = self.text is not UNSET, self.texts is not UNSET
    if has_text and has_texts:
        raise BadRequest(422, "conflicting_fields", "texts", "send either text or texts, not both")
    if has_text:
        if not self.text.strip():
            raise _blank("text")
    elif not has_texts:
        raise BadRequest(422, "missing_field", "text", "field required: text (one text) or texts (a batch)")
    else:
        for i, text in enumerate(self.texts):
            if not text.strip():
                raise _blank(f"texts[{i}]")


def _explain_post_init(self: Any) -> None:
    if not self.text.strip():
        raise _blank("text")


class Contract:
    """The request Structs for one service's limits, their decoders, and their documentation."""

    def __init__(self, s: ServingSettings):
        text = Annotated[
            str,
            Meta(min_length=1, max_length=s.max_text_chars, extra_json_schema={"pattern": r"\S"}),
        ]
        self.PredictRequest = msgspec.defstruct(
            "PredictRequest",
            [
                ("text", Annotated[text | UnsetType, Meta(description="one text")], UNSET),
                (
                    "texts",
                    Annotated[list[text], Meta(min_length=1, max_length=s.max_batch, description="a batch")]
                    | UnsetType,
                    UNSET,
                ),
                (
                    "top_k",
                    Annotated[int, Meta(ge=1, le=s.max_top_k, description="intents per answer")],
                    s.default_top_k,
                ),
            ],
            kw_only=True,
            forbid_unknown_fields=True,
            gc=False,  # no reference cycles: the collector need not track a Struct per request
            namespace={"__post_init__": _predict_post_init},
        )
        self.ExplainRequest = msgspec.defstruct(
            "ExplainRequest",
            [
                ("text", text),
                ("top_n", Annotated[int, Meta(ge=1, le=EXPLAIN_MAX_TOP_N)], EXPLAIN_DEFAULT_TOP_N),
                (
                    "intent",
                    Annotated[str | None, Meta(description="explain this intent instead of the predicted one")],
                    None,
                ),
            ],
            kw_only=True,
            forbid_unknown_fields=True,
            namespace={"__post_init__": _explain_post_init},
        )
        self._predict = msgspec.json.Decoder(self.PredictRequest)
        self._explain = msgspec.json.Decoder(self.ExplainRequest)

    def parse_predict(self, raw: bytes) -> tuple[list[str], bool, int]:
        """(texts, is_batch, top_k) from a POST /predict body, or BadRequest naming the field."""
        req = self._decode(self._predict, self.PredictRequest, raw)
        if req.text is not UNSET:
            return [req.text], False, req.top_k
        return req.texts, True, req.top_k

    def parse_explain(self, raw: bytes) -> tuple[str, int, str | None]:
        req = self._decode(self._explain, self.ExplainRequest, raw)
        return req.text, req.top_n, req.intent

    @staticmethod
    def _decode(decoder: msgspec.json.Decoder[Any], kind: type, raw: bytes) -> Any:
        try:
            return decoder.decode(raw)
        except msgspec.ValidationError as exc:
            raise _bad_request(str(exc), kind.__struct_fields__) from None  # type: ignore[attr-defined]
        except (msgspec.DecodeError, UnicodeDecodeError):
            pass  # not JSON by msgspec's strict grammar: the standard library's decides (module doc)
        try:
            return msgspec.convert(decode_json(raw), kind)
        except msgspec.ValidationError as exc:
            raise _bad_request(str(exc), kind.__struct_fields__) from None  # type: ignore[attr-defined]

    def openapi_components(self) -> dict[str, Any]:
        """JSON Schemas of every body, for /openapi.json's components (refs `#/components/schemas/<Name>`)."""
        kinds = (
            self.PredictRequest,
            self.ExplainRequest,
            PredictResponse,
            BatchPredictResponse,
            ExplainResponse,
            ReadyBody,
            HealthBody,
            ErrorBody,
        )
        _, components = msgspec.json.schema_components(kinds, ref_template="#/components/schemas/{name}")
        components["PredictRequest"].update(
            description="Exactly one of `text` (one text) or `texts` (a batch).",
            oneOf=[{"required": ["text"]}, {"required": ["texts"]}],
            example={"text": "I still have not received my new card", "top_k": 3},
        )
        components["ExplainRequest"]["example"] = {"text": "my card payment was declined"}
        for schema in components.values():
            if schema.get("required") == []:
                del schema["required"]  # OpenAPI 3.0 readers want it absent rather than empty
        return components


# msgspec's ValidationError messages -> (error code, message) for the field at fault.
_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_KINDS: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"^Object contains unknown field `(?P<name>.*)`$", re.S), "unknown_field", "unknown field {name!r}"),
    (re.compile(r"^Object missing required field `(?P<name>.*)`$", re.S), "missing_field", "field required: {name}"),
    (re.compile(r"^Expected `str` of length >= 1$"), "empty_text", "{field} is empty or only whitespace"),
    (re.compile(r"^Expected `str` of length <= (?P<n>\d+)$"), "text_too_long", "{field} is longer than {n} characters"),
    (re.compile(r"^Expected `array` of length >= 1$"), "empty_batch", "{field} is empty"),
    (re.compile(r"^Expected `array` of length <= (?P<n>\d+)$"), "batch_too_large", "{field} has more than {n} items"),
    (re.compile(r"^Expected `int` (?P<op>[<>]=) (?P<n>-?\d+)$"), "out_of_range", "{field} must be {op} {n}"),
    (re.compile(r"^Number out of range$"), "out_of_range", "{field} is out of range"),
    (
        re.compile(r"^Expected `(?P<want>[^`]+)`, got `(?P<got>\w+)`$"),
        "invalid_type",
        "{field} must be {want}, got {got}",
    ),
]
_TYPE_NAMES = {"str": "a string", "int": "an integer", "array": "an array", "object": "a JSON object"}


def _bad_request(message: str, fields: tuple[str, ...]) -> BadRequest:
    match = _AT.match(message)
    what, path = (match["what"], match["path"] or "") if match else (message, "")
    field = path.lstrip(".") or "body"
    for pattern, code, template in _KINDS:
        m = pattern.match(what)
        if m is None:
            continue
        values = {**m.groupdict(), "field": field}
        if code in ("unknown_field", "missing_field"):
            field = values["field"] = m["name"]
        if "want" in values:
            values["want"] = _TYPE_NAMES.get(values["want"], values["want"])
        text = template.format(**values)
        if code == "unknown_field":
            text += f"; allowed: {sorted(fields)}"
        return BadRequest(422, code, field, text)
    return BadRequest(422, "invalid_request", field, what)
