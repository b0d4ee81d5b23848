"""LocalAWS: one object that starts moto's server on 127.0.0.1 with the missing data planes installed.

    aws = LocalAWS().start()        # -> aws.endpoint_url, e.g. http://127.0.0.1:43117
    ...                             # boto3 clients with endpoint_url=aws.endpoint_url
    aws.stop()                      # stops local tasks, proxies, the server; undoes the patches

moto runs in this process (ThreadedMotoServer), which is what lets localaws patch its backends.
MOTO_PORT is set to the chosen port because moto's Step Functions interpreter calls other services
at http://localhost:$MOTO_PORT. Only one LocalAWS may run per process (moto's state is global).
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from localaws import alarms, codepipeline, ec2_capacity, iam, lambdas, missing_apis, s3policy, sfn
from localaws.atomic import serialise_dynamodb_writes
from localaws.cbor import CborBridge
from localaws.ecs import EcsPlane, free_port
from localaws.emf import EmfShipper
from localaws.private_dns import PrivateDNS
from localaws.schedule import Scheduler

MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "localaws", "AWS_SECRET_ACCESS_KEY": "localaws", "AWS_SESSION_TOKEN": "localaws"}
_ACTIVE: list[LocalAWS] = []


class LocalAWS:
    def __init__(
        self,
        *,
        region: str = "us-east-1",
        port: int | None = None,
        workdir: str | Path | None = None,
        lambda_mode: str = "inprocess",
        health_path: str = "/ready",
        time_scale: float | None = None,
        enforce_iam: bool = False,
    ) -> None:
        self.region = region
        # Schedule rules fire time_scale times faster than written (schedule.py); env LOCALAWS_TIME_SCALE.
        self.time_scale = time_scale if time_scale is not None else float(os.environ.get("LOCALAWS_TIME_SCALE", "1"))
        self.scheduler: Scheduler | None = None
        self.emf: EmfShipper | None = None
        self.port = port
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="localaws-"))
        self.lambda_mode = lambda_mode
        self.health_path = health_path
        self.endpoint_url = ""
        self._server: Any = None
        self._undo: list[Callable[[], None]] = []
        self._saved_env: dict[str, str | None] = {}
        self.ecs: EcsPlane | None = None
        self.lambda_runtime: lambdas.LambdaRuntime | None = None
        self._fn_lock = threading.Lock()
        self.routers: dict[str, Any] = {}  # load balancer DNS name -> its WeightedRouter
        # IAM as AWS enforces it (localaws.iam): every unit calls with its own role's credentials.
        self.enforce_iam = enforce_iam
        self.iam: iam.Enforcer | None = None

    # ---- lifecycle
    def env(self) -> dict[str, str]:
        """What a process needs to talk to this emulator: the endpoint, a region and dummy credentials."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            **CREDENTIALS,
        }

    def process_env(self) -> dict[str, str]:
        """Base environment of local ECS tasks: the emulator's plus what a process needs to start at all.

        Nothing of this machine's configuration leaks in (ESTEIRA_DATA_DIR, MLFLOW_*): a task sees what
        its task definition gives it, as in AWS, so a step that would reach the internet fails here too."""
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "GIT_COMMIT")
        base = {k: os.environ[k] for k in keep if k in os.environ}
        bindir = str(Path(sys.executable).parent)
        base["PATH"] = bindir + os.pathsep + base.get("PATH", "/usr/bin:/bin")
        base["LOCALAWS_WORKDIR"] = str(self.workdir)
        # Servers bind loopback unless the container definition says otherwise (model.serving reads this).
        base["ESTEIRA_SERVING_HOST"] = "127.0.0.1"
        return {**base, **self.env()}

    def start(self) -> LocalAWS:
        if _ACTIVE:
            raise RuntimeError("a LocalAWS is already running in this process (moto's state is global)")
        from moto.server import ThreadedMotoServer

        serialise_dynamodb_writes()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.port = self.port or free_port()
        self._saved_env = {k: os.environ.get(k) for k in ("MOTO_PORT", "MOTO_IAM_LOAD_MANAGED_POLICIES")}
        os.environ["MOTO_PORT"] = str(self.port)
        # AWS managed policies exist in every account: the stack attaches several (ECS task execution, ...).
        os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        wsgi = self._server._server
        wsgi.app = CborBridge(wsgi.app)  # CloudWatch as the Go SDK (the provider) calls it
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        req = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/config",
            data=json.dumps(MOTO_CONFIG).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=10).read()
        self.lambda_runtime = lambdas.LambdaRuntime(
            self.env() | {"LOCALAWS_WORKDIR": str(self.workdir)}, self.lambda_mode
        )
        for path in sfn.HANDLERS.values():
            module, _, attr = path.rpartition(".")
            lambdas.BUILTIN_HANDLERS[path] = getattr(sys.modules[module], attr)
        self._undo.append(lambdas.install(self.lambda_runtime))
        self.ecs = EcsPlane(self.process_env(), self.workdir, self.health_path)
        self.dns = PrivateDNS(self.ecs.lookup, self.ecs.is_external).start()
        self._undo.append(self.dns.stop)
        self.ecs.base_env.update(self.dns.env())  # tasks resolve private names per request
        self.lambda_runtime.base_env["LOCALAWS_PRIVATE_DNS"] = self.dns.url  # ...and so do training jobs
        self.lambda_runtime.resolve = self.ecs.resolve_names  # functions resolve at invoke time
        self._undo.append(self.ecs.install())
        self._undo.append(sfn.install(self._ensure_sync_functions))
        self._undo.append(alarms.install(self))
        self._undo.append(codepipeline.install(self))  # runs pipelines (after alarms: wraps its rule delivery)
        self._undo.append(s3policy.install())
        self._undo.append(missing_apis.install())
        if self.enforce_iam:
            self._enforce_iam()
        self.scheduler = Scheduler(self, self.time_scale).start()
        self._undo.append(self.scheduler.stop)
        self.emf = EmfShipper(self, self.workdir / "logs").start()
        self._undo.append(self.emf.stop)
        _ACTIVE.append(self)
        return self

    def stop(self) -> None:
        if self.ecs is not None:
            self.ecs.shutdown()
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        if self._server is not None:
            self._server.stop()
            self._server = None
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _enforce_iam(self) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID

        assert self.lambda_runtime is not None and self.ecs is not None
        enforcer = self.iam = iam.Enforcer(DEFAULT_ACCOUNT_ID, self.region)
        self._undo.append(iam.install(enforcer))
        self.lambda_runtime.identity = enforcer.function_environment
        self.lambda_runtime.builtin_identity = lambda: enforcer.credentials(
            enforcer.state_machine_role(), "states.amazonaws.com", "states"
        )
        self.ecs.identity = enforcer.task_environment
        sfn.training_identity = enforcer.training_environment
        ec2_capacity.authorize_role = enforcer.authorize_role

        def undo() -> None:
            sfn.training_identity = None
            ec2_capacity.authorize_role = None

        self._undo.append(undo)

    def iam_report(self) -> dict[str, Any]:
        """Per role, the actions the stack's units were allowed and refused (empty without enforcement)."""
        return self.iam.report() if self.iam is not None else {}

    def __enter__(self) -> LocalAWS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- helpers
    def client(self, service: str, config: Any = None) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=CREDENTIALS["AWS_SESSION_TOKEN"],
            config=config,
        )

    def expose_load_balancers(self, cluster: str) -> dict[str, str]:
        """Route traffic for every load balancer's forwarding listener to `cluster`'s services, and let its
        DNS name resolve to that router (for the driver and for functions, e.g. the smoke test's URL).
        Returns DNS name -> local URL. Called once the stack is applied; listeners added later need a
        second call."""
        from localaws.router import WeightedRouter

        assert self.ecs is not None, "start() first"
        elb = self.client("elbv2")
        for lb in elb.describe_load_balancers().get("LoadBalancers", []):
            dns = lb["DNSName"]
            if dns in self.routers:
                continue
            for listener in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"]).get("Listeners", []):
                if any(a.get("Type") == "forward" for a in listener.get("DefaultActions", [])):
                    router = WeightedRouter(self, listener["ListenerArn"], cluster).start()
                    self._undo.append(router.stop)
                    self.routers[dns] = router
                    self.ecs.bind_host(dns, router.url)
                    break
        return {dns: router.url for dns, router in self.routers.items()}

    def service_url(self, cluster: str, service: str) -> str:
        assert self.ecs is not None, "start() first"
        return self.ecs.service_url(cluster, service)

    def _ensure_sync_functions(self, account_id: str, region: str) -> None:
        from moto.awslambda.utils import get_backend
        from moto.iam.models import iam_backends

        backend = get_backend(account_id, region)  # the simple (no-Docker) backend the server uses
        iam = iam_backends[account_id]["aws"]
        with self._fn_lock:
            try:
                iam.get_role("localaws-sync-runner")
            except Exception:
                trust = {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ]
                }
                iam.create_role("localaws-sync-runner", json.dumps(trust), "/", None, "localaws .sync runner", [], None)
            for name, handler in sfn.HANDLERS.items():
                try:
                    backend.get_function(name)
                    continue
                except Exception:
                    pass
                backend.create_function(
                    {
                        "FunctionName": name,
                        "Runtime": "python3.11",
                        "Role": f"arn:aws:iam::{account_id}:role/localaws-sync-runner",
                        "Handler": handler,
                        "Code": {"ZipFile": _empty_zip()},
                        "Timeout": 900,
                        "Environment": {"Variables": {}},
                    }
                )


def _empty_zip() -> str:
    import base64

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("localaws.txt", "code runs from the localaws package")
    return base64.b64encode(buf.getvalue()).decode()
