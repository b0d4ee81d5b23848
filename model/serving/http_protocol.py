"""uvicorn's httptools protocol, writing each response's head and body with one send.

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
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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
