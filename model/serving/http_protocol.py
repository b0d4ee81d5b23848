"""uvicorn's httptools protocol with two changes: POST /predict answered in the protocol, and one send per
response.

**POST /predict in the protocol** (`ServingHttpProtocol`). For every request uvicorn builds a scope, a
RequestResponseCycle with an asyncio.Event, and a task that runs the ASGI app, which then awaits the body
and the batcher's future and sends two ASGI messages. On this service that machinery was most of the
non-model CPU per request (a plain ASGI app under uvicorn costs ~35 us a request here, the model ~40 us a
row). So the protocol answers POST /predict itself, with no task: it collects the body as httptools
parses it, hands it to the predict core (model/serving/predict.py: the same validation, batching,
capture and metrics the ASGI layer uses) and writes the answer, head and body in one `write`, from the
batcher's callback. Everything else - other routes, and the /predict requests this path does not take
(`Expect: 100-continue`, a request pipelined behind another, an upgrade) - goes to uvicorn and the ASGI
layer (model/serving/asgi.py). What stays uvicorn's: the parser, keep-alive and its timeout, pipelining,
flow control, graceful shutdown (the exchange stands where uvicorn keeps its cycle, with the attributes
uvicorn reads there).

**One send per response**, for the ASGI path.

Why: uvicorn writes the status line and headers when the app sends `http.response.start`, and the body
when it sends `http.response.body`: two `send` syscalls and, with Nagle off, two TCP segments per
response, so the peer (the load balancer) wakes twice. On this service's small JSON answers the first
write alone was ~10 % of the server's CPU at 2,000 req/s (py-spy, docs/benchmarks.md). Holding the head
until the body's first write makes it one syscall and one segment; the bytes on the wire are the same.

What is held: only a complete, final response head (`HTTP/1.1 <status>` with status >= 200, ending in a
blank line). An interim `100 Continue` goes out at once (the client waits for it before sending its body),
and every other write, `writelines`, `write_eof` and `close` first sends what is held, so nothing can be
left behind: a streaming response's head simply leaves with its first chunk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from model.serving.contract import answer_headers
from model.serving.predict import handle_predict
from model.serving.state import ServingState

log = logging.getLogger("esteira.serving")


class HeadHoldingTransport:
    """A transport wrapper that sends a response head together with the write that follows it."""

    __slots__ = ("_held", "_transport")

    def __init__(self, transport: asyncio.Transport):
        self._transport = transport
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + bytes(data))
        elif _is_final_head(data):
            self._held = bytes(data)
        else:
            self._transport.write(data)

    def _release(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)

    def writelines(self, chunks: Any) -> None:
        self._release()
        self._transport.writelines(chunks)

    def write_eof(self) -> None:
        self._release()
        self._transport.write_eof()

    def close(self) -> None:
        self._release()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self._transport, name)


def _is_final_head(data: bytes | bytearray | memoryview) -> bool:
    head = bytes(data[:10])
    return head[:9] == b"HTTP/1.1 " and head[9:10] != b"1" and bytes(data[-4:]) == b"\r\n\r\n"


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a HeadHoldingTransport (pass as `uvicorn.Config(http=...)`)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(HeadHoldingTransport(transport))  # type: ignore[arg-type]


class _NoWaiter:
    """uvicorn's connection_lost sets its cycle's message_event; nothing waits on a fast exchange."""

    __slots__ = ()

    def set(self) -> None:
        pass


class _PredictExchange:
    """One POST /predict on the fast path: its headers, its body so far, and the connection flags that
    uvicorn reads from `protocol.cycle` (response_complete, keep_alive, disconnected, message_event)."""

    __slots__ = ("answered", "chunks", "disconnected", "headers", "keep_alive", "response_complete", "size", "started")
    message_event = _NoWaiter()

    def __init__(self, headers: list[tuple[bytes, bytes]], keep_alive: bool):
        self.headers = headers
        self.keep_alive = keep_alive
        self.chunks: list[bytes] = []
        self.size = 0
        self.answered = False  # handed to handle_predict (the body is complete, or over the limit)
        self.response_complete = False
        self.disconnected = False
        self.started = time.perf_counter()


class ServingHttpProtocol(OneWriteHttpToolsProtocol):
    """Answers POST /predict in the protocol (see the module doc); bind a service with `for_state`."""

    serving_state: ClassVar[ServingState | None] = None

    @classmethod
    def for_state(cls, state: ServingState) -> type[ServingHttpProtocol]:
        """The protocol class for uvicorn.Config(http=...), bound to the service whose model answers."""
        return type(cls.__name__, (cls,), {"serving_state": state})

    def on_message_begin(self) -> None:
        # An answer written inside this same data_received (a client error answered at once) armed the
        # keep-alive timer; a request pipelined behind it must not run under that timer.
        self._unset_keepalive_if_required()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        cycle = self.cycle
        if (
            self.url == b"/predict"
            and self.serving_state is not None
            and self.parser.get_method() == b"POST"
            and not self.expect_100_continue  # the client waits for "100 Continue": uvicorn's cycle sends it
            and (cycle is None or cycle.response_complete)  # pipelined behind an unfinished answer: uvicorn queues it
            and self.limit_concurrency is None
            and not self.flow.write_paused  # a client not reading its answers: uvicorn's cycle waits for it
            and not self.parser.should_upgrade()
        ):
            keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
            self.cycle = _PredictExchange(self.headers, keep_alive)  # type: ignore[assignment]
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        exchange = self.cycle
        if type(exchange) is not _PredictExchange:
            super().on_body(body)
            return
        if exchange.answered:
            return  # answered early (413): the rest of the body is read and dropped, as uvicorn does
        exchange.size += len(body)
        assert self.serving_state is not None
        if exchange.size > self.serving_state.settings.max_body_bytes:
            exchange.answered, exchange.chunks = True, []
            self._handle(exchange, None)
        else:
            exchange.chunks.append(body)

    def on_message_complete(self) -> None:
        exchange = self.cycle
        if type(exchange) is not _PredictExchange:
            super().on_message_complete()
            return
        if not exchange.answered:
            exchange.answered = True
            self._handle(exchange, b"".join(exchange.chunks))

    def _handle(self, exchange: _PredictExchange, body: bytes | None) -> None:
        assert self.serving_state is not None

        def respond(status: int, payload: bytes, version: str, rid: str) -> None:
            self._respond(exchange, status, payload, version, rid)

        handle_predict(self.serving_state, exchange.headers, body, exchange.started, respond)

    def _respond(self, exchange: _PredictExchange, status: int, payload: bytes, version: str, rid: str) -> None:
        """Write the answer (head and body in one write), then do what uvicorn does when a response ends."""
        if exchange.response_complete:
            return
        exchange.response_complete = True
        transport = self.transport
        if exchange.disconnected or transport.is_closing():
            return  # the client left; the metrics counted the answer, as for any request
        try:
            parts = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:  # `date`, kept current by uvicorn
                parts += (name, b": ", value, b"\r\n")
            parts.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(payload))
            for name, value in answer_headers(version, rid):
                parts += (name, b": ", value, b"\r\n")
            if not exchange.keep_alive:
                parts.append(b"connection: close\r\n")
            parts += (b"\r\n", payload)
            transport.write(b"".join(parts))
        except Exception:  # never leave the client waiting on a connection that will not answer
            log.exception("writing a /predict answer failed; closing the connection")
            transport.close()
            return
        if not exchange.keep_alive:
            transport.close()
        self.on_response_complete()  # uvicorn's: resume reading, start a pipelined request, arm keep-alive
