"""The ASGI layer: POST /predict to the predict core, every other route to FastAPI, the same headers on all.

Pure ASGI (not BaseHTTPMiddleware, which costs a task and a stream per request), and the outermost layer
(model/serving/app.py wraps the FastAPI app in it), so a POST /predict goes straight to the predict core
without FastAPI's routing. With the fast path on, most never get here: the HTTP protocol answers them
(model/serving/http_protocol.py) and leaves only what it does not take (`Expect: 100-continue`, a request
pipelined behind another, an upgrade).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from model.serving.contract import (
    MODEL_VERSION_HEADER,
    REQUEST_ID_HEADER,
    answer_headers,
    encode_json,
    error_body,
    request_id,
)
from model.serving.predict import predict_once, refused_by_headers
from model.serving.state import ServingState

log = logging.getLogger("esteira.serving")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Probes and documentation are not traffic: /ready answers 503 by design while loading or draining.
_QUIET_PATHS = {"/health", "/ready", "/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"}


async def read_body(receive: Receive, max_bytes: int) -> tuple[bool, bytes | None]:
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


async def _predict_method_not_allowed(scope: Scope, receive: Receive, send: Send) -> None:
    payload = encode_json(error_body("method_not_allowed", None, "Method Not Allowed; /predict takes POST"))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 405, "headers": [*headers, (b"allow", b"POST")]})
    await send({"type": "http.response.body", "body": payload})


class ServingMiddleware:
    """Route POST /predict to the predict core; for the rest, add the answer headers and count the request.

    A route that answered with a particular model (POST /explain) says which in
    `scope["state"]["model_version"]`; otherwise the answer names the model serving now.
    """

    def __init__(self, app: ASGIApp, state: ServingState):
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        app = self.app
        if scope["path"] == "/predict":
            if scope["method"] == "POST":
                await self._predict(scope, receive, send)
                return
            app = _predict_method_not_allowed  # no FastAPI route serves /predict (the core answers it)
        start = time.perf_counter()
        state = self.state
        rid = request_id(next((v for k, v in scope.get("headers", ()) if k == REQUEST_ID_HEADER), None))
        route_state = scope.setdefault("state", {})
        route_state["request_id"] = rid
        status = 0  # stays 0 if the client left before an answer started: not counted as a server error
        version = state.version

        async def _send(message: Message) -> None:
            nonlocal status, version
            if message["type"] == "http.response.start":
                status = message["status"]
                version = route_state.get("model_version") or state.version
                ours = (MODEL_VERSION_HEADER, REQUEST_ID_HEADER)
                headers = [h for h in message.get("headers", []) if h[0].lower() not in ours]
                message["headers"] = headers + answer_headers(version, rid)
            await send(message)

        state.in_flight += 1
        try:
            await app(scope, receive, _send)
        except Exception:
            status = status or 500  # the outer error middleware answers 500; count it here
            raise
        finally:
            state.in_flight -= 1
            if scope["path"] not in _QUIET_PATHS and status:
                state.metrics.record_request(version, status, (time.perf_counter() - start) * 1000.0)
            if status >= 500 and scope["path"] != "/ready":
                log.error("server error", extra={"path": scope["path"], "status": status})

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        max_bytes = self.state.settings.max_body_bytes
        # When the headers alone mean a 4xx, answer before reading (the predict core checks them first): a
        # client that sent `Expect: 100-continue` gets its 415/413 instead of a "100 Continue" and an upload.
        body: bytes | None = b""
        if not refused_by_headers(scope["headers"], max_bytes):
            present, body = await read_body(receive, max_bytes)
            if not present:  # the client left before sending its body: nothing to answer or count
                return
        status, payload, version, rid = await predict_once(self.state, scope["headers"], body, started)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers + answer_headers(version, rid)})
        await send({"type": "http.response.body", "body": payload})
