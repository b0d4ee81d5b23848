"""The MLflow image (docker/mlflow.Dockerfile) run exactly as Terraform's ECS task `mlflow` runs it.

What is real here: the image, built by oci.build; the container definition, rendered by Terraform from
infra/terraform + envs/dev.tfvars (entryPoint ["sh", "-c"], the command that quotes DB_PASSWORD into a
postgresql:// URI with sslmode=require and execs `mlflow server ... --artifacts-destination
s3://<artifacts bucket>/mlflow --serve-artifacts`, the environment, readonlyRootFilesystem, the /tmp
volume, the task's memory), started by oci.run as ECS on Fargate would start it; a PostgreSQL 15 server
that accepts TLS connections only (the RDS parameter group sets rds.force_ssl=1); an S3 endpoint (moto)
holding the artifacts bucket; the MLflow client and REST API calling the server by its Cloud Map name.

Where the definition comes from: a `tofu plan` cannot give it, because the command and DB_HOST hold the
RDS instance's address, which is known only after apply (the whole container_definitions is unknown in
the plan). So the definition is read from the state of a targeted apply of
module.mlflow.aws_ecs_task_definition.mlflow (and what it depends on: 20 resources) against the embedded
AWS, dev.tfvars as users apply it. That apply spends ~80 s in the provider's RDS waiter, so the rendered
definition is cached in build/, keyed by a digest of every file the apply reads: any change to the
Terraform renders it again.

What differs from the task in AWS, and why:
- DB_HOST/DB_PORT name the local PostgreSQL (as the container reaches this host: 10.0.2.2) instead of the
  RDS endpoint; DB_NAME and DB_USER are the definition's, DB_PASSWORD is given as ECS gives a secret (an
  environment variable), with URL-reserved characters so the command's quoting is exercised.
- The task role's credentials are static test keys, and AWS_ENDPOINT_URL points every AWS SDK client in
  the container at moto. AWS_ENDPOINT_URL, not MLFLOW_S3_ENDPOINT_URL: it is the SDK's own setting
  (boto3 >= 1.28 reads it when no endpoint is passed, which is MLflow's case when MLFLOW_S3_ENDPOINT_URL
  is unset), so the server runs with no MLflow setting that the task in AWS does not have.
- The image is the one built here (localhost/esteira/mlflow:<commit>), and the definition's
  image-reference variable (contract.yaml image_variable) names it, as it names the image that runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TASK_DEFINITION = "module.mlflow.aws_ecs_task_definition.mlflow"
CACHE_DIR = REPO / "build" / "tf-rendered"
PG_BIN = Path(os.environ.get("ESTEIRA_PG_BIN", "/usr/lib/postgresql/15/bin"))
# Reserved in URLs and in the userinfo part of a URI: only the command's urllib.parse.quote gets it through.
DB_PASSWORD = "p@ss:w/rd?#%&+=!" + uuid.uuid4().hex[:8]
LABEL = "esteira.test=mlflow-image"
START_TIMEOUT = 240.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("buildah", "podman", "runc")),
        reason="the MLflow image test needs buildah, podman and runc (scripts/apt-packages-images.txt)",
    ),
]


# ---- the container definition Terraform renders -----------------------------------------------------------
def _rendered_inputs_digest() -> str:
    """Every file the targeted apply reads (tests/infra/conftest.stage_tree stages the same set)."""
    digest = hashlib.sha256()
    files = [
        *sorted((REPO / "infra" / "terraform").rglob("*")),
        *sorted((REPO / "stepfunctions").rglob("*")),
        REPO / "contract.yaml",
    ]
    for path in files:
        rel = path.relative_to(REPO).as_posix()
        if not path.is_file() or "/.terraform" in f"/{rel}" or rel.endswith(".tfstate") or ".tfstate." in rel:
            continue
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _walk(module: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from module.get("resources", [])
    for child in module.get("child_modules", []):
        yield from _walk(child)


def _render(workdir: Path) -> dict[str, Any]:
    """`tofu apply -target=<the task definition>` of the root module with dev.tfvars on the embedded AWS."""
    from localaws.server import LocalAWS
    from tests.infra.conftest import BIN, TOOLS_DIR, Tofu, require, stage_tree, tofu_env

    tofu_bin = require(BIN / "tf", "Terraform engine (bin/tf)")
    require(TOOLS_DIR / "tofurc", "tofu CLI config (tofurc)")
    tofu = Tofu(tofu_bin, stage_tree(workdir / "tree"), tofu_env())
    tofu.run("init", "-no-color", timeout=600)
    with LocalAWS(workdir=workdir / "localaws") as aws:
        args = ["-var-file=envs/dev.tfvars", f"-var=aws_endpoint_url={aws.endpoint_url}", f"-target={TASK_DEFINITION}"]
        tofu.run("apply", "-no-color", "-lock=false", "-auto-approve", *args, timeout=1200)
        state = tofu.show_json()
    (task,) = [r for r in _walk(state["values"]["root_module"]) if r["address"] == TASK_DEFINITION]
    values = task["values"]
    (container,) = [c for c in json.loads(values["container_definitions"]) if c["name"] == "mlflow"]
    return {"container": container, "memory": values.get("memory"), "cpu": values.get("cpu")}


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """{container: the `mlflow` container definition, memory, cpu} as Terraform registers them."""
    key = _rendered_inputs_digest()
    cached = CACHE_DIR / f"mlflow-task-{key}.json"
    if cached.is_file():
        return dict(json.loads(cached.read_text()))
    rendered = _render(tmp_path_factory.mktemp("mlflow-task"))
    rendered["rendered_from"] = f"tofu apply -target={TASK_DEFINITION} (dev.tfvars, embedded AWS), inputs {key}"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for old in CACHE_DIR.glob("mlflow-task-*.json"):
        old.unlink()
    cached.write_text(json.dumps(rendered, indent=2, sort_keys=True) + "\n")
    return rendered


# ---- the image ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image() -> Any:
    """The image built from docker/mlflow.Dockerfile for this tree (oci.build.ensure: reused when this
    commit's is there, else built with cached layers), or ESTEIRA_MLFLOW_IMAGE, an image podman holds."""
    from oci import build

    ref = os.environ.get("ESTEIRA_MLFLOW_IMAGE")
    if ref:
        if not build.exists(ref):
            pytest.fail(f"ESTEIRA_MLFLOW_IMAGE={ref} is not in podman's storage")
        info = build.inspect(ref)
        size = int(str(info.get("Size") or 0))
        return build.BuiltImage("mlflow", ref, str(info["Id"]), str(info.get("Digest") or ""), size, "", False, "", 0.0)
    try:
        return build.ensure("mlflow")
    except build.BuildError as exc:
        pytest.fail(f"the mlflow image (docker/mlflow.Dockerfile) did not build: {exc}")


# ---- PostgreSQL with TLS only (rds.force_ssl=1) -----------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _self_signed(cert: Path, key: Path) -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "esteira-test-postgres")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


@dataclass
class Postgres:
    port: int
    socket_dir: Path
    log: Path

    def query(self, sql: Any, *params: object, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        import psycopg

        conn = psycopg.connect(host=str(self.socket_dir), port=self.port, user="postgres", dbname=dbname)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params or None)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()


@pytest.fixture(scope="module")
def postgres(task: dict[str, Any]) -> Iterator[Postgres]:
    """A PostgreSQL 15 cluster on 127.0.0.1 that refuses connections without TLS, with the definition's
    DB_NAME and DB_USER; run as the `postgres` user (initdb refuses root)."""
    if not (PG_BIN / "initdb").is_file():
        pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN} (apt-get install postgresql-15)")
    env = {e["name"]: e["value"] for e in task["container"]["environment"]}
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the cluster as")
        as_user = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="esteira-mlflow-pg-"))
    data, cert, key, log = base / "data", base / "server.crt", base / "server.key", base / "postgres.log"
    _self_signed(cert, key)
    key.chmod(0o600)
    if owner is not None:
        for path in (base, cert, key):
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def pg(*argv: str) -> None:
        done = subprocess.run([*as_user, *argv], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            pytest.fail(f"{argv[0]} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")

    port = free_port()
    pg(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust", "-E", "UTF8", "--no-sync")
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{base}'\n"
            f"ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\n"
            "password_encryption = 'scram-sha-256'\nlog_connections = on\nfsync = off\n"
        )
    # The container reaches this host through slirp4netns: its connections arrive from 127.0.0.1.
    (data / "pg_hba.conf").write_text(
        "local all postgres trust\nhostnossl all all 0.0.0.0/0 reject\nhostssl all all 127.0.0.1/32 scram-sha-256\n"
    )
    pg(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start")
    server = Postgres(port, base, log)
    try:
        user, name = env["DB_USER"], env["DB_NAME"]
        from psycopg import sql

        # DDL takes no bound parameters: the password goes in as a quoted literal.
        server.query(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user), sql.Literal(DB_PASSWORD)))
        server.query(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(user)))
        yield server
    finally:
        subprocess.run(
            [*as_user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(base, ignore_errors=True)


# ---- S3 (moto) with the artifacts bucket -------------------------------------------------------------------
@dataclass
class S3:
    url: str
    bucket: str
    prefix: str
    client: Any


def artifacts_destination(command: str) -> tuple[str, str]:
    match = re.search(r"--artifacts-destination s3://([^/\s]+)/(\S+)", command)
    assert match, f"the mlflow command has no --artifacts-destination s3://<bucket>/<prefix>: {command}"
    return match.group(1), match.group(2).strip("/")


@pytest.fixture(scope="module")
def s3(task: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    import boto3

    from tests.infra.conftest import moto_server

    bucket, prefix = artifacts_destination(task["container"]["command"][0])
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as moto:
        client = boto3.client(
            "s3",
            endpoint_url=moto.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket=bucket)
        yield S3(moto.url, bucket, prefix, client)


# ---- the container, as ECS starts it ----------------------------------------------------------------------
@dataclass
class Server:
    image: Any
    name: str
    url: str
    host_header: str
    log: Path
    process: subprocess.Popen[bytes]
    command: str
    seconds_to_health: float
    seconds_to_api: float

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])

    def fail(self, setting: str, what: str) -> None:
        pytest.fail(
            f"mlflow image {self.image.ref}: {what}\n  setting that broke it: {setting}\n"
            f"--- container log (last lines) ---\n{self.log_tail()}",
            pytrace=False,
        )


# Log lines that name the setting at fault when the server does not come up.
BLAME = [
    ("Read-only file system", "readonlyRootFilesystem: the server writes outside /tmp (HOME/TMPDIR in the image)"),
    ("python: not found", "PATH in docker/mlflow.Dockerfile: the command's `python -c` does not resolve"),
    ("mlflow: not found", "PATH in docker/mlflow.Dockerfile: `mlflow` does not resolve"),
    ("password authentication failed", "DB_PASSWORD (the secret) or its quoting in the command"),
    ("no encryption", "sslmode=require in the backend-store URI"),
    ("SSL", "sslmode=require in the backend-store URI / TLS on the database"),
    ("could not translate host name", "DB_HOST"),
    ("Connection refused", "DB_HOST/DB_PORT"),
    (
        "No module named 'psycopg'",
        "requirements/mlflow.lock: SQLAlchemy >= 2.1 maps postgresql:// to psycopg (3), which the tracking-server"
        " extra must install",
    ),
    ("No module named", "requirements/mlflow.lock (a module the server needs is not installed)"),
    ("Invalid Host header", "MLFLOW_SERVER_ALLOWED_HOSTS"),
]


def blame(log: str) -> str:
    return next((setting for needle, setting in BLAME if needle in log), "the task's command (see the log)")


def request(url: str, host: str | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def service_host(env: dict[str, str]) -> str:
    """The Cloud Map name clients use (mlflow.<namespace>:5000), from MLFLOW_SERVER_ALLOWED_HOSTS."""
    hosts = [h.strip() for h in env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")]
    named = [h for h in hosts if h.endswith(":5000") and not h.startswith(("localhost", "127."))]
    assert named, f"MLFLOW_SERVER_ALLOWED_HOSTS names no service host:port: {hosts}"
    return named[0]


@pytest.fixture(scope="module")
def server(
    image: Any, task: dict[str, Any], postgres: Postgres, s3: S3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    from oci import run as oci_run

    container = task["container"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    secrets = [s["name"] for s in container.get("secrets", [])]
    assert secrets == ["DB_PASSWORD"], f"the mlflow container's secrets changed: {secrets}"
    # The variable holding the image reference names the image that runs here.
    for name, value in list(env.items()):
        if value == container["image"]:
            env[name] = image.ref
    env.update(
        DB_HOST=oci_run.HOST_FROM_CONTAINER,
        DB_PORT=str(postgres.port),
        DB_PASSWORD=DB_PASSWORD,  # ECS resolves the secret into the environment
        # The task role, as the container's SDK sees it, and S3 at moto's address.
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=s3.url,
    )
    port = free_port()
    name = f"esteira-mlflow-test-{port}"
    log = tmp_path_factory.mktemp("mlflow-container") / "mlflow.log"
    memory = int(task["memory"]) if str(task.get("memory") or "").isdigit() else None
    spec = oci_run.from_definition(
        container,
        name=name,
        env=env,
        ports={5000: port},
        image=image.ref,
        memory_mb=memory,
        labels={LABEL.split("=")[0]: LABEL.split("=")[1]},
    )
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    process = oci_run.start(spec, log)
    srv = Server(image, name, url, service_host(env), log, process, container["command"][0], 0.0, 0.0)
    try:
        while True:
            if process.poll() is not None:
                exited = f"the container exited ({process.returncode}) before /health answered"
                srv.fail(blame(srv.log_tail(200)), exited)
            try:
                if request(f"{url}/health", timeout=2)[0] == 200:
                    srv.seconds_to_health = time.monotonic() - started
                    break
            except OSError:
                pass
            if time.monotonic() - started > START_TIMEOUT:
                srv.fail(blame(srv.log_tail(200)), f"/health did not answer within {START_TIMEOUT:.0f} s")
            time.sleep(0.2)
        status, body = request(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", host=srv.host_header)
        srv.seconds_to_api = time.monotonic() - started
        if status != 200:
            srv.fail(blame(body.decode(errors="replace")), f"the first API call answered {status}: {body[:300]!r}")
        _record(srv, task)
        yield srv
    finally:
        oci_run.stop(name)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def _memory_mb(name: str) -> float | None:
    """The container's memory use now (podman stats), to compare with the task's memory."""
    done = subprocess.run(
        ["podman", "stats", "--no-stream", "--no-reset", "--format", "{{.MemUsage}}", name],
        capture_output=True,
        text=True,
    )
    match = re.match(r"\s*([\d.]+)\s*([kMG]i?B)", done.stdout)
    if done.returncode != 0 or not match:
        return None
    scale = {"k": 1e-3, "M": 1.0, "G": 1e3}[match.group(2)[0]]
    return round(float(match.group(1)) * scale, 1)


def _record(srv: Server, task: dict[str, Any]) -> None:
    path = REPO / "reports" / "mlflow-image.json"
    path.parent.mkdir(exist_ok=True)
    data = {
        "image": srv.image.ref,
        "size_mb": round(srv.image.size_bytes / 1e6, 1),
        "base": srv.image.base,
        "standin": srv.image.standin,
        "build_seconds": srv.image.seconds,
        "seconds_to_health": round(srv.seconds_to_health, 2),
        "seconds_to_first_api_answer": round(srv.seconds_to_api, 2),
        "task_memory_mb": task.get("memory"),
        "memory_mb_after_start": _memory_mb(srv.name),
        "definition": task.get("rendered_from", ""),
    }
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(
        f"\nmlflow image {srv.image.ref}: {data['size_mb']} MB; /health after {data['seconds_to_health']} s, "
        f"first API answer after {data['seconds_to_first_api_answer']} s",
        file=sys.stderr,
    )


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[Any]:
    """An MlflowClient that calls the server by its service name, as tasks in the VPC do: the Host header
    is mlflow.<namespace>:5000 (the connection goes to the port published here)."""
    from mlflow import MlflowClient
    from mlflow.tracking.request_header import registry

    resolve = registry.resolve_request_headers

    def with_host(request_headers: dict[str, str] | None = None) -> dict[str, str]:
        return {**resolve(request_headers), "Host": server.host_header}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "resolve_request_headers", with_host)
        mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        mp.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        # With an S3 destination the server advertises presigned downloads (/server-info), and clients then
        # fetch artifacts from S3 directly, at the endpoint the server sees: 10.0.2.2 here, which this host
        # cannot route to. The client streams through the server instead; the presigned route is checked
        # on its own (test_presigned_download_points_at_the_bucket).
        mp.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
        yield MlflowClient(tracking_uri=server.url, registry_uri=server.url)


# ---- the checks ---------------------------------------------------------------------------------------------
def test_definition_is_the_one_the_image_must_serve(task: dict[str, Any]) -> None:
    c = task["container"]
    assert c["entryPoint"] == ["sh", "-c"] and len(c["command"]) == 1
    assert "sslmode=require" in c["command"][0] and "--serve-artifacts" in c["command"][0]
    assert c["readonlyRootFilesystem"] is True
    assert [m["containerPath"] for m in c["mountPoints"]] == ["/tmp"]
    assert {p["containerPort"] for p in c["portMappings"]} == {5000}


def test_runs_as_the_image_user_with_tls_to_the_database(server: Server, postgres: Postgres) -> None:
    rows = postgres.query(
        "SELECT a.usename, s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = %s",
        "mlflow",
    )
    if not rows:
        server.fail("DB_HOST/DB_PORT/DB_NAME", "the server holds no connection to the backend database")
    if not all(ssl for _, ssl in rows):
        server.fail("sslmode=require", f"a backend-store connection is not encrypted: {rows}")
    listed = postgres.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", dbname="mlflow")
    tables = {row[0] for row in listed}
    if not {"experiments", "runs", "metrics", "registered_models", "model_versions"} <= tables:
        server.fail("--backend-store-uri", f"the migrations did not create MLflow's tables: {sorted(tables)}")
    user = subprocess.run(["podman", "exec", server.name, "id", "-u"], capture_output=True, text=True)
    assert user.stdout.strip() == "10001", f"mlflow image {server.image.ref} runs as uid {user.stdout.strip()!r}"


def test_allowed_hosts_setting_is_enforced(server: Server) -> None:
    status, _ = request(f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1", host="evil.example:5000")
    if status != 403:
        server.fail("MLFLOW_SERVER_ALLOWED_HOSTS", f"a request for another host answered {status}, not 403")
    status, body = request(f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1", host=server.host_header)
    if status != 200:
        server.fail("MLFLOW_SERVER_ALLOWED_HOSTS", f"{server.host_header} is refused ({status}): {body[:200]!r}")


def test_experiment_run_metric_artifact_and_model_version(server: Server, client: Any, s3: S3, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    experiment_id = client.create_experiment(f"image-test-{suffix}")
    experiment = client.get_experiment(experiment_id)
    if experiment.artifact_location != f"mlflow-artifacts:/{experiment_id}":
        server.fail("--serve-artifacts", f"artifacts are not proxied: {experiment.artifact_location}")

    run = client.create_run(experiment_id, run_name="image-test")
    run_id = run.info.run_id
    client.log_param(run_id, "model", "tfidf-logreg")
    client.log_metric(run_id, "accuracy", 0.875, step=1)
    source = tmp_path / "notes.txt"
    source.write_text(f"esteira mlflow image test {suffix}\n")
    try:
        client.log_artifact(run_id, str(source), artifact_path="reports")
        client.log_artifact(run_id, str(source), artifact_path="model")
    except Exception as exc:  # the server answers 500 when it cannot write to S3
        server.fail("--artifacts-destination / AWS_ENDPOINT_URL (S3)", f"log_artifact failed: {exc}")
    client.set_terminated(run_id)

    fetched = client.get_run(run_id)
    assert fetched.data.metrics == {"accuracy": 0.875}
    assert fetched.data.params == {"model": "tfidf-logreg"}
    assert fetched.info.status == "FINISHED"
    history = client.get_metric_history(run_id, "accuracy")
    assert [(m.step, m.value) for m in history] == [(1, 0.875)]

    # The artifact is in the bucket under the destination's prefix, and reads back through the server.
    key = f"{s3.prefix}/{experiment_id}/{run_id}/artifacts/reports/notes.txt"
    objects = s3.client.list_objects_v2(Bucket=s3.bucket, Prefix=f"{s3.prefix}/").get("Contents", [])
    keys = [o["Key"] for o in objects]
    if key not in keys:
        destination = f"--artifacts-destination s3://{s3.bucket}/{s3.prefix} + AWS_ENDPOINT_URL"
        server.fail(destination, f"s3://{s3.bucket}/{key} not written; the bucket holds {keys}")
    assert s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read() == source.read_bytes()
    listed = [f.path for f in client.list_artifacts(run_id, "reports")]
    assert listed == ["reports/notes.txt"]
    back = Path(client.download_artifacts(run_id, "reports/notes.txt", str(tmp_path / "back")))
    assert back.read_bytes() == source.read_bytes()

    # Model registry: a registered model and a version pointing at the run's artifacts.
    model_name = f"esteira-image-test-{suffix}"
    client.create_registered_model(model_name)
    version = client.create_model_version(model_name, f"{fetched.info.artifact_uri}/model", run_id=run_id)
    deadline = time.monotonic() + 60
    while version.status != "READY" and time.monotonic() < deadline:
        time.sleep(0.5)
        version = client.get_model_version(model_name, version.version)
    assert version.status == "READY", version
    assert version.version == "1" and version.run_id == run_id
    client.set_registered_model_alias(model_name, "champion", version.version)
    assert client.get_model_version_by_alias(model_name, "champion").version == "1"


def test_presigned_download_points_at_the_bucket(server: Server, client: Any, s3: S3, tmp_path: Path) -> None:
    """What clients in the VPC do by default (MLflow >= 3.x with an S3 destination): ask the server for a
    presigned URL, then GET the object from S3 with it. The URL names the endpoint the server's SDK uses
    (10.0.2.2:<moto> here, S3's regional endpoint in AWS); the request goes to that same endpoint through
    this host's loopback, with the URL's own Host header, so the signed request is unchanged."""
    import urllib.parse

    experiment_id = client.create_experiment(f"image-presigned-{uuid.uuid4().hex[:8]}")
    run_id = client.create_run(experiment_id).info.run_id
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(4096))
    client.log_artifact(run_id, str(source))
    path = f"{experiment_id}/{run_id}/artifacts/weights.bin"
    status, body = request(f"{server.url}/api/2.0/mlflow-artifacts/presigned/{path}", host=server.host_header)
    if status != 200:
        server.fail("--artifacts-destination (S3) / task role", f"no presigned URL for {path}: {status} {body[:300]!r}")
    answer = json.loads(body)
    url = urllib.parse.urlsplit(answer["url"])
    moto = urllib.parse.urlsplit(s3.url)
    assert url.path == f"/{s3.bucket}/{s3.prefix}/{path}", answer["url"]
    assert url.hostname == "10.0.2.2" and url.port == moto.port, f"signed for {url.netloc}, not the SDK's endpoint"
    assert int(answer["file_size"]) == 4096
    local = urllib.parse.urlunsplit((moto.scheme, moto.netloc, url.path, url.query, ""))
    status, content = request(local, host=url.netloc)
    assert status == 200 and content == source.read_bytes(), f"GET on the presigned URL answered {status}"


def test_nothing_failed_in_the_server(server: Server) -> None:
    log = server.log.read_text(errors="replace")
    if "Read-only file system" in log:
        server.fail("readonlyRootFilesystem", "the server tried to write outside /tmp")
    if "Traceback" in log:
        server.fail(blame(log), "the server logged a traceback")
    if server.process.poll() is not None:
        server.fail(blame(log), f"the container stopped ({server.process.returncode})")
