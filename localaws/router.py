"""The ALB listener's weighted forward action, as a real local HTTP proxy in front of local ECS services.

moto stores load balancers, target groups and listener actions (including ForwardConfig weights) but
moves no traffic. This router does: each request goes to one target group of the listener's default
forward action, picked at random in proportion to its weight, and from the target group to the ECS
service registered with it (the service's `loadBalancers`), and on to a healthy local task of that
service (localaws.ecs). So the workflow changes traffic with the same elbv2 ModifyListener call it
makes in AWS, and this router follows within `refresh` seconds.

Shadow traffic is not the router's job, as it is not the ALB's: every serving task copies its own
traffic to the canary service's Cloud Map name while a shadow candidate runs (model/serving/shadow.py;
localaws.ecs resolves the name to the canary service's local proxy).
"""

from __future__ import annotations

import http.client
import http.server
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from localaws.ecs import Listener, free_port

_HOP = ("connection", "transfer-encoding", "keep-alive", "content-length")


@dataclass
class Routes:
    groups: list[tuple[str, int]] = field(default_factory=list)  # (target group ARN, weight)
    services: dict[str, str] = field(default_factory=dict)  # target group ARN -> ECS service name
    at: float = 0.0


class WeightedRouter:
    def __init__(
        self,
        local: Any,
        listener_arn: str,
        cluster: str,
        *,
        refresh: float = 0.25,
    ) -> None:
        self.local = local
        self.listener_arn = listener_arn
        self.cluster = cluster
        self.refresh = refresh
        self._routes = Routes()
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self.served: dict[str, int] = {}  # ECS service -> requests answered (for tests and the demo)

    # ---- configuration read from the emulated AWS APIs
    def routes(self) -> Routes:
        """The listener's weights, re-read at most every `refresh` s. Like an ALB's data plane, routing
        must not fail when the control plane is slow or erroring: then the last known routes serve."""
        with self._lock:
            if time.monotonic() - self._routes.at < self.refresh:
                return self._routes
            cached = self._routes
        try:
            return self._read_routes()
        except Exception as exc:  # botocore errors are not OSError; a busy emulator must not drop requests
            if not cached.groups:
                raise
            print(f"localaws router: keeping the last routes ({exc!r})", flush=True)
            return cached

    def _read_routes(self) -> Routes:
        elb = self.local.client("elbv2")
        listener = elb.describe_listeners(ListenerArns=[self.listener_arn])["Listeners"][0]
        groups: list[tuple[str, int]] = []
        for action in listener.get("DefaultActions", []):
            if action.get("Type") != "forward":
                continue
            fc = action.get("ForwardConfig", {}).get("TargetGroups")
            if fc:
                groups += [(g["TargetGroupArn"], int(g.get("Weight", 1))) for g in fc]
            elif action.get("TargetGroupArn"):
                groups.append((action["TargetGroupArn"], 1))
        arns = [g for g, _ in groups]
        services = self._routes.services
        if not services or time.monotonic() - self._routes.at > 5 or any(g not in services for g in arns):
            services = self._services()
        routes = Routes(groups, services, time.monotonic())
        with self._lock:
            self._routes = routes
        return routes

    def _services(self) -> dict[str, str]:
        ecs = self.local.client("ecs")
        arns = ecs.list_services(cluster=self.cluster).get("serviceArns", [])
        out: dict[str, str] = {}
        for i in range(0, len(arns), 10):
            for svc in ecs.describe_services(cluster=self.cluster, services=arns[i : i + 10])["services"]:
                for lb in svc.get("loadBalancers", []):
                    if lb.get("targetGroupArn"):
                        out[lb["targetGroupArn"]] = svc["serviceName"]
        return out

    def pick(self, routes: Routes) -> str | None:
        live = [(g, w) for g, w in routes.groups if w > 0 and g in routes.services]
        if not live:
            return None
        r = random.uniform(0, sum(w for _, w in live))
        for g, w in live:
            r -= w
            if r <= 0:
                return g
        return live[-1][0]

    def port_of(self, service: str) -> int | None:
        return self.local.ecs.route((self.cluster, service)) if self.local.ecs else None

    # ---- the proxy
    def start(self) -> WeightedRouter:
        router = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                return

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                routes = router.routes()
                group = router.pick(routes)
                service = routes.services.get(group or "")
                port = router.port_of(service) if service else None
                if port is None:
                    self._reply(503, {"Content-Type": "text/plain"}, b"no healthy targets\n")
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "host")}
                # Kept-alive connections to the task, as an ALB keeps them to its targets (and as the
                # service's proxy does): a new connection per request crosses the task's user-mode network
                # each time, whose port forwarder resets connections while the host is short of CPU.
                pool = router.local.ecs.target_connections
                conn = pool.take(port)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException) as exc:  # as an ALB: the target failed, 502
                    conn.close()
                    message = f"bad gateway: router -> {service} task :{port}: {exc}\n"
                    self._reply(502, {"Content-Type": "text/plain"}, message.encode())
                    return
                if resp.will_close:
                    conn.close()
                else:
                    pool.give(port, conn)
                self._reply(resp.status, {k: v for k, v in resp.getheaders() if k.lower() not in _HOP}, data)
                with router._lock:
                    router.served[service or ""] = router.served.get(service or "", 0) + 1

            def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self._server = Listener(("127.0.0.1", free_port()), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="localaws-router").start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
