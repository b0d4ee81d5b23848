"""The predict core: one POST /predict from its headers and body to its answer, with no transport in it.

Validation (model/serving/contract.py), micro-batching, the shadow copy, capture and metrics all happen
here, once, whichever way the request arrived: the HTTP protocol's fast path
(model/serving/http_protocol.py), which runs no task per request, or the ASGI layer
(model/serving/asgi.py) for what that path leaves to uvicorn, or whenever the fast path is off.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from model.serving.batching import BatcherClosed
from model.serving.contract import (
    BadRequest,
    check_body_headers,
    encode_json,
    error_body,
    predict_headers,
    prediction_answer,
    request_id,
    too_large,
)
from model.serving.loader import ModelLoadError
from model.serving.state import ServingState

log = logging.getLogger("esteira.serving")

# (status, JSON payload, model version, request id): how an answer to POST /predict leaves, on any path.
Respond = Callable[[int, bytes, str, str], None]


def handle_predict(
    state: ServingState, headers: list[tuple[bytes, bytes]], body: bytes | None, started: float, respond: Respond
) -> None:
    """Answer one POST /predict through `respond`, exactly once, and count it in the metrics.

    At once for a client error (`body` None means it passed the size limit), an unready model or a
    shutdown; otherwise from the batcher's callback when the request's batch has run. Never raises: a
    failure of its own is logged and answered as a JSON 500.
    """
    ctype, declared, rid_header, mirrored = predict_headers(headers)
    rid = request_id(rid_header)
    answered = False
    state.in_flight += 1

    def answer(status: int, payload: bytes, version: str) -> None:
        nonlocal answered
        if answered:
            return
        answered = True
        state.in_flight -= 1
        try:
            state.metrics.record_request(version, status, (time.perf_counter() - started) * 1000.0)
        except Exception:  # metrics must never cost a request its answer
            log.exception("recording a request failed")
        respond(status, payload, version, rid)

    def refuse(status: int, error: str, field: str | None, message: str) -> None:
        answer(status, encode_json(error_body(error, field, message)), state.version)

    def fail(exc: BaseException) -> None:
        log.error("unhandled error", exc_info=exc, extra={"path": "/predict"})
        refuse(500, "internal_error", None, "internal error; see the service logs")

    def done(version: Any, preds: list[Any] | None, error: BaseException | None) -> None:
        if isinstance(error, ModelLoadError):
            refuse(503, "model_not_ready", None, str(error))
        elif error is not None or preds is None:
            fail(error or RuntimeError("the batcher answered without predictions"))
        else:
            try:
                observe(state, texts, preds, version, rid, is_batch, mirrored)
                answer(200, prediction_answer(version, rid, is_batch, preds, top_k), version)
            except Exception as exc:
                fail(exc)

    try:
        settings = state.settings
        try:
            check_body_headers(ctype, declared, settings.max_body_bytes)
            if body is None:
                raise too_large(settings.max_body_bytes)
            texts, is_batch, top_k = state.contract.parse_predict(body)
        except BadRequest as exc:
            refuse(exc.status, exc.error, exc.field, exc.message)
            return
        if state.model is None or state.batcher is None:
            refuse(503, "model_not_ready", None, state.reason or "model not loaded")
            return
        try:
            state.batcher.submit_nowait(texts, top_k, done)
        except BatcherClosed:
            refuse(503, "shutting_down", None, "the service is shutting down")
    except Exception as exc:
        fail(exc)


def observe(
    state: ServingState, texts: list[str], preds: list[Any], version: str, rid: str, is_batch: bool, mirrored: bool
) -> None:
    """Offer answered texts to the shadow mirror and the capture; a shadow copy itself is neither."""
    if mirrored:
        return
    if state.shadow is not None:
        state.shadow.offer(texts, [p.intent for p in preds])
    if state.capture is not None:
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


def refused_by_headers(headers: list[tuple[bytes, bytes]], max_bytes: int) -> bool:
    """True if the content type or the declared length alone means a 4xx (no need to read the body)."""
    ctype, declared, _, _ = predict_headers(headers)
    try:
        check_body_headers(ctype, declared, max_bytes)
    except BadRequest:
        return True
    return False
