"""The emulator's keep-alive connections to tasks (localaws.ecs.TargetConnections): reused while
fresh, never reused once the target closed them or they idled past the limit."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from localaws.ecs import TargetConnections


class _Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        body = str(self.client_address[1]).encode()  # the client port: same port = same connection
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def target() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _get(pool: TargetConnections, port: int) -> str:
    conn = pool.take(port)
    conn.request("GET", "/")
    resp = conn.getresponse()
    body = resp.read().decode()
    pool.give(port, conn)
    return body


def test_a_fresh_connection_is_reused(target: http.server.ThreadingHTTPServer) -> None:
    pool, port = TargetConnections(), target.server_address[1]
    assert _get(pool, port) == _get(pool, port)


def test_an_idle_or_closed_connection_is_not_reused(target: http.server.ThreadingHTTPServer) -> None:
    port = target.server_address[1]
    stale = TargetConnections(idle_timeout=0.0)
    assert _get(stale, port) != _get(stale, port)
    pool = TargetConnections()
    first = _get(pool, port)
    conn = pool.take(port)
    assert conn.sock is not None
    conn.sock.shutdown(2)  # as if the target had closed it: the pool must not hand it out again
    pool.give(port, conn)
    assert _get(pool, port) != first
