"""ECS data plane: task definitions really run, as local processes.

- RunTask starts every container of the task definition. When the image the definition names is in
  this machine's OCI storage (oci.build built it and it was tagged with the ECR reference, as a push
  would), it runs as a container with podman (oci.run): the image's own ENTRYPOINT and CMD, user,
  working directory, read-only root, volumes and a network namespace of its own, as Fargate runs it.
  Otherwise it runs as a process from this checkout: its command (entryPoint + command, the image's
  Dockerfile filling in), a working directory and a log file of its own, and the settings a process
  cannot take are named in its log. Either way: RunTask overrides, the definition's environment and
  secrets, the emulator endpoint and the task role's credentials. A container port is mapped to a free
  local port; a process's ESTEIRA_SERVING_PORT (or PORT) variable naming that container port is
  rewritten to the local one (processes on one host cannot share a port; containers can, each in its
  own namespace).
- A task stops when an essential container exits; DescribeTasks then shows STOPPED with exit codes.
- Services keep `desiredCount` tasks of their current task definition running. UpdateService starts
  a rolling deployment: new tasks start, become healthy (their first port answers `health_path` with
  200; port-less containers after a second alive), then the old ones stop. Three failed tasks trip
  the circuit breaker (rolloutState FAILED), as ECS's deployment circuit breaker does. Deployments,
  runningCount and rolloutState are what DescribeServices reports.
- Each service gets a local HTTP proxy standing in for its load balancer (`service_url`), routing to
  healthy tasks of the primary deployment (or the old ones until it is ready).
- RunTask on an EC2 capacity provider first gets a host as ECS managed scaling would
  (localaws.ec2_capacity); idle hosts are removed on the plane's pass.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import inspect
import json
import logging
import os
import re
import shlex
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localaws import ec2_capacity
from localaws.images import image_config
from oci import run as oci_run

log = logging.getLogger(__name__)

FAILURE_THRESHOLD = 3
EXTERNAL_RETRY_SECONDS = 5.0  # an external service's task start that failed is tried again after this
# A task started by RunTask (training) is batch work: on Fargate it has vCPUs of its own; here it shares
# two cores with the serving tasks, MLflow and the emulator, so it gets the lowest CPU weight and a
# prediction never waits behind a training step (seen as p99 > 1 s and connection resets in the demo).
BATCH_CPU_SHARES = 2
BATCH_NICE = 19
DRAIN_SECONDS = 3.0  # scale-in: how long a surplus task keeps answering before it stops (deregistration delay)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Listener(http.server.ThreadingHTTPServer):
    """A load balancer's or service's local listener. socketserver's accept backlog is 5: a moment's CPU
    starvation with 40 requests a second in flight would overflow it, which an ALB never does."""

    request_queue_size = 256
    daemon_threads = True


class TargetConnections:
    """Keep-alive connections to the tasks' ports, as an ALB keeps them to its targets.

    A new TCP connection per request would cross each task's user-mode network (slirp4netns) 40 times a
    second, and its port forwarder resets connections when the task is starved of CPU for a moment (seen
    as rare 502s in the demo while training shares the two cores); an ALB does not open a connection per
    request either. Idle connections are dropped after `idle_timeout` (4 s: under every target's
    keep-alive here, uvicorn's default 5 s for MLflow and the service's 65 s, so a target never closes
    one first), and one the target has closed (readable while idle: EOF) is never reused. No request
    is retried: a failure is a 502, as in AWS.
    """

    def __init__(self, idle_timeout: float = 4.0) -> None:
        self.idle_timeout = idle_timeout
        self._idle: dict[int, list[tuple[http.client.HTTPConnection, float]]] = {}
        self._lock = threading.Lock()

    def take(self, port: int) -> http.client.HTTPConnection:
        now = time.monotonic()
        while True:
            with self._lock:
                idle = self._idle.get(port) or []
                if not idle:
                    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn, since = idle.pop()
            if now - since < self.idle_timeout and conn.sock is not None and not _readable(conn.sock):
                return conn
            conn.close()

    def give(self, port: int, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.setdefault(port, []).append((conn, time.monotonic()))


def _batch_priority() -> None:
    """In the child before exec: a RunTask task run as a process yields the CPU as a container would."""
    os.nice(BATCH_NICE)


def _readable(sock: socket.socket) -> bool:
    """An idle keep-alive socket that is readable has been closed (or reset) by the other side."""
    import select

    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


@dataclass
class LocalContainer:
    name: str
    essential: bool
    proc: subprocess.Popen[bytes]
    log_path: Path
    ports: dict[int, int]  # container port -> local port
    exit_code: int | None = None
    container: str = ""  # the podman container's name when it runs from its image, else ""


@dataclass
class LocalTask:
    arn: str
    task_definition: str
    containers: list[LocalContainer]
    service: tuple[str, str] | None = None
    started: float = field(default_factory=time.monotonic)
    healthy: bool = False
    draining: bool = False  # deregistered from the load balancer, finishing what it has, then stopped
    stopped: bool = False
    stopped_reason: str = ""
    draining_since: float | None = None

    def first_port(self) -> int | None:
        for c in self.containers:
            for port in c.ports.values():
                return port
        return None


def _env_list(items: list[dict[str, str]] | None) -> dict[str, str]:
    return {i["name"]: i["value"] for i in items or []}


def _command(definition: dict[str, Any], override: dict[str, Any]) -> list[str]:
    """entryPoint + command as ECS and Docker combine them, the image's own (its Dockerfile) filling in."""
    image = image_config(str(definition.get("image") or ""))
    entry = list(definition.get("entryPoint") or (image.entrypoint if image else []))
    default_cmd = image.cmd if image and not definition.get("entryPoint") else []
    cmd = list(override.get("command") or definition.get("command") or default_cmd)
    argv = entry + cmd
    if argv[:1] in (["/bin/sh"], ["sh"]) and argv[1:2] == ["-c"]:
        return argv
    if len(argv) == 1 and " " in argv[0]:
        return shlex.split(argv[0])
    if not argv:
        raise ValueError(f"container {definition.get('name')} has no command, and no Dockerfile builds its image")
    return argv


# Container settings a local process cannot take (docs/infra-notes.md says why); containers take them all.
UNHONOURED = ("user", "workingDirectory", "readonlyRootFilesystem", "linuxParameters", "ulimits", "healthCheck")


def unhonoured(definition: dict[str, Any]) -> dict[str, Any]:
    """The settings of a container definition that this local task runs without."""
    return {key: definition[key] for key in UNHONOURED if definition.get(key) not in (None, [], {}, False)}


def secrets(items: list[dict[str, str]] | None, task_definition: str) -> dict[str, str]:
    """A container's `secrets` as ECS injects them: Secrets Manager (`<arn>[:json-key:stage:version]`) or
    SSM parameters. A reference that does not resolve stops the task from starting, as in AWS
    (ResourceInitializationError), instead of starting it without the value."""
    out: dict[str, str] = {}
    for item in items or []:
        name, ref = item["name"], item["valueFrom"]
        try:
            out[name] = _secret_value(ref)
        except Exception as exc:
            raise ValueError(
                f"ResourceInitializationError: unable to pull secrets for {task_definition}: {name} from {ref}: {exc}"
            ) from exc
    return out


def _secret_value(ref: str) -> str:
    import json as _json

    parts = ref.split(":")
    region, account = parts[3], parts[4]
    if parts[2] == "ssm":
        from moto.ssm.models import ssm_backends

        name = ref.split(":parameter", 1)[1]
        parameter = ssm_backends[account][region].get_parameter(name)
        if parameter is None:
            raise KeyError(f"no parameter {name}")
        return str(parameter.value)
    from moto.secretsmanager.models import secretsmanager_backends

    secret_arn, rest = ":".join(parts[:7]), parts[7:]
    key, stage, version = [*rest, "", "", ""][:3]
    backend: Any = secretsmanager_backends[account][region]
    value = backend.get_secret_value(secret_arn, version or None, stage or None)
    text = str(value.get("SecretString") or "")
    return str(_json.loads(text)[key]) if key else text


# What a local process needs from this machine, which a container gets from its image instead.
PROCESS_ONLY = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "VIRTUAL_ENV",
    "GIT_COMMIT",
    "HOST",
    "ESTEIRA_SERVING_HOST",
    "LOCALAWS_WORKDIR",
)


def local_image(image: str) -> bool:
    """The image is in this machine's OCI storage under the name the task definition gives it."""
    if not image or not oci_run.available():
        return False
    return subprocess.run(["podman", "image", "exists", image], capture_output=True).returncode == 0


class EcsPlane:
    def __init__(self, base_env: dict[str, str], workdir: Path, health_path: str = "/ready") -> None:
        self.base_env = base_env
        self.workdir = workdir
        self.health_path = health_path
        self.tasks: dict[str, LocalTask] = {}
        self.services: dict[tuple[str, str], dict[str, Any]] = {}
        self.proxies: dict[tuple[str, str], http.server.ThreadingHTTPServer] = {}
        self.target_connections = TargetConnections()
        # Cloud Map stand-in: a private DNS name -> the (cluster, service) registered under it.
        self.names: dict[str, tuple[str, str]] = {}
        # Names that resolve to something that is not a local ECS task: a load balancer's DNS name (its
        # router), or a service bound to a process outside the emulator (bind_external).
        self.hosts: dict[str, str] = {}
        self.external: dict[tuple[str, str], str] = {}
        self.external_start: dict[tuple[str, str], Callable[[dict[str, str]], None]] = {}
        # (task definition, failure or None, when) last started for each external service.
        self.external_started: dict[tuple[str, str], tuple[str, str | None, float]] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backend: Any = None
        # With IAM enforced (localaws.iam): the task role's credentials, after the execution role's pulls.
        self.identity: Callable[[Any, dict[str, Any]], dict[str, str]] | None = None
        # Seconds a replaced task keeps serving requests already routed to it (ALB deregistration delay).
        self.deregistration_delay = float(os.environ.get("LOCALAWS_DEREGISTRATION_DELAY", "2"))
        # image -> how its tasks ran ("container" or "process"): what the demo reports.
        self.modes: dict[str, str] = {}
        self.label = f"localaws.ecs={os.getpid()}-{id(self)}"
        # Seconds an EC2 capacity provider's host runs no task before managed scaling removes it.
        self.host_idle_seconds = float(os.environ.get("LOCALAWS_HOST_IDLE_SECONDS", "5"))

    # ---- processes
    def start_task(self, task_arn: str, td: Any, overrides: dict[str, Any] | None, service: Any = None) -> LocalTask:
        overrides = overrides or {}
        by_name = {o.get("name"): o for o in overrides.get("containerOverrides", [])}
        task_id = task_arn.rsplit("/", 1)[-1]
        cwd = self.workdir / "tasks" / task_id
        cwd.mkdir(parents=True, exist_ok=True)
        identity = self.identity(td, overrides) if self.identity is not None else {}
        containers = []
        for definition in td.container_definitions:
            name = definition["name"]
            override = by_name.get(name, {})
            ports = {int(m["containerPort"]): free_port() for m in definition.get("portMappings") or []}
            env = {
                **self.base_env,
                **_env_list(definition.get("environment")),
                **_env_list(override.get("environment")),
                **secrets(definition.get("secrets"), td.arn),
                **identity,
            }
            env["ESTEIRA_LOCAL_TASK_ARN"] = task_arn
            log_path = self.workdir / "logs" / f"{task_id}-{name}.log"
            image = str(definition.get("image") or "")
            if local_image(image):
                self.modes[image] = "container"
                containers.append(
                    self._start_container(
                        task_id, td, definition, override, env, ports, log_path, batch=service is None
                    )
                )
                continue
            self.modes[image] = "process"
            for container_port, local in ports.items():
                for var in ("ESTEIRA_SERVING_PORT", "PORT"):  # PORT: task definitions from before the rename
                    if env.get(var) == str(container_port):
                        env[var] = str(local)
            env.setdefault("ECS_CONTAINER_METADATA_URI_V4", "")
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("ab") as log:
                skipped = unhonoured(definition)
                if skipped:  # said where a reader of the task's log looks first
                    note = f"localaws: not honoured by a local process: {json.dumps(skipped, sort_keys=True)}\n"
                    log.write(note.encode())
                    log.flush()
                proc = subprocess.Popen(
                    _command(definition, override),
                    cwd=cwd,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_batch_priority if service is None else None,
                )
            containers.append(LocalContainer(name, bool(definition.get("essential", True)), proc, log_path, ports))
        task = LocalTask(task_arn, td.arn, containers, service)
        with self._lock:
            self.tasks[task_arn] = task
        return task

    def _start_container(
        self,
        task_id: str,
        td: Any,
        definition: dict[str, Any],
        override: dict[str, Any],
        env: dict[str, str],
        ports: dict[int, int],
        log_path: Path,
        *,
        batch: bool = False,
    ) -> LocalContainer:
        """Run one container definition from its image (oci.run), in a network namespace of its own."""
        env = {k: v for k, v in env.items() if k not in PROCESS_ONLY}
        for key in ("NO_PROXY", "no_proxy"):  # the emulator, seen from the container, is reached directly
            if key in env:
                env[key] = f"{env[key]},{oci_run.HOST_FROM_CONTAINER}"
        memory = int(td.memory) if str(getattr(td, "memory", "") or "").isdigit() else None
        run = oci_run.from_definition(
            definition,
            name=f"localaws-{task_id[:12]}-{definition['name']}",
            env=env,
            ports=ports,
            command=override.get("command"),
            memory_mb=memory,
            labels={self.label.split("=")[0]: self.label.split("=")[1]},
            cpu_shares=BATCH_CPU_SHARES if batch else None,
        )
        proc = oci_run.start(run, log_path)
        essential = bool(definition.get("essential", True))
        return LocalContainer(definition["name"], essential, proc, log_path, ports, container=run.name)

    def stop_task(self, task: LocalTask, reason: str, grace: float = 5.0) -> None:
        for c in task.containers:
            if c.container and c.proc.poll() is None:  # SIGTERM in the container, SIGKILL after the grace
                threading.Thread(target=oci_run.stop, args=(c.container, int(max(1, grace))), daemon=True).start()
                continue
            if c.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.proc.pid, 15)
        deadline = time.monotonic() + grace
        for c in task.containers:
            try:  # a container also gets podman's own SIGKILL and removal after the grace
                c.proc.wait(max(0.1, deadline - time.monotonic()) + (10 if c.container else 0))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.proc.pid, 9)
                c.proc.wait(5)
            c.exit_code = c.proc.returncode
        task.stopped, task.stopped_reason = True, task.stopped_reason or reason

    def _poll(self, task: LocalTask) -> None:
        if task.stopped:
            return
        for c in task.containers:
            code = c.proc.poll()
            if code is not None:
                c.exit_code = code
                if c.essential:
                    task.stopped_reason = f"Essential container in task exited ({c.name}: exit code {code})"
                    self.stop_task(task, task.stopped_reason)
                    return
        if not task.healthy:
            port = task.first_port()
            if port is None:
                task.healthy = time.monotonic() - task.started > 1.0
            else:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{self.health_path}", timeout=2) as r:
                        task.healthy = r.status == 200
                except OSError:
                    task.healthy = False

    def sync_moto_task(self, moto_task: Any) -> None:
        """Copy a local task's state into moto's Task, which DescribeTasks serialises."""
        task = self.tasks.get(moto_task.task_arn)
        if task is None:
            return
        self._poll(task)
        moto_task.last_status = "STOPPED" if task.stopped else "RUNNING"
        moto_task.desired_status = "STOPPED" if task.stopped else "RUNNING"
        moto_task.stopped_reason = task.stopped_reason
        if moto_task.containers and task.containers:
            first = moto_task.containers[0]
            first.last_status = moto_task.last_status
            first.exitCode = task.containers[0].exit_code
            first.name = task.containers[0].name

    # ---- services
    def reconcile(self) -> None:
        backend = self._backend
        if backend is None:
            return
        with self._lock:
            for key, svc in list(backend.services.items()):
                cluster, _, name = key.partition(":")
                self._reconcile_service((cluster, name), svc, backend)
            for key in [k for k in self.services if f"{k[0]}:{k[1]}" not in backend.services]:
                for task in self._service_tasks(key):
                    self.stop_task(task, "service deleted")
                self.services.pop(key, None)

    def _service_tasks(self, key: tuple[str, str]) -> list[LocalTask]:
        return [t for t in self.tasks.values() if t.service == key and not t.stopped and not t.draining]

    def _reconcile_service(self, key: tuple[str, str], svc: Any, backend: Any) -> None:
        state = self.services.setdefault(key, {"failures": {}, "created": {}})
        if getattr(svc, "status", "ACTIVE") != "ACTIVE":
            return
        if key in self.external:
            desired = int(svc.desired_count or 0)
            failure = self._start_external(key, svc, backend) if desired else None
            running = 0 if failure is not None else desired
            svc.deployments = [
                {
                    "id": f"ecs-svc/{abs(hash(key)) % 10**12}",
                    "status": "PRIMARY",
                    "taskDefinition": svc.task_definition,
                    "desiredCount": desired,
                    "pendingCount": 0,
                    "runningCount": running,
                    "failedTasks": 0 if failure is None else 1,
                    "rolloutState": "COMPLETED" if failure is None else "FAILED",
                    "rolloutStateReason": failure or f"served outside the emulator at {self.external[key]}",
                    "launchType": svc.launch_type or "FARGATE",
                    "createdAt": state["created"].setdefault(svc.task_definition, time.time()),
                    "updatedAt": time.time(),
                }
            ]
            svc.running_count, svc.pending_count = running, 0
            return
        target = backend.describe_task_definition(svc.task_definition).arn
        desired = int(svc.desired_count or 0)
        for task in [t for t in self.tasks.values() if t.service == key and not t.stopped]:
            self._poll(task)
            if task.stopped and task.task_definition == target:
                state["failures"][target] = state["failures"].get(target, 0) + 1
        tasks = self._service_tasks(key)
        new = [t for t in tasks if t.task_definition == target]
        old = [t for t in tasks if t.task_definition != target]
        failures = state["failures"].get(target, 0)
        state["created"].setdefault(target, time.time())
        if failures >= FAILURE_THRESHOLD:
            rollout, reason = "FAILED", f"ECS deployment circuit breaker: {failures} tasks failed to start"
            for task in new:
                self.stop_task(task, "deployment failed")
            new = []
        else:
            td = backend.describe_task_definition(target)
            for _ in range(desired - len(new)):
                arn = f"arn:aws:ecs:{svc.region_name}:{backend.account_id}:task/{key[0]}/{uuid.uuid4().hex}"
                try:
                    new.append(self.start_task(arn, td, None, service=key))
                except (OSError, ValueError) as exc:
                    state["failures"][target] = state["failures"].get(target, 0) + 1
                    state["last_error"] = str(exc)
            if len(new) > desired:  # scaled in (UpdateService desiredCount): drain the surplus, then stop it
                surplus = sorted(new, key=lambda t: (t.healthy, t.draining_since is None))[: len(new) - desired]
                now = time.monotonic()
                for task in surplus:
                    # Like the target group's deregistration delay: in-flight and already-routed requests finish.
                    task.draining_since = task.draining_since or now
                    if not task.healthy or now - task.draining_since >= DRAIN_SECONDS:
                        self.stop_task(task, "scaled in")
                new = [t for t in new if t not in surplus]
            healthy = [t for t in new if t.healthy]
            if len(healthy) >= desired:
                for task in old:
                    self._drain(task, "replaced by a newer deployment")
                old = []
                rollout, reason = "COMPLETED", "ECS deployment completed."
            else:
                rollout, reason = "IN_PROGRESS", "ECS deployment in progress."
        running_new = len([t for t in new if t.healthy])
        deployments = [
            {
                "id": f"ecs-svc/{abs(hash((key, target))) % 10**12}",
                "status": "PRIMARY",
                "taskDefinition": target,
                "desiredCount": desired,
                "pendingCount": len(new) - running_new,
                "runningCount": running_new,
                "failedTasks": failures,
                "rolloutState": rollout,
                "rolloutStateReason": reason,
                "launchType": svc.launch_type or "FARGATE",
                "createdAt": state["created"][target],
                "updatedAt": time.time(),
            }
        ]
        for td_arn in sorted({t.task_definition for t in old}):
            same = [t for t in old if t.task_definition == td_arn]
            deployments.append(
                {
                    "id": f"ecs-svc/{abs(hash((key, td_arn))) % 10**12}",
                    "status": "ACTIVE",
                    "taskDefinition": td_arn,
                    "desiredCount": 0,
                    "pendingCount": 0,
                    "runningCount": len([t for t in same if t.healthy]),
                    "failedTasks": 0,
                    "rolloutState": "COMPLETED",
                    "launchType": svc.launch_type or "FARGATE",
                    "createdAt": state["created"].get(td_arn, time.time()),
                    "updatedAt": time.time(),
                }
            )
        svc.deployments = deployments
        svc.running_count = sum(d["runningCount"] for d in deployments)
        svc.pending_count = sum(d["pendingCount"] for d in deployments)
        self._ensure_proxy(key)

    def _drain(self, task: LocalTask, reason: str) -> None:
        """As an ALB does: stop routing to the task at once, SIGTERM it after the deregistration delay.

        Stopping first would race the proxy: a request routed to the old task a moment before its
        SIGTERM would find the port closed (a 502 in the middle of a zero-downtime deploy)."""
        if task.draining or task.stopped:
            return
        task.draining = True
        timer = threading.Timer(self.deregistration_delay, self.stop_task, args=(task, reason))
        timer.daemon = True
        timer.start()

    def route(self, key: tuple[str, str]) -> int | None:
        """The local port a request to the service goes to: a healthy primary task, else any healthy task."""
        with self._lock:
            svc = self._backend.services.get(f"{key[0]}:{key[1]}") if self._backend else None
            healthy = [t for t in self._service_tasks(key) if t.healthy and not t.draining]
            tasks = [t for t in healthy if t.draining_since is None] or healthy  # scale-in draining: last resort
            if svc is not None and svc.deployments:
                primary = svc.deployments[0]["taskDefinition"]
                preferred = [t for t in tasks if t.task_definition == primary]
                tasks = preferred or tasks
            for task in tasks:
                port = task.first_port()
                if port:
                    return port
        return None

    def _ensure_proxy(self, key: tuple[str, str]) -> None:
        if key in self.proxies:
            return
        plane = self

        class Proxy(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                return

            def _forward(self) -> None:
                port = plane.route(key)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if port is None:
                    self._reply(503, {"Content-Type": "text/plain"}, b"no healthy targets\n")
                    return
                conn = plane.target_connections.take(port)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "host")}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    hop = ("connection", "transfer-encoding", "keep-alive", "content-length")
                    self._reply(resp.status, {k: v for k, v in resp.getheaders() if k.lower() not in hop}, data)
                except OSError as exc:  # as an ALB: no retry, the target failed: 502
                    conn.close()
                    self._reply(
                        502, {"Content-Type": "text/plain"}, f"bad gateway: {key[1]} target :{port}: {exc}\n".encode()
                    )
                    return
                except http.client.HTTPException:
                    conn.close()
                    raise
                if resp.will_close:
                    conn.close()
                else:
                    plane.target_connections.give(port, conn)

            def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        server = Listener(("127.0.0.1", free_port()), Proxy)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True, name=f"proxy-{key[1]}").start()
        self.proxies[key] = server

    def register_name(self, host: str, cluster: str, service: str) -> None:
        """What an ECS service's `service_registries` (Cloud Map A records) give in AWS: a fixed name for
        the service's tasks. Tasks started afterwards see `http://<host>[:port]` in their environment
        rewritten to the service's local proxy, which answers 503 while the service has no tasks, as the
        name resolves to nothing in AWS then."""
        with self._lock:
            self.names[host] = (cluster.rsplit("/", 1)[-1], service.rsplit("/", 1)[-1])

    def bind_host(self, host: str, url: str) -> None:
        """A DNS name that resolves to `url` here (a load balancer's name -> its local router)."""
        with self._lock:
            self.hosts[host] = url.rstrip("/")

    def bind_external(
        self, cluster: str, service: str, url: str, on_start: Callable[[dict[str, str]], None] | None = None
    ) -> None:
        """Serve an ECS service from a process outside the emulator (one whose dependencies have no local
        data plane, e.g. MLflow's RDS database): no task is started for it, it reports its desired count
        as running, and its Cloud Map name resolves to `url`. Callers must say so where they do it.

        What a task start does before the container runs still happens, once per task definition
        revision: the execution role's checks (image pull, logs, secrets) and the secrets' values, which
        `on_start` receives (MLflow's users are set from them). A refusal or a missing secret fails the
        deployment with AWS's reason, as a task that cannot start would."""
        key = (cluster.rsplit("/", 1)[-1], service.rsplit("/", 1)[-1])
        with self._lock:
            self.external[key] = url.rstrip("/")
            if on_start is not None:
                self.external_start[key] = on_start

    def _start_external(self, key: tuple[str, str], svc: Any, backend: Any) -> str | None:
        """The start of an externally served service's task definition revision (bind_external): None
        when it started (now or before), else why it cannot start."""
        started = self.external_started.get(key)
        # A task that could not start is tried again, as ECS's scheduler does (a role policy may still be
        # on its way: IAM is eventually consistent in AWS too).
        if (
            started is not None
            and started[0] == svc.task_definition
            and (started[1] is None or time.time() - started[2] < EXTERNAL_RETRY_SECONDS)
        ):
            return started[1]
        td = backend.describe_task_definition(svc.task_definition)
        failure: str | None = None
        try:
            if self.identity is not None:
                self.identity(td, {})
            env: dict[str, str] = {}
            for definition in td.container_definitions:
                env.update(secrets(definition.get("secrets"), td.arn))
            hook = self.external_start.get(key)
            if hook is not None:
                hook(env)
        except Exception as exc:  # the reason a task of this revision could not start
            failure = f"{type(exc).__name__}: {exc}"
            log.warning("external service %s/%s cannot start %s: %s", *key, td.arn, failure)
        self.external_started[key] = (svc.task_definition, failure, time.time())
        return failure

    def is_external(self, host: str) -> bool:
        """Whether a private name stands for a process outside the emulator (bind_external)."""
        with self._lock:
            return self.names.get(host) in self.external

    def lookup(self, host: str) -> str | None:
        """The local base URL a private DNS name stands for now, or None (the name does not resolve)."""
        with self._lock:
            if host in self.hosts:
                return self.hosts[host]
            key = self.names.get(host)
            if key is None:
                return None
            if key in self.external:
                return self.external[key]
        return self.service_url(*key)

    def resolve_names(self, env: dict[str, str]) -> dict[str, str]:
        """`http://<name>[:port]` in environment values -> the local URL that name stands for now.

        For in-process functions, whose environment is set per invocation (so resolving at invoke time
        is resolving at request time); tasks and jobs resolve per request through `PrivateDNS`."""
        with self._lock:
            hosts = list(self.hosts) + list(self.names)
        out = dict(env)
        for host in hosts:
            pattern = re.compile(rf"https?://{re.escape(host)}(:\d+)?")
            if any(pattern.search(v) for v in out.values()) and (url := self.lookup(host)):
                out = {k: pattern.sub(url, v) for k, v in out.items()}
        return out

    def register_service_discovery(self, backend: Any, service: Any) -> None:
        """The names a service's `serviceRegistries` give its tasks in AWS: `<service>.<namespace>`."""
        from moto.servicediscovery.models import servicediscovery_backends

        discovery = servicediscovery_backends[backend.account_id][service.region_name]
        for registry in getattr(service, "service_registries", None) or []:
            arn = registry.get("registryArn", "")
            found = next((s for s in discovery.services.values() if s.arn == arn), None)
            if found is None:
                continue
            # Terraform (and CloudFormation) give a DNS service's namespace inside DnsConfig only.
            namespace_id = found.namespace_id or (found.dns_config or {}).get("NamespaceId")
            namespace = discovery.namespaces.get(str(namespace_id))
            if namespace is not None:
                self.register_name(f"{found.name}.{namespace.name}", service.cluster_name, service.name)

    def service_url(self, cluster: str, service: str) -> str:
        key = (cluster.rsplit("/", 1)[-1], service.rsplit("/", 1)[-1])
        with self._lock:
            self._ensure_proxy(key)
            return f"http://127.0.0.1:{self.proxies[key].server_address[1]}"

    # ---- moto patches
    def install(self) -> Any:
        from moto.ecs.exceptions import EcsClientException as ClientException
        from moto.ecs.models import EC2ContainerServiceBackend
        from moto.moto_api import state_manager

        # Task status is driven by the processes, never by moto's clock.
        state_manager.set_transition("ecs::task", {"progression": "manual", "times": 10**9})
        plane = self
        originals = {
            name: getattr(EC2ContainerServiceBackend, name)
            for name in (
                "run_task",
                "describe_tasks",
                "stop_task",
                "describe_services",
                "update_service",
                "create_service",
            )
        }

        calc = EC2ContainerServiceBackend.__dict__["_calculate_task_resource_requirements"]
        from moto.ec2.models.elastic_network_interfaces import NetworkInterface

        if not hasattr(NetworkInterface, "private_dns_name"):  # moto 5.2.5: awsvpc RunTask reads a missing field
            NetworkInterface.private_dns_name = property(  # type: ignore[assignment]
                lambda eni: (
                    eni.__dict__.get("_localaws_dns") or f"ip-{eni.private_ip_address.replace('.', '-')}.ec2.internal"
                ),
                lambda eni, value: eni.__dict__.__setitem__("_localaws_dns", value),
            )

        def calculate(task_definition: Any) -> Any:
            # Fargate task definitions set memory at task level only; moto 5.2.5 adds None and fails.
            saved = task_definition.container_definitions
            task_definition.container_definitions = [
                d if d.get("memory") or d.get("memoryReservation") else {**d, "memory": 0} for d in saved
            ]
            try:
                needs = calc.__func__(task_definition)
            finally:
                task_definition.container_definitions = saved
            # ECS reserves the task-level size on an EC2 host when it is set; moto counts containers only.
            for key, value in (("CPU", task_definition.cpu), ("MEMORY", task_definition.memory)):
                if value:
                    needs[key] = max(int(needs[key]), int(value))
            return needs

        EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(calculate)  # type: ignore[method-assign]

        run_task_signature = inspect.signature(originals["run_task"])

        def run_task(backend: Any, *args: Any, **kwargs: Any) -> Any:
            plane._backend = backend
            call = run_task_signature.bind(backend, *args, **kwargs).arguments
            provider = ec2_capacity.ec2_provider(call.get("capacity_provider_strategy"))
            if provider and not call.get("launch_type"):  # an Auto Scaling group's hosts (localaws.ec2_capacity)
                td = backend.describe_task_definition(call["task_definition_str"])
                try:
                    ec2_capacity.prepare(backend, call["cluster_str"], td, provider)
                except ec2_capacity.CapacityError as exc:
                    raise ClientException(str(exc)) from exc
            tasks = originals["run_task"](backend, *args, **kwargs)
            if provider and not tasks:
                raise ClientException(f"RESOURCE: no host of capacity provider {provider} has room for the task")
            for task in tasks:
                td = backend.describe_task_definition(task.task_definition_arn)
                try:
                    plane.start_task(task.task_arn, td, task.overrides)
                except (OSError, ValueError) as exc:
                    task.last_status, task.desired_status = "STOPPED", "STOPPED"
                    task.stopped_reason = f"CannotStartContainerError: {exc}"
                    continue
                plane.sync_moto_task(task)
            return tasks

        def describe_tasks(backend: Any, *args: Any, **kwargs: Any) -> Any:
            tasks = originals["describe_tasks"](backend, *args, **kwargs)
            for task in tasks:
                plane.sync_moto_task(task)
            return tasks

        def stop_task(backend: Any, cluster_str: str, task_str: str, reason: str) -> Any:
            for arn, task in list(plane.tasks.items()):
                if arn.endswith(task_str.rsplit("/", 1)[-1]):
                    plane.stop_task(task, reason or "stopped by user")
            return originals["stop_task"](backend, cluster_str, task_str, reason)

        def describe_services(backend: Any, *args: Any, **kwargs: Any) -> Any:
            plane._backend = backend
            plane.reconcile()
            return originals["describe_services"](backend, *args, **kwargs)

        def update_service(backend: Any, *args: Any, **kwargs: Any) -> Any:
            plane._backend = backend
            result = originals["update_service"](backend, *args, **kwargs)
            plane.reconcile()
            return result

        def create_service(backend: Any, *args: Any, **kwargs: Any) -> Any:
            plane._backend = backend
            result = originals["create_service"](backend, *args, **kwargs)
            plane.register_service_discovery(backend, result)
            plane.reconcile()
            return result

        EC2ContainerServiceBackend.create_service = create_service  # type: ignore[method-assign,assignment]
        EC2ContainerServiceBackend.run_task = run_task  # type: ignore[method-assign,assignment]
        EC2ContainerServiceBackend.describe_tasks = describe_tasks  # type: ignore[method-assign,assignment]
        EC2ContainerServiceBackend.stop_task = stop_task  # type: ignore[method-assign,assignment]
        EC2ContainerServiceBackend.describe_services = describe_services  # type: ignore[method-assign,assignment]
        EC2ContainerServiceBackend.update_service = update_service  # type: ignore[method-assign,assignment]
        self._thread = threading.Thread(target=self._loop, daemon=True, name="localaws-ecs")
        self._thread.start()

        def undo() -> None:
            for name, fn in originals.items():
                setattr(EC2ContainerServiceBackend, name, fn)
            EC2ContainerServiceBackend._calculate_task_resource_requirements = calc  # type: ignore[method-assign]
            state_manager.unset_transition("ecs::task")

        return undo

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.reconcile()
                if self._backend is not None:
                    ec2_capacity.scale_in_idle(self._backend, self.host_idle_seconds)
            except Exception as exc:  # keep the loop alive; the next pass retries
                print(f"localaws ecs reconcile: {exc!r}", flush=True)

    def shutdown(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        with self._lock:
            for task in self.tasks.values():
                if not task.stopped:
                    self.stop_task(task, "localaws shutting down", grace=3)
            for server in self.proxies.values():
                server.shutdown()
                server.server_close()
            self.proxies.clear()
        if oci_run.available():
            oci_run.remove_labelled(self.label)
