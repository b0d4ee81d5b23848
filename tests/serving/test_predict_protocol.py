"""POST /predict answered in the HTTP protocol: the connection rules still hold, on raw sockets.

The fast path (model/serving/http_protocol.py) takes over from uvicorn the part of a request's life that
runs the ASGI app, so these tests check what uvicorn guaranteed there: keep-alive and `Connection: close`,
HTTP/1.0, pipelining (in order, also behind a request the path leaves to uvicorn), `Expect:
100-continue`, a body over the limit answered before it is all sent, a client that leaves mid-request,
a chunked body, and request ids echoed byte for byte. The answers themselves (bad input, models,
metrics, capture) are tested through the same service in test_http.py.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from benchmarks.loadgen import ServiceProcess

Response = tuple[int, dict[str, str], bytes]


def _connect(proc: ServiceProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proc.port), timeout=15)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _post(body: bytes, extra: str = "", version: str = "1.1", length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    head = (
        f"POST /predict HTTP/{version}\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n{extra}\r\n"
    )
    return head.encode() + body


class _Reader:
    """Reads HTTP/1.1 responses (content-length bodies) off one socket."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buf = sock, b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def response(self) -> Response:
        while b"\r\n\r\n" not in self.buf:
            assert self._fill(), f"connection closed mid-response: {self.buf!r}"
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        size = int(headers.get("content-length", "0"))
        while len(self.buf) < size:
            assert self._fill(), "connection closed mid-body"
        body, self.buf = self.buf[:size], self.buf[size:]
        return status, headers, body

    def closed(self) -> bool:
        """True if the server closes the connection with nothing more to read."""
        return not self.buf and not self._fill()


def _json(resp: Response) -> Any:
    return json.loads(resp[2])


def test_keep_alive_then_connection_close(service: tuple[ServiceProcess, str]) -> None:
    proc, _ = service
    with _connect(proc) as sock:
        reader = _Reader(sock)
        for i in range(5):
            sock.sendall(_post(json.dumps({"text": f"my card #{i} has not arrived"}).encode()))
            status, headers, _ = reader.response()
            assert status == 200
            assert "connection" not in headers  # kept alive
            assert headers["content-type"] == "application/json"
            assert headers["x-model-version"] and headers["date"]
        sock.sendall(_post(b'{"text": "last one"}', "Connection: close\r\n"))
        status, headers, _ = reader.response()
        assert status == 200 and headers["connection"] == "close"
        assert reader.closed()


def test_http_1_0_gets_an_answer_and_a_close(service: tuple[ServiceProcess, str]) -> None:
    proc, _ = service
    with _connect(proc) as sock:
        reader = _Reader(sock)
        sock.sendall(_post(b'{"text": "cancel my transfer"}', version="1.0"))
        status, headers, body = reader.response()
        assert status == 200 and headers["connection"] == "close"
        assert json.loads(body)["intent"]
        assert reader.closed()


def test_pipelined_requests_are_answered_in_order(service: tuple[ServiceProcess, str]) -> None:
    """Led by a /predict (the fast path answers it; the rest queue behind it in uvicorn's pipeline) and by
    a GET /health (everything queues behind an ASGI request)."""
    proc, _ = service
    ids = [f"pipe-{i}" for i in range(6)]
    predicts = b"".join(
        _post(json.dumps({"text": f"where is my card {i}"}).encode(), f"X-Request-Id: {rid}\r\n")
        for i, rid in enumerate(ids)
    )
    bad = _post(b'{"text": ""}', "X-Request-Id: bad\r\n")
    health = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"
    for burst, leader in ((predicts + bad + health, False), (health + predicts + bad, True)):
        with _connect(proc) as sock:
            sock.sendall(burst)
            reader = _Reader(sock)
            if leader:
                assert _json(reader.response())["status"] == "ok"
            for rid in ids:
                status, headers, body = reader.response()
                assert status == 200
                assert headers["x-request-id"] == rid == json.loads(body)["request_id"]
            status, headers, body = reader.response()
            assert status == 422 and json.loads(body)["field"] == "text" and headers["x-request-id"] == "bad"
            if not leader:
                assert _json(reader.response())["status"] == "ok"


def test_expect_100_continue(service: tuple[ServiceProcess, str]) -> None:
    proc, _ = service
    body = b'{"text": "I lost my card"}'
    with _connect(proc) as sock:
        sock.sendall(_post(b"", "Expect: 100-continue\r\n", length=len(body)))
        assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        status, headers, answer = _Reader(sock).response()
        assert status == 200 and json.loads(answer)["model_version"] == headers["x-model-version"]


def test_a_body_over_the_limit_is_refused_before_it_is_all_sent(service: tuple[ServiceProcess, str]) -> None:
    proc, _ = service  # the service fixture sets ESTEIRA_SERVING_MAX_BODY_BYTES=20000
    with _connect(proc) as sock:
        sock.sendall(_post(b'{"texts": ["' + b"a" * 30_000, length=10_000_000))
        status, _, body = _Reader(sock).response()  # answered while 9.97 MB are still unsent
        assert status == 413 and json.loads(body)["field"] == "body"


def test_chunked_body(service: tuple[ServiceProcess, str]) -> None:
    proc, _ = service
    parts = [b'{"text": ', b'"my card payment ', b'was declined"}']
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    head = b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    with _connect(proc) as sock:
        sock.sendall(head + chunked)
        status, _, body = _Reader(sock).response()
        assert status == 200 and json.loads(body)["intent"]


def test_request_ids_are_echoed_as_they_came_or_cut(service: tuple[ServiceProcess, str]) -> None:
    proc, _ = service
    with _connect(proc) as sock:
        reader = _Reader(sock)
        for sent, echoed in ((b"a\tb\xe9\xff", "a\tb\xe9\xff"), (b"x" * 300, "x" * 128)):
            head = b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 17\r\n"
            sock.sendall(head + b"X-Request-Id: " + sent + b"\r\n\r\n" + b'{"text": "hello"}')
            status, headers, body = reader.response()
            assert status == 200, body
            assert headers["x-request-id"] == echoed == json.loads(body)["request_id"]


def test_a_client_that_leaves_mid_request_does_not_disturb_the_next(service: tuple[ServiceProcess, str]) -> None:
    proc, _ = service
    for _ in range(20):  # gone before its batch ran, and gone mid-body
        with _connect(proc) as sock:
            sock.sendall(_post(b'{"text": "transfer pending"}'))
        with _connect(proc) as sock:
            sock.sendall(_post(b'{"text": "transf', length=30))
    with _connect(proc) as sock:
        sock.sendall(_post(b'{"text": "still answering?"}'))
        status, _, body = _Reader(sock).response()
        assert status == 200 and json.loads(body)["intent"]


def test_expect_100_continue_with_bad_headers_is_refused_before_the_upload(service: tuple[ServiceProcess, str]) -> None:
    """No "100 Continue" (so no upload) when the headers alone mean a 4xx: wrong type, or too long."""
    proc, _ = service
    heads = (
        b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n",
        b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 9000000\r\n",
    )
    for head, status, field in zip(heads, (415, 413), ("content-type", "body"), strict=True):
        with _connect(proc) as sock:
            sock.sendall(head + b"Expect: 100-continue\r\n\r\n")
            answer = _Reader(sock).response()
            assert answer[0] == status and _json(answer)["field"] == field
