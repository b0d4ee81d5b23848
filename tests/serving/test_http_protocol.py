"""The one-send response path: a response head leaves with the write that follows it, nothing is held back."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn

from model.serving.http_protocol import HeadHoldingTransport, OneWriteHttpToolsProtocol

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"


class RecordingTransport:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def writelines(self, chunks: list[bytes]) -> None:
        self.calls.append(("writelines", list(chunks)))

    def write_eof(self) -> None:
        self.calls.append(("write_eof", None))

    def close(self) -> None:
        self.calls.append(("close", None))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("10.0.0.1", 4242)}.get(name, default)


def _wrapped() -> tuple[HeadHoldingTransport, RecordingTransport]:
    inner = RecordingTransport()
    return HeadHoldingTransport(inner), inner  # type: ignore[arg-type]


def test_head_and_body_leave_in_one_write() -> None:
    t, inner = _wrapped()
    t.write(HEAD)
    assert inner.calls == []
    t.write(b"{}")
    assert inner.calls == [("write", HEAD + b"{}")]
    t.write(b"more")  # nothing held: straight through
    assert inner.calls[-1] == ("write", b"more")


def test_interim_heads_and_other_paths_are_never_held() -> None:
    t, inner = _wrapped()
    t.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the client waits for it before sending its body
    assert inner.calls == [("write", b"HTTP/1.1 100 Continue\r\n\r\n")]
    for release in (t.close, t.write_eof, lambda: t.writelines([b"a", b"b"])):
        t.write(HEAD)
        release()
        assert inner.calls[-2] == ("write", HEAD), "the held head goes out first"
    assert t.get_extra_info("peername") == ("10.0.0.1", 4242)  # everything else is the real transport's


def test_a_served_response_arrives_whole_in_one_segment() -> None:
    """Through a real uvicorn: one recv returns the head and the body together, request after request."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"11")]})
        await asyncio.sleep(0.01)  # if the head were written on its own, it would arrive alone
        await send({"type": "http.response.body", "body": b'{"ok":true}'})

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, port=port, http=OneWriteHttpToolsProtocol, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            for _ in range(3):  # keep-alive: every response on the connection
                conn.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                first = conn.recv(65536)
                assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(b'\r\n\r\n{"ok":true}'), first
    finally:
        server.should_exit = True
        thread.join(10)
