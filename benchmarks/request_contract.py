"""POST /predict's request contract in one schema: what msgspec and pydantic v2 cost per request against the
hand-written validator model/serving/app.py had (kept as the baseline in benchmarks/_previous_serving_contract.py),
and whether they give the same decisions. `shipped` is what the service runs now (model/serving/contract.py,
msgspec-strip with the fallback, and its error mapping).

The contract (the previous validator's `parse_predict`, limits from ServingSettings' defaults): a JSON object with
exactly one of `text` (a string) or `texts` (an array of 1..max_batch strings), each string 1..max_text_chars
characters and not only whitespace, an optional integer `top_k` in 1..max_top_k (default default_top_k), no
other fields; malformed JSON or non-UTF-8 is a 400, a contract violation a 422 naming the field.

Contenders, each with the same constraints:
  current           the previous validator: orjson (stdlib json behind it) + `parse_predict`; response: dict +
                    `encode_json` (orjson)
  shipped           model/serving/contract.py: Contract.parse_predict; response: contract.prediction_answer
  msgspec           msgspec.Struct + msgspec.json.Decoder (pattern `\\S` checked by Python's `re` per string);
                    response: Structs + msgspec.json.Encoder
  msgspec-strip     the same, "not only whitespace" as str.strip() in __post_init__ (pattern documented only)
  pydantic          BaseModel.model_validate_json (strict, extra=forbid, regex_engine=python-re);
                    response: app.py's own response models, built then dumped with TypeAdapter.dump_json
  pydantic-rust     the same with pydantic's default engine (Rust `regex`) and a pattern matching Python's \\s
  pydantic-td       TypeAdapter(TypedDict).validate_json (Rust regex; no model instance);
                    response: app.py's dict dumped by TypeAdapter(TypedDict).dump_json (no validation)
Agreement only: pd-rust-naive (`\\S` under Rust regex), msgspec+fb / pd-rust+fb (on a JSON error, fall back
to app.py's decode_json and validate the parsed document: msgspec.convert / model_validate).

Each cell is the median over repeats (round-robin across contenders, so background load hits all alike) of
the mean time per call over a loop of ~target-ms; GC stays on, as in the service. Nothing is written.

Run: `.venv/bin/python -m benchmarks.request_contract [--repeats 7] [--target-ms 60] [--verbose]` (~30 s).
"""

import argparse
import csv
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, NotRequired, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
import orjson  # noqa: E402
import pydantic  # noqa: E402
from pydantic import (  # noqa: E402
    MISSING,
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)
from typing_extensions import TypedDict  # noqa: E402  (pydantic needs it on Python < 3.12)

from benchmarks import _previous_serving_contract as serving  # noqa: E402
from benchmarks._previous_serving_contract import BadRequest, decode_json, encode_json, parse_predict  # noqa: E402
from model.classifier import Prediction  # noqa: E402
from model.serving import contract as shipped  # noqa: E402
from model.serving.settings import ServingSettings  # noqa: E402

S = ServingSettings()  # the defaults: max_text_chars 1000, max_batch 64, max_top_k 10, default_top_k 3
MAX_CHARS, MAX_BATCH, MAX_TOP_K, DEFAULT_TOP_K = S.max_text_chars, S.max_batch, S.max_top_k, S.default_top_k
NOT_BLANK = r"\S"  # `value.strip()` is non-empty <=> the string holds a non-whitespace character (Python's \s)
# The same set for Rust's `regex`, whose \s is Unicode White_Space: Python's str.isspace() adds U+001C..U+001F
# (checked over every code point). Also closer to what ECMA-262 clients read from the schema.
RUST_NOT_BLANK = r"[^\s\x1c-\x1f]"
ONE_OF: list[Any] = [{"required": ["text"]}, {"required": ["texts"]}]

Parsed = tuple[list[str], bool, int]  # (texts, is_batch, top_k), as parse_predict returns it


def _one_of(has_text: bool, has_texts: bool) -> None:
    """The cross-field rule neither library states declaratively; raises the service's own BadRequest
    (both libraries let a non-ValueError from a post-validation hook propagate unchanged)."""
    if has_text and has_texts:
        raise BadRequest(422, "conflicting_fields", "texts", "send either text or texts, not both")
    if not has_text and not has_texts:
        raise BadRequest(422, "missing_field", "text", "field required: text (one text) or texts (a batch)")


# -- msgspec ----------------------------------------------------------------------------------------------
MsText = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CHARS, pattern=NOT_BLANK)]
MsTextNoRe = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CHARS, extra_json_schema={"pattern": NOT_BLANK})]


class MsPredictRequest(msgspec.Struct, forbid_unknown_fields=True):
    """UNSET (not None) for the absent field, so an explicit `null` is still a type error."""

    text: MsText | msgspec.UnsetType = msgspec.UNSET
    texts: Annotated[list[MsText], msgspec.Meta(min_length=1, max_length=MAX_BATCH)] | msgspec.UnsetType = msgspec.UNSET
    top_k: Annotated[int, msgspec.Meta(ge=1, le=MAX_TOP_K)] = DEFAULT_TOP_K

    def __post_init__(self) -> None:
        _one_of(self.text is not msgspec.UNSET, self.texts is not msgspec.UNSET)


class MsExplainRequest(msgspec.Struct, forbid_unknown_fields=True):  # for the `required` schema check only
    text: MsText
    top_n: Annotated[int, msgspec.Meta(ge=1, le=50)] = 8
    intent: str | None = None


class MsIntent(msgspec.Struct):
    intent: str
    confidence: float


class MsPrediction(msgspec.Struct):
    intent: str
    confidence: Annotated[float, msgspec.Meta(ge=0, le=1)]
    top_k: list[MsIntent]


class MsPredictResponse(msgspec.Struct):
    model_version: str
    request_id: str
    intent: str
    confidence: Annotated[float, msgspec.Meta(ge=0, le=1)]
    top_k: list[MsIntent]


class MsBatchPredictResponse(msgspec.Struct):
    model_version: str
    request_id: str
    predictions: list[MsPrediction]


MS_DECODER = msgspec.json.Decoder(MsPredictRequest)
MS_ENCODER = msgspec.json.Encoder()


def ms_parse(raw: bytes) -> Parsed:
    req = MS_DECODER.decode(raw)
    if isinstance(req.text, str):
        return [req.text], False, req.top_k
    return cast(list[str], req.texts), True, req.top_k


class MsPredictRequestStrip(msgspec.Struct, forbid_unknown_fields=True):
    """As MsPredictRequest, but "not only whitespace" is str.strip() in __post_init__ (the schema still
    documents the pattern) instead of msgspec calling Python's `re` per string; keeps app.py's error code."""

    text: MsTextNoRe | msgspec.UnsetType = msgspec.UNSET
    texts: Annotated[list[MsTextNoRe], msgspec.Meta(min_length=1, max_length=MAX_BATCH)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    top_k: Annotated[int, msgspec.Meta(ge=1, le=MAX_TOP_K)] = DEFAULT_TOP_K

    def __post_init__(self) -> None:
        _one_of(self.text is not msgspec.UNSET, self.texts is not msgspec.UNSET)
        if isinstance(self.text, str):
            if not self.text.strip():
                raise BadRequest(422, "empty_text", "text", "text is empty or only whitespace")
        elif isinstance(self.texts, list):
            for i, t in enumerate(self.texts):
                if not t.strip():
                    raise BadRequest(422, "empty_text", f"texts[{i}]", f"texts[{i}] is empty or only whitespace")


MS_STRIP_DECODER = msgspec.json.Decoder(MsPredictRequestStrip)


def ms_strip_parse(raw: bytes) -> Parsed:
    req = MS_STRIP_DECODER.decode(raw)
    if isinstance(req.text, str):
        return [req.text], False, req.top_k
    return cast(list[str], req.texts), True, req.top_k


def ms_fallback_parse(raw: bytes) -> Parsed:
    """msgspec, and for a body it cannot parse, app.py's decode_json (orjson, then the standard library:
    lone surrogates, NaN, its 400 messages) followed by msgspec.convert of the parsed document."""
    try:
        return ms_parse(raw)
    except msgspec.ValidationError:
        raise
    except msgspec.DecodeError:
        req = msgspec.convert(decode_json(raw), MsPredictRequest)
    if isinstance(req.text, str):
        return [req.text], False, req.top_k
    return cast(list[str], req.texts), True, req.top_k


def ms_encode(texts: list[str], is_batch: bool, top_k: int, version: str, preds: list[Prediction], rid: str) -> bytes:
    items = [MsPrediction(p.intent, p.confidence, [MsIntent(i, c) for i, c in p.top_k[:top_k]]) for p in preds]
    if is_batch:
        return MS_ENCODER.encode(MsBatchPredictResponse(version, rid, items))
    one = items[0]
    return MS_ENCODER.encode(MsPredictResponse(version, rid, one.intent, one.confidence, one.top_k))


# -- pydantic v2 ------------------------------------------------------------------------------------------
PdText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CHARS, pattern=NOT_BLANK)]
PdTexts = Annotated[list[PdText], Field(min_length=1, max_length=MAX_BATCH)]
PdTopK = Annotated[int, Field(ge=1, le=MAX_TOP_K)]
_PD_CONFIG = ConfigDict(extra="forbid", strict=True, json_schema_extra={"oneOf": ONE_OF})


class PdPredictRequest(BaseModel):
    """MISSING (not None) for the absent field: an explicit `null` stays a type error and the schema
    does not advertise `null`."""

    model_config = ConfigDict(**_PD_CONFIG, regex_engine="python-re")  # Python's \s, as str.strip()

    text: PdText | MISSING = MISSING
    texts: PdTexts | MISSING = MISSING
    top_k: PdTopK = DEFAULT_TOP_K

    @model_validator(mode="after")
    def _exactly_one(self) -> "PdPredictRequest":
        _one_of(self.text is not MISSING, self.texts is not MISSING)
        return self


PdTextRust = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CHARS, pattern=RUST_NOT_BLANK)]
PdTextsRust = Annotated[list[PdTextRust], Field(min_length=1, max_length=MAX_BATCH)]


class PdPredictRequestRust(BaseModel):
    """pydantic's default regex engine (Rust `regex`, no call into Python per string), Python's \\s set."""

    model_config = ConfigDict(**_PD_CONFIG, regex_engine="rust-regex")

    text: PdTextRust | MISSING = MISSING
    texts: PdTextsRust | MISSING = MISSING
    top_k: PdTopK = DEFAULT_TOP_K

    @model_validator(mode="after")
    def _exactly_one(self) -> "PdPredictRequestRust":
        _one_of(self.text is not MISSING, self.texts is not MISSING)
        return self


class PdPredictRequestNaive(PdPredictRequest):
    """The tempting one: pattern \\S under pydantic's default engine (its \\s misses U+001C..U+001F)."""

    model_config = ConfigDict(**_PD_CONFIG, regex_engine="rust-regex")


class PdExplainRequest(BaseModel):  # for the `required` schema check only
    model_config = ConfigDict(extra="forbid", strict=True, regex_engine="python-re")

    text: PdText
    top_n: Annotated[int, Field(ge=1, le=50)] = 8
    intent: str | None = None


class PdPredictDict(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid", strict=True, regex_engine="rust-regex")  # type: ignore[misc]

    text: NotRequired[PdTextRust]
    texts: NotRequired[PdTextsRust]
    top_k: NotRequired[PdTopK]


def _td_exactly_one(doc: PdPredictDict) -> PdPredictDict:
    _one_of("text" in doc, "texts" in doc)
    return doc


PD_TD_ADAPTER: TypeAdapter[PdPredictDict] = TypeAdapter(Annotated[PdPredictDict, AfterValidator(_td_exactly_one)])


def _pd_normal(text: object, texts: object, top_k: int) -> Parsed:
    if isinstance(text, str):
        return [text], False, top_k
    return cast(list[str], texts), True, top_k


def pd_parse(raw: bytes) -> Parsed:
    req = PdPredictRequest.model_validate_json(raw)
    return _pd_normal(req.text, req.texts, req.top_k)


def pd_rust_parse(raw: bytes) -> Parsed:
    req = PdPredictRequestRust.model_validate_json(raw)
    return _pd_normal(req.text, req.texts, req.top_k)


def pd_naive_parse(raw: bytes) -> Parsed:
    req = PdPredictRequestNaive.model_validate_json(raw)
    return _pd_normal(req.text, req.texts, req.top_k)


def pd_fallback_parse(raw: bytes) -> Parsed:
    """pydantic-rust, and for a body its JSON parser refuses, decode_json + model_validate (strict)."""
    try:
        return pd_rust_parse(raw)
    except pydantic.ValidationError as exc:
        if exc.errors()[0]["type"] != "json_invalid":
            raise
    req = PdPredictRequestRust.model_validate(decode_json(raw))
    return _pd_normal(req.text, req.texts, req.top_k)


def pd_td_parse(raw: bytes) -> Parsed:
    doc = PD_TD_ADAPTER.validate_json(raw)
    return _pd_normal(doc.get("text"), doc.get("texts"), doc.get("top_k", DEFAULT_TOP_K))


# Responses: app.py's own documentation models (serving.PredictResponse & co.), now built and dumped.
PD_ONE = TypeAdapter(serving.PredictResponse)
PD_BATCH = TypeAdapter(serving.BatchPredictResponse)


def pd_encode(texts: list[str], is_batch: bool, top_k: int, version: str, preds: list[Prediction], rid: str) -> bytes:
    items = [
        serving.PredictionBody(
            intent=p.intent,
            confidence=p.confidence,
            top_k=[serving.Intent(intent=i, confidence=c) for i, c in p.top_k[:top_k]],
        )
        for p in preds
    ]
    if is_batch:
        return PD_BATCH.dump_json(
            serving.BatchPredictResponse(model_version=version, request_id=rid, predictions=items)
        )
    one = items[0]
    return PD_ONE.dump_json(
        serving.PredictResponse(
            model_version=version, request_id=rid, intent=one.intent, confidence=one.confidence, top_k=one.top_k
        )
    )


class TdIntent(TypedDict):
    intent: str
    confidence: float


class TdPrediction(TypedDict):
    intent: str
    confidence: Annotated[float, Field(ge=0, le=1)]
    top_k: list[TdIntent]


class TdPredictResponse(TdPrediction):
    model_version: str
    request_id: str


class TdBatchPredictResponse(TypedDict):
    model_version: str
    request_id: str
    predictions: list[TdPrediction]


TD_ONE = TypeAdapter(TdPredictResponse)
TD_BATCH = TypeAdapter(TdBatchPredictResponse)


def td_encode(texts: list[str], is_batch: bool, top_k: int, version: str, preds: list[Prediction], rid: str) -> bytes:
    body = serving._prediction_body(_NO_SIDE_EFFECTS, texts, is_batch, top_k, version, preds, rid, False)
    return TD_BATCH.dump_json(cast(Any, body)) if is_batch else TD_ONE.dump_json(cast(Any, body))


# -- current ----------------------------------------------------------------------------------------------
_NO_SIDE_EFFECTS = cast(Any, SimpleNamespace(shadow=None, capture=None))  # no shadow mirror, no capture


def current_parse(raw: bytes) -> Parsed:
    return parse_predict(decode_json(raw), S)


def current_encode(
    texts: list[str], is_batch: bool, top_k: int, version: str, preds: list[Prediction], rid: str
) -> bytes:
    return encode_json(serving._prediction_body(_NO_SIDE_EFFECTS, texts, is_batch, top_k, version, preds, rid, False))


# -- shipped: what the service runs ---------------------------------------------------------------------
SHIPPED = shipped.Contract(S)


def shipped_parse(raw: bytes) -> Parsed:
    return SHIPPED.parse_predict(raw)


def shipped_encode(
    texts: list[str], is_batch: bool, top_k: int, version: str, preds: list[Prediction], rid: str
) -> bytes:
    return shipped.prediction_answer(version, rid, is_batch, preds, top_k)


# -- outcomes: what each validator decides, as (status, field or the parsed request) ----------------------
Outcome = tuple[int, object]  # (200, (texts, is_batch, top_k)) | (400 | 422, field)
_MS_PATH = re.compile(r" - at `\$(.*)`$")


def _field_from_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def outcome(parse: Callable[[bytes], Parsed], raw: bytes) -> Outcome:
    try:
        texts, is_batch, top_k = parse(raw)
        return 200, (tuple(texts), is_batch, top_k)
    except (BadRequest, shipped.BadRequest) as exc:
        return exc.status, exc.field
    except msgspec.ValidationError as exc:  # before DecodeError: ValidationError is a subclass
        m = _MS_PATH.search(str(exc))
        unknown = re.match(r"Object contains unknown field `(.*)`", str(exc))
        field = m.group(1).lstrip(".") if m and m.group(1) else (unknown.group(1) if unknown else "body")
        return 422, field
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec 0.22 lets a non-UTF-8 body's error through
        return 400, "body"
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            return 400, "body"
        return 422, _field_from_loc(tuple(first["loc"]))


def _j(doc: object) -> bytes:
    return orjson.dumps(doc)


def cases() -> list[tuple[str, bytes]]:
    """Bodies at and around every limit; (name, raw body)."""
    ok, long_ok, too_long = "where is my card", "a" * MAX_CHARS, "a" * (MAX_CHARS + 1)
    emoji_ok, emoji_long = "\U0001f600" * MAX_CHARS, "\U0001f600" * (MAX_CHARS + 1)
    return [
        # accepted by the current validator
        ("one text", _j({"text": ok})),
        ("one text, top_k 1", _j({"text": ok, "top_k": 1})),
        (f"one text, top_k {MAX_TOP_K}", _j({"text": ok, "top_k": MAX_TOP_K})),
        ("top_k before text", b'{"top_k":5,"text":"x"}'),
        ("batch of 1", _j({"texts": [ok]})),
        (f"batch of {MAX_BATCH} (limit)", _j({"texts": [ok] * MAX_BATCH})),
        (f"text of {MAX_CHARS} chars (limit)", _j({"text": long_ok})),
        (f"text of {MAX_CHARS} emoji (code points)", _j({"text": emoji_ok})),
        ("emoji as escaped surrogate pair", b'{"text":"\\ud83d\\ude00"}'),
        ("padded text", _j({"text": "  hi  "})),
        ("zero-width space (not whitespace)", _j({"text": "\u200b"})),
        ("pretty-printed body", b'{\n  "text" : "hi",\n  "top_k" : 2\n}\n'),
        ("duplicate key, last wins", b'{"text":"a","text":"b"}'),
        ("lone surrogate escape", b'{"text":"\\ud800 card"}'),
        # rejected: not JSON (400)
        ("not JSON", b"text=hello"),
        ("empty body", b""),
        ("whitespace body", b"  \n"),
        ("not UTF-8", b'{"text":"\xff"}'),
        ("UTF-8 BOM", b'\xef\xbb\xbf{"text":"hi"}'),
        ("trailing garbage", b'{"text":"hi"} x'),
        ("nested 5000 deep", b"[" * 5000 + b"]" * 5000),
        # rejected: contract (422)
        ("array body", b'["hi"]'),
        ("string body", b'"hi"'),
        ("null body", b"null"),
        ("empty object", b"{}"),
        ("text and texts", _j({"text": ok, "texts": [ok]})),
        ("text null", b'{"text":null}'),
        ("text number", b'{"text":5}'),
        ("text array", _j({"text": [ok]})),
        ("text empty", _j({"text": ""})),
        ("text spaces", _j({"text": "   "})),
        ("text tab/newline", _j({"text": "\t\n"})),
        ("text NBSP", _j({"text": "\u00a0"})),
        ("text ideographic space", _j({"text": "\u3000"})),
        ("text U+001C (Python whitespace, not Unicode White_Space)", _j({"text": "\x1c"})),
        ("text U+0085 NEL", _j({"text": "\x85"})),
        (f"text of {MAX_CHARS + 1} chars", _j({"text": too_long})),
        (f"text of {MAX_CHARS + 1} emoji", _j({"text": emoji_long})),
        ("texts string", _j({"texts": ok})),
        ("texts null", b'{"texts":null}'),
        ("texts empty", _j({"texts": []})),
        (f"texts of {MAX_BATCH + 1}", _j({"texts": [ok] * (MAX_BATCH + 1)})),
        ("texts with a number", _j({"texts": [ok, 1]})),
        ("texts with an empty item", _j({"texts": [ok, ""]})),
        ("texts with a too-long item", _j({"texts": [ok, too_long]})),
        ("texts with NaN", b'{"texts":[NaN]}'),
        ("top_k 0", _j({"text": ok, "top_k": 0})),
        (f"top_k {MAX_TOP_K + 1}", _j({"text": ok, "top_k": MAX_TOP_K + 1})),
        ("top_k -1", _j({"text": ok, "top_k": -1})),
        ("top_k -0", b'{"text":"x","top_k":-0}'),
        ('top_k "3"', _j({"text": ok, "top_k": "3"})),
        ("top_k 3.0", b'{"text":"x","top_k":3.0}'),
        ("top_k 3e0", b'{"text":"x","top_k":3e0}'),
        ("top_k true", _j({"text": ok, "top_k": True})),
        ("top_k null", _j({"text": ok, "top_k": None})),
        ("top_k 10**23", b'{"text":"x","top_k":100000000000000000000000}'),
        ("top_k NaN", b'{"text":"x","top_k":NaN}'),
        ("unknown field", _j({"text": ok, "foo": 1})),
        ("unknown field null", _j({"text": ok, "extra": None})),
        ("wrong-case field", _j({"Text": ok})),
        ("unknown field and bad text", b'{"text":5,"foo":1}'),
        ("bad top_k and bad text", b'{"text":"","top_k":0}'),
    ]


Encode = Callable[[list[str], bool, int, str, list[Prediction], str], bytes]


@dataclass
class Stack:
    name: str
    parse: Callable[[bytes], Parsed]
    encode: Encode | None  # None: agreement check only (same cost as its timed sibling on valid bodies)


STACKS = [
    Stack("current", current_parse, current_encode),
    Stack("shipped", shipped_parse, shipped_encode),
    Stack("msgspec", ms_parse, ms_encode),
    Stack("msgspec-strip", ms_strip_parse, ms_encode),
    Stack("pydantic", pd_parse, pd_encode),
    Stack("pydantic-rust", pd_rust_parse, pd_encode),
    Stack("pydantic-td", pd_td_parse, td_encode),
    Stack("pd-rust-naive", pd_naive_parse, None),
    Stack("msgspec+fb", ms_fallback_parse, None),
    Stack("pd-rust+fb", pd_fallback_parse, None),
]
TIMED = [s for s in STACKS if s.encode is not None]


def agreement(verbose: bool) -> None:
    names = [s.name for s in STACKS]
    rows = cases()
    decision_diff: dict[str, list[str]] = {n: [] for n in names[1:]}
    status_diff: dict[str, list[str]] = {n: [] for n in names[1:]}
    field_diff: dict[str, list[str]] = {n: [] for n in names[1:]}
    print(f"\n## agreement on {len(rows)} bodies (200 = accepted; 4xx field)")
    if verbose:
        print(f"{'body':40s} " + " ".join(f"{n[:13]:>13s}" for n in names))
    for label, raw in rows:
        got = [outcome(s.parse, raw) for s in STACKS]
        base = got[0]
        for name, o in zip(names[1:], got[1:], strict=True):
            if (o[0] == 200) != (base[0] == 200) or (o[0] == 200 and o[1] != base[1]):
                decision_diff[name].append(label)
            elif o[0] != base[0]:
                status_diff[name].append(f"{label} ({base[0]} vs {o[0]})")
            elif o[1] != base[1]:
                field_diff[name].append(f"{label} ({base[1]} vs {o[1]})")
        if verbose:
            cells = [f"{o[0]}" if o[0] == 200 else f"{o[0]} {o[1]}" for o in got]
            print(f"{label[:40]:40s} " + " ".join(f"{c[:13]:>13s}" for c in cells))
    for name in names[1:]:
        print(
            f"- {name}: {len(decision_diff[name])} accept/reject disagreements, {len(status_diff[name])} status "
            f"(400 vs 422) differences, {len(field_diff[name])} field-name differences"
        )
        for label in decision_diff[name]:
            print(f"    DECISION  {label}")
        for label in status_diff[name]:
            print(f"    status    {label}")
        for label in field_diff[name]:
            print(f"    field     {label}")


def message(parse: Callable[[bytes], Parsed], raw: bytes) -> str:
    """What a client would read: app.py's code and message, or the library's own error text."""
    try:
        parse(raw)
        return "(accepted)"
    except (BadRequest, shipped.BadRequest) as exc:
        return f"{exc.error}: {exc.message}"
    except msgspec.DecodeError as exc:  # ValidationError included
        return str(exc)
    except pydantic.ValidationError as exc:
        e = exc.errors()[0]
        return f"{e['type']} {_field_from_loc(tuple(e['loc']))}: {e['msg']}"


def messages() -> None:
    wanted = [
        "text of 1001 chars",
        "texts with an empty item",
        "texts of 65",
        "unknown field",
        "top_k 11",
        "text null",
        "empty object",
        "not JSON",
    ]
    bodies = dict(cases())
    print("\n## error text a client gets (current vs the libraries' own, before any mapping)")
    for label in wanted:
        print(f"- {label}")
        for st in (STACKS[0], STACKS[1], STACKS[4]):
            print(f"    {st.name:14s} {message(st.parse, bodies[label])[:110]}")


# -- JSON Schema ------------------------------------------------------------------------------------------
def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """msgspec wraps a Struct as {"$ref": ..., "$defs": {...}}: return the object schema itself."""
    if "$ref" in schema:
        siblings = {k: v for k, v in schema.items() if k not in ("$ref", "$defs")}  # Meta(extra_json_schema)
        return {**schema["$defs"][schema["$ref"].rsplit("/", 1)[-1]], **siblings}
    return schema


def schema_report() -> None:
    ms_predict = _inline(
        msgspec.json.schema(Annotated[MsPredictRequest, msgspec.Meta(extra_json_schema={"oneOf": ONE_OF})])
    )
    ms_explain = _inline(msgspec.json.schema(MsExplainRequest))
    ms_strip = _inline(
        msgspec.json.schema(Annotated[MsPredictRequestStrip, msgspec.Meta(extra_json_schema={"oneOf": ONE_OF})])
    )
    pd_predict = PdPredictRequestRust.model_json_schema()
    pd_explain = PdExplainRequest.model_json_schema()
    td_predict = PD_TD_ADAPTER.json_schema()
    hand = serving._predict_schema(S)

    def checks(predict: dict[str, Any], explain: dict[str, Any]) -> dict[str, object]:
        p = predict.get("properties", {})
        text, texts, top_k = p.get("text", {}), p.get("texts", {}), p.get("top_k", {})
        return {
            "text maxLength": text.get("maxLength") == MAX_CHARS,
            "text minLength+pattern": text.get("minLength") == 1 and text.get("pattern") in (NOT_BLANK, RUST_NOT_BLANK),
            "texts maxItems/minItems": texts.get("maxItems") == MAX_BATCH and texts.get("minItems") == 1,
            "item maxLength": texts.get("items", {}).get("maxLength") == MAX_CHARS,
            "top_k min/max/default": (top_k.get("minimum"), top_k.get("maximum"), top_k.get("default"))
            == (1, MAX_TOP_K, DEFAULT_TOP_K),
            "additionalProperties false": predict.get("additionalProperties") is False,
            "required (explain: text)": explain.get("required") == ["text"],
            "oneOf text|texts (via extra)": predict.get("oneOf") == ONE_OF,
            "no null advertised": "anyOf" not in text and "anyOf" not in texts,
            "required: [] (empty)": predict.get("required") == [],
            "extra keys vs app.py": sorted(set(predict) - set(hand)),
        }

    table = {
        "app.py hand-written": checks(hand, serving._explain_schema(S)),
        "msgspec.json.schema": checks(ms_predict, ms_explain),
        "msgspec (strip variant)": checks(ms_strip, ms_explain),
        "pydantic model_json_schema": checks(pd_predict, pd_explain),
        "pydantic TypeAdapter(TypedDict)": checks(td_predict, pd_explain),
    }
    keys = list(next(iter(table.values())))
    print("\n## JSON Schema: can each express the contract?")
    print(f"{'check':30s} " + " ".join(f"{k[:23]:>23s}" for k in table))
    for k in keys:
        print(f"{k:30s} " + " ".join(f"{str(v[k])[:23]:>23s}" for v in table.values()))


# -- timing -----------------------------------------------------------------------------------------------
def realistic_texts(n: int) -> list[str]:
    """BANKING77 test messages when the data is here (ESTEIRA_DATA_DIR), else a few look-alikes."""
    path = Path(os.environ.get("ESTEIRA_DATA_DIR", "/work/shared/data/banking77")) / "test.csv"
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as fh:
            texts = [row["text"] for _, row in zip(range(n * 50), csv.DictReader(fh), strict=False)][::50]
        if len(texts) == n:
            return texts
    base = [
        "I still have not received my new card",
        "Why was I charged a fee for withdrawing cash?",
        "my card payment was declined at the supermarket",
        "How do I top up with Apple Pay?",
        "The exchange rate on my transfer looks wrong, can you check?",
        "I think someone used my card without my permission",
    ]
    return [base[i % len(base)] for i in range(n)]


def fake_preds(texts: list[str], k: int) -> list[Prediction]:
    intents = ["card_arrival", "card_delivery_estimate", "lost_or_stolen_card", "declined_card_payment"]
    return [
        Prediction(
            intent=intents[0],
            confidence=0.8123456789,
            top_k=[(x, 0.8123456789 / (j + 1)) for j, x in enumerate(intents[:k])],
        )
        for _ in texts
    ]


def _loop(fn: Callable[[], object], n: int) -> int:
    t0 = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return time.perf_counter_ns() - t0


def measure(cells: dict[str, Callable[[], object]], repeats: int, target_ms: float) -> dict[str, float]:
    """Median over `repeats` of ns per call; loops sized to ~target_ms, contenders interleaved."""
    sizes: dict[str, int] = {}
    for key, fn in cells.items():
        n = 1
        while (took := _loop(fn, n)) < 10_000_000:  # grow to >= 10 ms to size the loop
            n *= 2
        sizes[key] = max(1, int(n * target_ms * 1e6 / took))
    samples: dict[str, list[float]] = {k: [] for k in cells}
    for _ in range(repeats):
        for key, fn in cells.items():
            samples[key].append(_loop(fn, sizes[key]) / sizes[key])
    return {k: statistics.median(v) for k, v in samples.items()}


def bench(repeats: int, target_ms: float) -> None:
    one_texts, batch_texts = realistic_texts(1), realistic_texts(32)
    bodies = {
        "1 text": orjson.dumps({"text": one_texts[0]}),
        "32 texts": orjson.dumps({"texts": batch_texts, "top_k": 3}),
    }
    bad = orjson.dumps({"texts": [*batch_texts[:31], "a" * (MAX_CHARS + 1)]})  # error path: last item too long
    work = {"1 text": (one_texts, False), "32 texts": (batch_texts, True)}
    cells: dict[str, Callable[[], object]] = {}
    for st in TIMED:
        assert st.encode is not None
        for label, raw in bodies.items():
            assert st.parse(raw) == current_parse(raw), (st.name, label)
            cells[f"{st.name}|decode {label}"] = partial(st.parse, raw)
        cells[f"{st.name}|reject 32nd too long"] = partial(outcome, st.parse, bad)
        for label, (texts, is_batch) in work.items():
            preds = fake_preds(texts, DEFAULT_TOP_K)
            args = (texts, is_batch, DEFAULT_TOP_K, "7", preds, "0f3c2a9e-req")
            assert orjson.loads(st.encode(*args)) == orjson.loads(current_encode(*args)), (st.name, label)
            cells[f"{st.name}|encode {label}"] = partial(st.encode, *args)
    started = time.perf_counter()
    res = measure(cells, repeats, target_ms)
    cols = ["decode 1 text", "decode 32 texts", "reject 32nd too long", "encode 1 text", "encode 32 texts"]
    print(f"\n## time per request, us (median of {repeats}; ratio vs current) [{time.perf_counter() - started:.0f} s]")
    print(f"{'stack':14s} " + " ".join(f"{c:>21s}" for c in cols) + f" {'total 1 text':>20s} {'total 32 texts':>20s}")
    for st in TIMED:
        vals = [res[f"{st.name}|{c}"] for c in cols]
        tot = [vals[0] + vals[3], vals[1] + vals[4]]
        base = [res[f"current|{c}"] for c in cols]
        btot = [base[0] + base[3], base[1] + base[4]]
        cells_txt = [f"{v / 1000:8.2f} ({v / b:4.2f}x)" for v, b in zip(vals + tot, base + btot, strict=True)]
        print(
            f"{st.name:14s} "
            + " ".join(f"{c:>21s}" for c in cells_txt[:5])
            + " "
            + " ".join(f"{c:>20s}" for c in cells_txt[5:])
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--target-ms", type=float, default=60.0, help="length of one timed loop")
    ap.add_argument("--verbose", action="store_true", help="print every body's outcome per validator")
    args = ap.parse_args()
    started = time.perf_counter()
    versions = {p: metadata.version(p) for p in ("msgspec", "pydantic", "pydantic-core", "orjson", "fastapi")}
    print(f"python {sys.version.split()[0]}; " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(
        f"cpus {os.cpu_count()}; load {os.getloadavg()[0]:.2f}; limits: text {MAX_CHARS} chars, batch "
        f"{MAX_BATCH}, top_k 1..{MAX_TOP_K} (default {DEFAULT_TOP_K})"
    )
    agreement(args.verbose)
    messages()
    schema_report()
    bench(args.repeats, args.target_ms)
    print(f"\nload {os.getloadavg()[0]:.2f}; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
