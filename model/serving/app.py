"""The app, assembled: the state, the FastAPI routes other than /predict, the lifespan and /openapi.json.

Where each part lives:
- model/serving/contract.py: request and answer bodies (validated and documented by one definition),
  headers and errors. Add a field to /predict there.
- model/serving/state.py: the model being served and its hot swap.
- model/serving/predict.py: the predict core (validation, batching, shadow copy, capture, metrics).
- model/serving/asgi.py: POST /predict to the core, everything else to the FastAPI app built here.
- model/serving/http_protocol.py and fast_path.py: the optional fast path in uvicorn's protocol.

POST /predict has no FastAPI route (the ASGI layer answers it before routing); /openapi.json still
documents it, from the contract's Structs, as it documents every body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from model.serving.asgi import ServingMiddleware, read_body
from model.serving.batching import MicroBatcher
from model.serving.contract import (
    BadRequest,
    ExplainResponse,
    HealthBody,
    ReadyBody,
    check_body_headers,
    encode,
    encode_json,
    error_body,
    predict_headers,
    too_large,
)
from model.serving.settings import ServingSettings
from model.serving.state import ServingState

log = logging.getLogger("esteira.serving")


def _json(payload: bytes, status: int = 200) -> Response:
    return Response(payload, status_code=status, media_type="application/json")


def _error(status: int, error: str, field: str | None, message: str) -> Response:
    return _json(encode_json(error_body(error, field, message)), status)


def _ref(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "body is not UTF-8 JSON", **_ref("ErrorBody")},
    413: {"description": "body larger than ESTEIRA_SERVING_MAX_BODY_BYTES", **_ref("ErrorBody")},
    415: {"description": "content type is not application/json", **_ref("ErrorBody")},
    422: {"description": "a field is missing, of the wrong type or out of bounds", **_ref("ErrorBody")},
    503: {"description": "model not loaded (see /ready) or shutting down", **_ref("ErrorBody")},
}


def _predict_operation() -> dict[str, Any]:
    one_or_batch = {
        "oneOf": [
            {"$ref": "#/components/schemas/PredictResponse"},
            {"$ref": "#/components/schemas/BatchPredictResponse"},
        ]
    }
    return {
        "summary": "Classify one text or a batch",
        "operationId": "predict",
        "requestBody": {"required": True, **_ref("PredictRequest")},
        "responses": {
            "200": {
                "description": "the intents, with the model version",
                "content": {"application/json": {"schema": one_or_batch}},
            },
            **{str(k): v for k, v in _ERRORS.items()},
        },
    }


def openapi_document(app: FastAPI, state: ServingState) -> dict[str, Any]:
    """FastAPI's document for its routes, plus POST /predict and every body's schema from the contract."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        doc.setdefault("paths", {})["/predict"] = {"post": _predict_operation()}
        doc.setdefault("components", {}).setdefault("schemas", {}).update(state.contract.openapi_components())
        app.openapi_schema = doc
    return app.openapi_schema


def create_app(settings: ServingSettings | None = None, state: ServingState | None = None) -> ServingMiddleware:
    """The ASGI app uvicorn serves: the ASGI layer (POST /predict) around the FastAPI app (the rest)."""
    settings = settings or ServingSettings.from_env()
    state = state or ServingState(settings)
    background: list[asyncio.Task[Any]] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
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
    app.openapi = lambda: openapi_document(app, state)  # type: ignore[method-assign]

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

    @app.get(
        "/health",
        summary="Liveness: the process is up",
        responses={200: {"description": "alive", **_ref("HealthBody")}},
    )
    async def health() -> Response:
        return _json(encode(HealthBody("ok", state.version, settings.role)))

    @app.get(
        "/ready",
        summary="Readiness: the model is loaded and passed its self-test",
        responses={
            200: {"description": "ready", **_ref("ReadyBody")},
            503: {"description": "not ready", **_ref("ReadyBody")},
        },
    )
    async def ready() -> Response:
        if state.shutting_down:
            return _json(encode(ReadyBody("shutting_down", reason="the service is shutting down")), 503)
        if state.model is None:
            return _json(encode(ReadyBody(state.status, reason=state.reason, model_uri=settings.model_uri)), 503)
        return _json(encode(ReadyBody("ready", model_version=state.model.version, model_uri=state.model.uri)))

    @app.post(
        "/explain",
        summary="Which words pushed the text toward the predicted (or given) intent",
        openapi_extra={"requestBody": {"required": True, **_ref("ExplainRequest")}},
        responses={200: {"description": "the words and their weights", **_ref("ExplainResponse")}, **_ERRORS},
    )
    async def explain(request: Request) -> Response:
        ctype, declared, _, _ = predict_headers(request.scope["headers"])
        check_body_headers(ctype, declared, settings.max_body_bytes)
        _, body = await read_body(request.receive, settings.max_body_bytes)
        if body is None:
            raise too_large(settings.max_body_bytes)
        text, top_n, intent = state.contract.parse_explain(body)
        model = state.model
        if model is None:
            return _error(503, "model_not_ready", None, state.reason or "model not loaded")
        if intent is not None and intent not in set(model.classifier.classes_):
            raise BadRequest(422, "unknown_intent", "intent", f"unknown intent {intent[:80]!r}")
        result = model.classifier.explain(text, top_n=top_n, intent=intent)
        request.state.model_version = model.version
        answer = {"model_version": model.version, "request_id": request.state.request_id, **result}
        return _json(encode(msgspec.convert(answer, ExplainResponse)))  # the answer as documented, or a 500

    return ServingMiddleware(app, state)


async def _emit_metrics(state: ServingState, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            state.metrics.flush()
        except Exception:  # metrics must never take the service down
            log.exception("metrics flush failed")
