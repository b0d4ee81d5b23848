"""Run the Lambda image the way Lambda runs a function of it, with podman and runc, and invoke it.

    fn = start(image, FunctionConfig.from_terraform(values, environment=env), credentials=creds)
    fn.invoke({"action": "acquire", "owner": "x"})   # -> the handler's result (a JSON object)
    fn.stop()

The configuration is one function's, in either of two shapes (`FunctionConfig` reads both):
- `from_terraform`: the values of an `aws_lambda_function` in a plan or state (`tofu show -json`:
  a resource change's `after`, or a state resource's `values`); nested blocks are lists there
  (`image_config: [{command: [...]}]`, `environment: [{variables: {...}}]`). At plan time the
  environment is unknown when a value names a resource not created yet: pass `environment=`.
- `from_lambda_api`: boto3 `get_function()` (or `get_function_configuration()`) output.

What Lambda does and `start` does too:
- the image's ENTRYPOINT with `image_config.command` as its arguments (the handler: the stand-in's and
  AWS's /lambda-entrypoint.sh take exactly one); `entry_point` / `working_directory` when set;
- the function runs as an unprivileged user whatever the image's USER says: uid 993, gid 990, what a
  function's process reports inside Lambda (sbx_user1051). So every file of the image must be readable
  by "other", and nothing can be written but /tmp;
- a read-only root filesystem with one writable /tmp of the function's ephemeral storage (512 MB by
  default), a tmpfs here (podman's implicit tmpfs mounts for read-only containers are turned off);
- memory_size as the hard memory limit with no swap, and CPU in proportion to it (Lambda gives one
  vCPU at 1,769 MB); Lambda's quotas as rlimits: 1,024 file descriptors and 1,024 processes/threads;
- the function's environment variables, then the ones Lambda reserves (AWS_LAMBDA_FUNCTION_NAME,
  _MEMORY_SIZE, _VERSION, AWS_REGION, the log group and stream, ...) and the execution role's
  credentials (`credentials=`: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).
What differs: no AWS_LAMBDA_RUNTIME_API is given, so the entrypoint puts the Runtime Interface
Emulator in front of the runtime (it enforces the timeout, read from AWS_LAMBDA_FUNCTION_TIMEOUT, which
Lambda itself does not set), invoked over HTTP at POST /2015-03-31/functions/function/invocations;
the container has its own network namespace (slirp4netns) with that port published on this host's
loopback, and environment values naming this host's loopback are rewritten to 10.0.2.2, the host as
the container reaches it (oci.run.host_reachable; `environment=` is how a test adds AWS_ENDPOINT_URL).

A failure raises FunctionError naming the image, the function and the setting that broke it (memory_size
when the container was OOM-killed, timeout, image_config.command when the handler cannot be imported).
`cold_start_seconds` times container start -> first invocation answered; `measure_cold_start` (the
image benchmark, benchmarks/images.py) adds a warm invocation of the same container.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from oci.run import NETWORK, RUNTIME, host_reachable, remove_labelled

# The identity a function's process has inside Lambda (sbx_user1051); Lambda ignores the image's USER.
LAMBDA_UID, LAMBDA_GID = 993, 990
# Lambda quotas: 1,024 file descriptors, 1,024 execution processes/threads (also below this host's limits,
# which podman's defaults are not).
LAMBDA_ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
# Lambda allocates CPU in proportion to memory: one vCPU at 1,769 MB.
MB_PER_VCPU = 1769
RIE_PORT = 8080
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
# Lambda's defaults for a function created without these settings.
DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, DEFAULT_EPHEMERAL_MB = 128, 3, 512
LABEL = "esteira.function"
# awslambdaric's errors for a handler it cannot find or import: the command names the wrong thing.
_COMMAND_ERRORS = {"Runtime.ImportModuleError", "Runtime.HandlerNotFound", "Runtime.MalformedHandlerName"}
# No proxy for this host's loopback, whatever the environment says (this network's TLS proxy is for PyPI).
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class FunctionError(RuntimeError):
    """A function could not start or its invocation failed; `setting` names the configuration at fault."""

    def __init__(self, message: str, *, image: str, function: str, setting: str, detail: str = "") -> None:
        self.image, self.function, self.setting, self.detail = image, function, setting, detail
        text = f"{function} from image {image}: {message} (setting: {setting})"
        super().__init__(f"{text}\n{detail}" if detail else text)


def _block(values: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The first (only) instance of a nested block in Terraform's JSON values, {} when absent or unknown."""
    blocks = values.get(name)
    if isinstance(blocks, list) and blocks and isinstance(blocks[0], dict):
        return dict(blocks[0])
    return dict(blocks) if isinstance(blocks, dict) else {}


@dataclass(frozen=True)
class FunctionConfig:
    """What of a function's configuration decides how its container runs."""

    name: str
    command: list[str] | None  # image_config.command: the entrypoint's arguments (the handler); None: the image's CMD
    memory_size: int = DEFAULT_MEMORY_MB
    timeout: int = DEFAULT_TIMEOUT_S
    environment: dict[str, str] = field(default_factory=dict)
    ephemeral_storage: int = DEFAULT_EPHEMERAL_MB  # MB of /tmp
    entry_point: list[str] | None = None
    working_directory: str | None = None
    region: str = "us-east-1"
    log_group: str | None = None

    @property
    def handler(self) -> str:
        return " ".join(self.command or []) or "(the image's CMD)"

    @classmethod
    def from_terraform(
        cls, values: Mapping[str, Any], *, environment: Mapping[str, str] | None = None
    ) -> FunctionConfig:
        """From an aws_lambda_function's planned or applied values. `environment` replaces the planned
        variables, which a plan leaves unknown while any value names a resource still to be created."""
        image = _block(values, "image_config")
        variables = _block(values, "environment").get("variables")
        storage = _block(values, "ephemeral_storage").get("size")
        return cls(
            name=str(values["function_name"]),
            command=list(image["command"]) if image.get("command") else None,
            memory_size=int(values.get("memory_size") or DEFAULT_MEMORY_MB),
            timeout=int(values.get("timeout") or DEFAULT_TIMEOUT_S),
            environment=dict(environment if environment is not None else variables or {}),
            ephemeral_storage=int(storage or DEFAULT_EPHEMERAL_MB),
            entry_point=list(image["entry_point"]) if image.get("entry_point") else None,
            working_directory=image.get("working_directory") or None,
            region=str(values.get("region") or "us-east-1"),
            log_group=_block(values, "logging_config").get("log_group") or None,
        )

    @classmethod
    def from_lambda_api(cls, response: Mapping[str, Any]) -> FunctionConfig:
        """From boto3 `lambda.get_function()` (its Configuration) or `get_function_configuration()`."""
        conf = response.get("Configuration", response)
        image = (conf.get("ImageConfigResponse") or {}).get("ImageConfig") or {}
        arn = str(conf.get("FunctionArn") or "")
        return cls(
            name=str(conf["FunctionName"]),
            command=list(image["Command"]) if image.get("Command") else None,
            memory_size=int(conf.get("MemorySize") or DEFAULT_MEMORY_MB),
            timeout=int(conf.get("Timeout") or DEFAULT_TIMEOUT_S),
            environment=dict((conf.get("Environment") or {}).get("Variables") or {}),
            ephemeral_storage=int((conf.get("EphemeralStorage") or {}).get("Size") or DEFAULT_EPHEMERAL_MB),
            entry_point=list(image["EntryPoint"]) if image.get("EntryPoint") else None,
            working_directory=image.get("WorkingDirectory") or None,
            region=arn.split(":")[3] if arn.count(":") >= 3 else "us-east-1",
            log_group=(conf.get("LoggingConfig") or {}).get("LogGroup") or None,
        )

    def lambda_environment(self, credentials: Mapping[str, str] | None = None) -> dict[str, str]:
        """The function's variables, then what Lambda sets itself (reserved names win, as Lambda refuses
        them in a configuration), then the credentials."""
        stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        env = dict(self.environment)
        env.update(
            AWS_LAMBDA_FUNCTION_NAME=self.name,
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(self.memory_size),
            AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
            AWS_LAMBDA_FUNCTION_TIMEOUT=str(self.timeout),  # for the RIE, which enforces it
            AWS_LAMBDA_INITIALIZATION_TYPE="on-demand",
            AWS_LAMBDA_LOG_GROUP_NAME=self.log_group or f"/aws/lambda/{self.name}",
            AWS_LAMBDA_LOG_STREAM_NAME=stream,
            AWS_REGION=self.region,
            AWS_DEFAULT_REGION=self.region,
        )
        env.update(credentials or {})
        return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_argv(image: str, config: FunctionConfig, *, name: str, port: int, env: Mapping[str, str]) -> list[str]:
    """The `podman run` command line that starts `config`'s function from `image` (detached)."""
    argv = ["podman", *RUNTIME, "run", "--detach", "--name", name, "--label", f"{LABEL}={config.name}"]
    argv += ["--pull=never", "--init=false", "--network", NETWORK, "--publish", f"127.0.0.1:{port}:{RIE_PORT}"]
    argv += [*LAMBDA_ULIMITS, "--user", f"{LAMBDA_UID}:{LAMBDA_GID}"]
    argv += ["--read-only", "--read-only-tmpfs=false"]
    argv += ["--tmpfs", f"/tmp:rw,exec,mode=1777,size={config.ephemeral_storage}m"]
    argv += ["--memory", f"{config.memory_size}m", "--memory-swap", f"{config.memory_size}m"]
    argv += ["--cpus", f"{config.memory_size / MB_PER_VCPU:.3f}"]
    if config.working_directory:
        argv += ["--workdir", config.working_directory]
    if config.entry_point:
        argv += ["--entrypoint", json.dumps(config.entry_point)]
    for key, value in sorted(env.items()):
        argv += ["--env", f"{key}={host_reachable(value)}"]
    argv.append(image)
    return argv + list(config.command or [])


@dataclass
class LambdaContainer:
    """One function's running container; `invoke` waits for the runtime interface on first use."""

    image: str
    config: FunctionConfig
    name: str
    port: int
    started: float  # time.monotonic() just before `podman run`
    first_answer: float | None = None  # seconds from `started` to the first invocation answered
    ready_timeout: float = 120.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{INVOKE_PATH}"

    def cold_start(self) -> float:
        """Seconds from `podman run` to the first invocation answered (after one has been)."""
        if self.first_answer is None:
            raise RuntimeError(f"{self.name} has not answered an invocation yet")
        return self.first_answer

    def _fail(self, message: str, setting: str, detail: str = "") -> FunctionError:
        logs = self.logs(tail=40)
        return FunctionError(
            message, image=self.image, function=self.config.name, setting=setting, detail=(detail + "\n" + logs).strip()
        )

    def state(self) -> dict[str, Any]:
        out = subprocess.run(
            ["podman", "inspect", "--format", "{{json .State}}", self.name], capture_output=True, text=True
        )
        return dict(json.loads(out.stdout)) if out.returncode == 0 and out.stdout.strip() else {}

    def logs(self, tail: int | None = None) -> str:
        argv = ["podman", "logs", *(["--tail", str(tail)] if tail else []), self.name]
        out = subprocess.run(argv, capture_output=True, text=True)
        return (out.stdout + out.stderr).strip()

    def _memory(self) -> str:
        return f"memory_size={self.config.memory_size} MB"

    def _exited(self) -> FunctionError | None:
        state = self.state()
        if not state or state.get("Running"):
            return None
        code = state.get("ExitCode")
        if state.get("OOMKilled") or code == 137:
            return self._fail(
                f"the container was killed (exit {code}, OOM-killed: {state.get('OOMKilled')})", self._memory()
            )
        if code == 142:
            return self._fail(
                f"the entrypoint takes the handler as its one argument, got {self.config.command!r}",
                "image_config.command",
            )
        return self._fail(f"the container exited with status {code} before answering", "image / entry_point")

    def invoke(self, payload: Any, *, timeout: float | None = None) -> dict[str, Any]:
        """Invoke once (as a synchronous Invoke) and return the handler's result, a JSON object. Until the
        first answer, a refused or reset connection means the runtime interface is not up yet: retried."""
        body = json.dumps(payload).encode()
        deadline = time.monotonic() + self.ready_timeout
        while True:
            request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
            try:
                with _DIRECT.open(request, timeout=timeout or self.config.timeout + 30) as response:
                    status, raw = response.status, response.read()
                break
            except urllib.error.HTTPError as exc:
                status, raw = exc.code, exc.read()
                break
            except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                if isinstance(reason, TimeoutError):
                    raise self._fail(f"no answer: {reason}", f"timeout={self.config.timeout} s") from exc
                if self.first_answer is not None:  # it answered before: no start-up race
                    raise self._exited() or self._fail(f"invocation failed: {reason}", "image") from exc
                exited = self._exited()
                if exited is not None:
                    raise exited from exc
                if time.monotonic() > deadline:
                    message = f"no runtime interface on port {RIE_PORT} after {self.ready_timeout:.0f} s: {reason}"
                    raise self._fail(message, "image") from exc
                time.sleep(0.05)
        if self.first_answer is None:
            self.first_answer = time.monotonic() - self.started
        return self._result(status, raw)

    def _result(self, status: int, raw: bytes) -> dict[str, Any]:
        text = raw.decode(errors="replace")
        if text.startswith("Task timed out"):
            raise self._fail(text, f"timeout={self.config.timeout} s")
        try:
            result = json.loads(text) if text else None
        except json.JSONDecodeError:
            result = None
        if isinstance(result, dict) and "errorType" in result and "errorMessage" in result:
            # The handler raised (HTTP 200), or the runtime could not start it (the RIE answers 502).
            kind, detail = str(result["errorType"]), str(result["errorMessage"])
            message, trace = f"{kind}: {detail}", "".join(result.get("stackTrace") or [])
            if kind in _COMMAND_ERRORS:
                raise self._fail(message, f"image_config.command={self.config.command}", trace)
            if kind.startswith("Runtime."):  # the runtime process died: out of memory is the usual cause
                oom = bool(self.state().get("OOMKilled")) or "signal: killed" in detail
                raise self._fail(message, self._memory() if oom else "image", trace)
            raise self._fail(message, f"handler {self.config.handler}", trace)
        if status // 100 != 2 or result is None:
            raise self._exited() or self._fail(f"HTTP {status} from the runtime interface: {text[:500]!r}", "image")
        if not isinstance(result, dict):
            raise self._fail(f"the handler returned {type(result).__name__}, not a JSON object", "handler")
        return result

    def exec(self, argv: list[str], *, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a command in the function's container, as its user (a check, not something Lambda offers)."""
        return subprocess.run(["podman", "exec", self.name, *argv], capture_output=True, text=True, timeout=timeout)

    def stop(self) -> None:
        """Remove the container (SIGKILL after 2 s): nothing is left behind. Safe to call twice."""
        subprocess.run(["podman", "rm", "--force", "--time", "2", "--ignore", self.name], capture_output=True)

    def __enter__(self) -> LambdaContainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(
    image: str,
    config: FunctionConfig,
    *,
    credentials: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
    ready_timeout: float = 120.0,
) -> LambdaContainer:
    """Start `config`'s function from `image`. `credentials` are the execution role's (none by default:
    the caller's own are never passed implicitly); `environment` adds local overrides to the function's
    variables (e.g. AWS_ENDPOINT_URL of an emulator), below the reserved ones."""
    merged = replace(config, environment={**config.environment, **(environment or {})})
    port = free_port()
    name = f"esteira-fn-{config.name}-{port}"
    argv = run_argv(image, merged, name=name, port=port, env=merged.lambda_environment(credentials))
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        subprocess.run(["podman", "rm", "--force", "--ignore", name], capture_output=True)
        secret = ("AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=")
        shown = " ".join(a.split("=", 1)[0] + "=***" if a.startswith(secret) else a for a in argv)
        raise FunctionError(
            f"podman run failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}",
            image=image,
            function=config.name,
            setting="the container settings: " + shown,
        )
    return LambdaContainer(image, merged, name, port, started, ready_timeout=ready_timeout)


def cold_start_seconds(
    image: str,
    config: FunctionConfig,
    payload: Any,
    *,
    credentials: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
) -> float:
    """Seconds from `podman run` of a new container to its first invocation answered (successfully)."""
    fn = start(image, config, credentials=credentials, environment=environment)
    try:
        fn.invoke(payload)
        return fn.cold_start()
    finally:
        fn.stop()


# ---- the image benchmark's probe: the lock function against an emulated DynamoDB -------------------------
PROBE_TABLE = "esteira-bench-workflow-lock"
# Sized as infra/terraform/modules/workflow var.functions sizes `lock`.
PROBE_CONFIG = FunctionConfig(
    name="esteira-bench-lock",
    command=["lambdas.lock.handler"],
    memory_size=512,
    timeout=30,
    environment={"ESTEIRA_LOCK_TABLE": PROBE_TABLE},
)
PROBE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


@contextmanager
def _probe_dynamodb() -> Iterator[str]:
    """moto (a dev dependency) on this host's loopback with the probe's lock table: its endpoint URL."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    quiet = logging.getLogger("werkzeug")  # one access-log line per request otherwise
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        ddb = boto3.client(
            "dynamodb",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=PROBE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=PROBE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=PROBE_CREDENTIALS["AWS_SESSION_TOKEN"],
        )
        ddb.create_table(
            TableName=PROBE_TABLE,
            AttributeDefinitions=[{"AttributeName": "lock_id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "lock_id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield url
    finally:
        server.stop()
        quiet.setLevel(level)


def measure_cold_start(image: str, runs: int = 1) -> dict[str, float]:
    """Cold start (container start -> first invocation answered) and a warm invocation of the same
    container, for the lock function acquiring and releasing the lock in an emulated DynamoDB: the
    runtime's init, the handler's imports and one real AWS call (median of `runs` containers)."""
    cold: list[float] = []
    warm: list[float] = []
    with _probe_dynamodb() as endpoint:
        for i in range(runs):
            fn = start(image, PROBE_CONFIG, credentials=PROBE_CREDENTIALS, environment={"AWS_ENDPOINT_URL": endpoint})
            try:
                fn.invoke({"action": "acquire", "owner": f"bench-{i}"})
                cold.append(fn.cold_start())
                t = time.monotonic()
                fn.invoke({"action": "release", "owner": f"bench-{i}"})
                warm.append(time.monotonic() - t)
            finally:
                fn.stop()
    return {"cold_s": round(sorted(cold)[len(cold) // 2], 3), "warm_s": round(sorted(warm)[len(warm) // 2], 4)}


def remove_leftovers() -> None:
    """Remove the function containers a crashed run left behind (labelled esteira.function)."""
    remove_labelled(LABEL)


if __name__ == "__main__":  # python -m oci.function [IMAGE]: the benchmark's probe (default: the lambdas image)
    import sys

    from oci import build

    print(json.dumps(measure_cold_start(sys.argv[1] if len(sys.argv) > 1 else build.ensure("lambdas").ref)))
