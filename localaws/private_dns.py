"""The VPC's private DNS for local processes, as an HTTP forward proxy.

In AWS a task finds MLflow at `http://mlflow.<namespace>:5000` because Cloud Map answers that name
when the request is made, not when the task starts; a task started before MLflow's service exists
simply retries until the name resolves. Rewriting URLs in a task's environment at start time gets
that wrong (the name is frozen to whatever existed then), so every local task, training job and
function instead gets `HTTP_PROXY` pointing here, with loopback (the emulator's own endpoint) left
direct by `NO_PROXY`. Each request is resolved as it arrives: a private name to its service's
current local address, an unknown name to 502 "cannot resolve", as the VPC's resolver would answer
for a name it does not hold. HTTPS tunnels (CONNECT) are refused: the dev VPC has no internet route.

The Host header stays the private name, as in AWS (MLflow checks it against MLFLOW_SERVER_ALLOWED_HOSTS,
which its task definition sets). The exception is a service bound to a process outside the emulator
(`EcsPlane.bind_external`): that process is configured by whoever started it, not by the task
definition, so it is sent the address it listens on.
"""

from __future__ import annotations

import http.client
import http.server
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade"}


def proxy_env(url: str) -> dict[str, str]:
    """What a local process needs so that its HTTP clients resolve private names at `url`."""
    direct = "127.0.0.1,localhost,::1"
    return {"HTTP_PROXY": url, "http_proxy": url, "NO_PROXY": direct, "no_proxy": direct}


class PrivateDNS:
    """One proxy per embedded AWS; `lookup(host)` gives the base URL a name stands for, or None."""

    def __init__(
        self, lookup: Callable[[str], str | None], external: Callable[[str], bool] = lambda host: False
    ) -> None:
        self.lookup = lookup
        self.external = external
        self.refused: list[str] = []  # names asked for and not found (a test reads it)
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "PrivateDNS.start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        return proxy_env(self.url)

    def start(self) -> PrivateDNS:
        dns = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                return

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its own timeout)
                    self.close_connection = True

            def do_CONNECT(self) -> None:
                dns.refused.append(self.path)
                self._reply(502, f"no route to {self.path}: the VPC has no internet access\n".encode())

            def _forward(self) -> None:
                target = urllib.parse.urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                base = dns.lookup(target.hostname or "")
                if base is None:
                    dns.refused.append(target.hostname or self.path)
                    self._reply(502, f"cannot resolve {target.hostname}: no such private name\n".encode())
                    return
                upstream = urllib.parse.urlsplit(base)
                path = urllib.parse.urlunsplit(("", "", target.path or "/", target.query, ""))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
                external = dns.external(target.hostname or "")
                headers["Host"] = upstream.netloc if external else target.netloc
                conn = http.client.HTTPConnection(upstream.hostname or "127.0.0.1", upstream.port or 80, timeout=300)
                try:
                    conn.request(self.command, path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in HOP_BY_HOP | {"content-length"}:
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError as exc:
                    self._reply(502, f"bad gateway: {target.netloc}: {exc}\n".encode())
                finally:
                    conn.close()

            def _reply(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="private-dns").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
