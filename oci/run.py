"""Start a container the way an ECS task definition says, with podman and runc.

`container_argv` turns one container definition (the JSON Terraform writes into
`container_definitions`) into a `podman run` command line; what ECS on Fargate would do and this does:

- image: the definition's, or a local image standing in for it (`image=`, e.g. the one oci.build made);
- entryPoint / command replace the image's ENTRYPOINT / CMD, as Docker and ECS combine them;
- environment, then the secrets (resolved by the caller, as the execution role would), as variables;
- user, workingDirectory, readonlyRootFilesystem (no implicit writable /tmp: podman adds tmpfs
  mounts to read-only containers unless told not to, Fargate does not), and each mountPoint of a task
  volume as an empty writable directory (a tmpfs with /tmp's mode) at its containerPath;
- awsvpc networking: the container gets a network namespace of its own (slirp4netns), its container
  ports published on free host ports; the host is 10.0.2.2 from inside, so URLs in the environment that
  name this host's loopback are rewritten to it (the one thing that differs from the definition);
- the task's memory as a hard limit; stopTimeout as the grace between SIGTERM and SIGKILL;
- CPU: on Fargate every task has vCPUs of its own; here all tasks share this host's cores, so a caller
  may give a batch task (training) the lowest CPU share, and the tasks that answer requests are never
  starved by it (`cpu_shares`, cgroup cpu.shares: only a weight under contention, no limit).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The host's loopback as seen from a slirp4netns namespace (allow_host_loopback=true).
HOST_FROM_CONTAINER = "10.0.2.2"
NETWORK = "slirp4netns:allow_host_loopback=true,port_handler=slirp4netns"
RUNTIME = ["--runtime", "runc"]
ULIMITS = ["--ulimit", "nofile=10000:10000", "--ulimit", "nproc=9000:9000"]
_LOOPBACK = re.compile(r"(?<=://)(?:127\.0\.0\.1|localhost)(?=[:/]|$)")


def available() -> bool:
    """podman and runc are installed: containers can run here."""
    return all(shutil.which(tool) for tool in ("podman", "runc"))


def host_reachable(value: str) -> str:
    """`http://127.0.0.1:4566` -> `http://10.0.2.2:4566`: this host's services, as the container reaches them."""
    return _LOOPBACK.sub(HOST_FROM_CONTAINER, value)


@dataclass
class ContainerRun:
    """One container of a task, as podman will start it."""

    name: str
    image: str
    env: dict[str, str]
    ports: dict[int, int] = field(default_factory=dict)  # container port -> host port
    entrypoint: list[str] | None = None
    command: list[str] | None = None
    user: str | None = None
    workdir: str | None = None
    read_only: bool = False
    writable: list[str] = field(default_factory=list)  # container paths of task volumes
    memory_mb: int | None = None
    stop_timeout: int = 30
    labels: dict[str, str] = field(default_factory=dict)
    mounts: dict[str, str] = field(default_factory=dict)  # host path -> container path, read-only
    cpu_shares: int | None = None

    def argv(self) -> list[str]:
        argv = ["podman", *RUNTIME, "run", "--rm", "--name", self.name, "--network", NETWORK, *ULIMITS]
        argv += ["--stop-timeout", str(self.stop_timeout), "--init=false", "--pull=never"]
        for container_port, host_port in sorted(self.ports.items()):
            argv += ["--publish", f"127.0.0.1:{host_port}:{container_port}"]
        if self.read_only:
            argv += ["--read-only", "--read-only-tmpfs=false"]
        for path in self.writable:
            argv += ["--tmpfs", f"{path}:rw,mode=1777,exec"]
        for host, path in sorted(self.mounts.items()):
            argv += ["--volume", f"{host}:{path}:ro"]
        if self.user:
            argv += ["--user", self.user]
        if self.workdir:
            argv += ["--workdir", self.workdir]
        if self.memory_mb:
            argv += ["--memory", f"{self.memory_mb}m"]
        if self.cpu_shares:
            argv += ["--cpu-shares", str(self.cpu_shares)]
        for key, value in sorted(self.labels.items()):
            argv += ["--label", f"{key}={value}"]
        for key, value in sorted(self.env.items()):
            argv += ["--env", f"{key}={host_reachable(value)}"]
        if self.entrypoint is not None:
            # podman takes the entrypoint as a JSON array; the definition's command then follows the image.
            import json

            argv += ["--entrypoint", json.dumps(self.entrypoint)]
        argv.append(self.image)
        if self.command:
            argv += self.command
        return argv


def from_definition(
    definition: dict[str, Any],
    *,
    name: str,
    env: dict[str, str],
    ports: dict[int, int],
    image: str | None = None,
    command: list[str] | None = None,
    memory_mb: int | None = None,
    labels: dict[str, str] | None = None,
    cpu_shares: int | None = None,
) -> ContainerRun:
    """A container definition as ECS would start it; `env` is its environment with secrets and identity merged."""
    volumes = [str(m["containerPath"]) for m in definition.get("mountPoints") or [] if not m.get("readOnly")]
    return ContainerRun(
        name=name,
        image=image or str(definition["image"]),
        env=env,
        ports=ports,
        entrypoint=list(definition["entryPoint"]) if definition.get("entryPoint") else None,
        command=list(command or definition.get("command") or []) or None,
        user=definition.get("user") or None,
        workdir=definition.get("workingDirectory") or None,
        read_only=bool(definition.get("readonlyRootFilesystem")),
        writable=volumes,
        memory_mb=memory_mb or definition.get("memory") or None,
        stop_timeout=int(definition.get("stopTimeout") or 30),
        labels=labels or {},
        cpu_shares=cpu_shares,
    )


def redacted(argv: list[str]) -> list[str]:
    """The command line with every environment value hidden (secrets arrive as variables)."""
    return [f"{a.split('=', 1)[0]}=***" if i and argv[i - 1] == "--env" else a for i, a in enumerate(argv)]


def start(run: ContainerRun, log: Path) -> subprocess.Popen[bytes]:
    """Start the container attached (the process ends when the container does; its output goes to `log`)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"oci.run: {' '.join(redacted(run.argv()))}\n".encode())
        out.flush()
        return subprocess.Popen(run.argv(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(name: str, timeout: int = 5) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds, then remove: nothing is left running."""
    subprocess.run(["podman", "stop", "--time", str(timeout), name], capture_output=True)
    subprocess.run(["podman", "rm", "--force", "--ignore", name], capture_output=True)


def remove_labelled(label: str) -> None:
    """Remove every container carrying `label` (key=value): what a crashed run left behind."""
    ids = subprocess.run(["podman", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True).stdout
    for cid in ids.split():
        subprocess.run(["podman", "rm", "--force", "--time", "2", cid], capture_output=True)
