"""Lambda data plane: Invoke runs the function's real handler instead of moto's echo.

The handler is taken from the function's image command (`ImageConfig.Command[0]`, as our Terraform
sets it) or from `Handler` for zip functions, as `module.function`. Environment = the function's
variables plus the emulator endpoint and dummy credentials, which is all a Lambda sees in AWS too.

Two modes: "inprocess" (default: fast; invocations are serialised under one lock because the
environment is process-global) and "subprocess" (a fresh interpreter per call: slower, isolated).
Errors come back as AWS does it: `X-Amz-Function-Error: Unhandled` and {errorMessage, errorType,
stackTrace}, so Step Functions names the error after the exception class.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import json
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import boto3

_ENV_LOCK = threading.RLock()
# localaws's own handlers (the .sync runners) read their environment from here instead of os.environ, so
# they run outside the lock: a training task's .sync wait must not hold up every other function.
_BUILTIN_ENV: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("localaws_env", default=None)


def getenv(key: str, default: str | None = None) -> str | None:
    """The invoking function's environment for a builtin handler; os.environ outside one."""
    env = _BUILTIN_ENV.get()
    return (env if env is not None else os.environ).get(key, default)


def environment() -> dict[str, str]:
    env = _BUILTIN_ENV.get()
    return {**os.environ, **(env or {})}


# Handlers localaws itself provides (the .sync task runners), keyed by handler path.
BUILTIN_HANDLERS: dict[str, Callable[[dict[str, Any], Any], Any]] = {}


class _ThreadSession:
    """boto3's default session, per thread. In-process functions run in the emulator's request threads
    while the driver (the demo, a test) calls the same product code from its own threads: each must
    sign with its own credentials, so the default session is chosen per thread, and the process's
    own session (credentials resolved when this is installed, from the driver's environment) is the
    fallback."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._process: boto3.Session | None = None

    def install(self) -> None:
        if boto3.DEFAULT_SESSION is self:
            return
        self._process = boto3.DEFAULT_SESSION or boto3.Session()
        self._process.get_credentials()  # resolved now, not inside a function's patched environment
        boto3.DEFAULT_SESSION = self  # type: ignore[assignment]

    @contextlib.contextmanager
    def use(self, session: boto3.Session) -> Iterator[None]:
        self.install()
        saved = getattr(self._local, "session", None)
        self._local.session = session
        try:
            yield
        finally:
            self._local.session = saved

    def uninstall(self) -> None:
        if boto3.DEFAULT_SESSION is self:
            boto3.DEFAULT_SESSION = self._process

    def __getattr__(self, name: str) -> Any:
        session = getattr(self._local, "session", None) or self._process or boto3.Session()
        return getattr(session, name)


_THREAD_SESSION = _ThreadSession()


def handler_path(fn: Any) -> str:
    command = getattr(getattr(fn, "image_config", None), "cmd", None)
    if command:
        return str(command[0])
    handler = getattr(fn, "handler", None)
    if not handler:
        raise ValueError(f"function {fn.function_name} has neither ImageConfig.Command nor Handler")
    return str(handler)


# This process's own MLflow credential (a test driver, the demo acting as an operator) is never a
# function's: in AWS a function has only its environment, and reads its own (lambdas/_runtime.py).
HIDDEN = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


@contextlib.contextmanager
def patched_environ(env: dict[str, str]) -> Iterator[None]:
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in (*env, *HIDDEN)}
        for k in HIDDEN:
            os.environ.pop(k, None)
        os.environ.update(env)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _resolve(path: str) -> Callable[[dict[str, Any], Any], Any]:
    if path in BUILTIN_HANDLERS:
        return BUILTIN_HANDLERS[path]
    module_name, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(exc)[:20000],
        "errorType": getattr(exc, "error_type", type(exc).__name__),
        "stackTrace": traceback.format_exception(exc)[-8:],
    }


class LambdaRuntime:
    def __init__(self, base_env: dict[str, str], mode: str = "inprocess") -> None:
        if mode not in ("inprocess", "subprocess"):
            raise ValueError(f"lambda mode {mode!r}: use 'inprocess' or 'subprocess'")
        self.base_env = base_env
        self.mode = mode
        self.invocations: list[dict[str, Any]] = []
        # Private DNS names in the function's environment -> local URLs (LocalAWS sets the ECS plane's).
        self.resolve: Callable[[dict[str, str]], dict[str, str]] = dict
        # With IAM enforced (localaws.iam): a function's credentials from its execution role, and the
        # state machine role's for the .sync runners, which stand in for Step Functions itself.
        self.identity: Callable[[Any], dict[str, str]] | None = None
        self.builtin_identity: Callable[[], dict[str, str]] | None = None
        self._sessions: dict[str, boto3.Session] = {}

    def invoke(self, fn: Any, payload: Any, asynchronous: bool = False) -> tuple[bytes, bool]:
        """Run one invocation; returns (payload bytes, errored).

        Asynchronous invocations (EventBridge rules and schedules) run in a process of their own, as each
        Lambda does in AWS: an in-process function shares os.environ, so in-process invocations take
        turns, and a scheduled function waiting on a slow dependency would stall every workflow step."""
        path = handler_path(fn)
        env = self.resolve({**self.base_env, **(getattr(fn, "environment_vars", None) or {})})
        env["AWS_LAMBDA_FUNCTION_NAME"] = fn.function_name
        event = payload if not isinstance(payload, str) else json.loads(payload or "{}")
        try:
            if path in BUILTIN_HANDLERS and self.builtin_identity is not None:
                env.update(self.builtin_identity())
            elif path not in BUILTIN_HANDLERS and self.identity is not None:
                env.update(self.identity(fn))
        except Exception as exc:  # the role is missing or does not trust Lambda: the function cannot run
            self.invocations.append({"function": fn.function_name, "handler": path, "errored": True})
            return json.dumps(_error(exc)).encode(), True
        if path in BUILTIN_HANDLERS:
            token = _BUILTIN_ENV.set(env)
            try:
                result, errored = BUILTIN_HANDLERS[path](event, None), False
            except Exception as exc:
                result, errored = _error(exc), True
            finally:
                _BUILTIN_ENV.reset(token)
        elif self.mode == "subprocess" or asynchronous:
            timeout = float(getattr(fn, "timeout", None) or 900)
            result, errored = self._subprocess(path, env, event, timeout)
        else:
            # boto3's default session keeps the first credentials it resolved: the function signs
            # with its own role through a session kept per credentials, for this thread only (the
            # driver's threads keep theirs; a new session per call would reload botocore's models).
            with patched_environ(env), self._own_session(env):
                try:
                    result, errored = _resolve(path)(event, None), False
                except Exception as exc:
                    result, errored = _error(exc), True
        self.invocations.append({"function": fn.function_name, "handler": path, "errored": errored})
        return json.dumps(result, default=str).encode(), errored

    def _own_session(self, env: dict[str, str]) -> contextlib.AbstractContextManager[None]:
        """With per-function credentials (IAM enforced), this thread's boto3 session for them."""
        if self.identity is None:
            return contextlib.nullcontext()
        key = env.get("AWS_ACCESS_KEY_ID", "")
        session = self._sessions.get(key) or self._sessions.setdefault(key, boto3.Session())
        return _THREAD_SESSION.use(session)

    def _subprocess(self, path: str, env: dict[str, str], event: Any, timeout: float = 900) -> tuple[Any, bool]:
        from localaws.lambda_worker import INIT_SECONDS

        full_env = {**{k: v for k, v in os.environ.items() if k not in HIDDEN}, **env}
        if env.get("LOCALAWS_PRIVATE_DNS"):  # private names resolve per request, as for tasks
            from localaws.private_dns import proxy_env

            full_env.update(proxy_env(env["LOCALAWS_PRIVATE_DNS"]))
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "localaws.lambda_worker", path, str(timeout)],
                input=json.dumps(event),
                capture_output=True,
                text=True,
                env=full_env,
                # The worker times init and the handler as AWS does; this only stops a worker that hangs.
                timeout=INIT_SECONDS + timeout + 5,
                check=False,
            )
        except subprocess.TimeoutExpired:
            message = f"Task timed out after {timeout:.2f} seconds"
            return {"errorMessage": message, "errorType": "Sandbox.Timedout", "stackTrace": []}, True
        sys.stderr.write(proc.stderr[-4000:])
        try:
            out = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            return {"errorMessage": proc.stderr[-2000:], "errorType": "Runtime.ExitError", "stackTrace": []}, True
        return out["result"], bool(out["errored"])


def install(runtime: LambdaRuntime) -> Callable[[], None]:
    """Patch moto's LambdaBackend.invoke; returns the function that undoes it."""
    from moto.awslambda.models import LambdaBackend
    from moto.awslambda_simple.models import LambdaSimpleBackend

    original, original_simple = LambdaBackend.invoke, LambdaSimpleBackend.invoke

    def invoke(
        self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> bytes | None:
        fn = self.get_function(function_name, qualifier)
        asynchronous = headers.get("x-amz-invocation-type", "RequestResponse") == "Event"
        payload, errored = runtime.invoke(fn, body, asynchronous=asynchronous)
        if errored:
            response_headers["x-amz-function-error"] = "Unhandled"
        if headers.get("x-amz-invocation-type", "RequestResponse") == "Event":
            return b""
        response_headers["Content-Length"] = str(len(payload))
        return payload

    # Without Docker moto serves Lambda from LambdaSimpleBackend, which echoes; patch both.
    LambdaBackend.invoke = invoke  # type: ignore[method-assign]
    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]

    def undo() -> None:
        LambdaBackend.invoke = original  # type: ignore[method-assign]
        LambdaSimpleBackend.invoke = original_simple  # type: ignore[method-assign]
        _THREAD_SESSION.uninstall()

    return undo
