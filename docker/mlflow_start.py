"""Start `mlflow server` with MLflow's basic-auth app, its users taken from the task's secrets.

    python mlflow_start.py <mlflow server arguments, --backend-store-uri included>
    python mlflow_start.py --sync-users <the same arguments>     only set the users, start nothing

The MLflow task (infra/terraform/modules/mlflow) runs this instead of `mlflow server`; the tests run
the same file against a local server (demo/mlflow_server.py), so what AWS runs is what is tested.

Why a script and not only MLflow's own settings: MLflow bootstraps its admin user once (from
MLFLOW_AUTH_ADMIN_USERNAME/PASSWORD) and ignores those variables afterwards, and it has no notion of a
second, read-only user. Here both users are made to match the secrets on every start, so rotating a
secret in Secrets Manager and restarting the service is the whole rotation (docs/deploy.md).

Environment (ECS injects the secrets from Secrets Manager):
  MLFLOW_AUTH_ADMIN_USERNAME, MLFLOW_AUTH_ADMIN_PASSWORD  the workflow's credential: MLflow's admin,
      the only user that may write to the stack's registered model (register versions, move aliases).
  ESTEIRA_MLFLOW_READER_USERNAME, ESTEIRA_MLFLOW_READER_PASSWORD  the read-only credential (serving).
  MLFLOW_FLASK_SERVER_SECRET_KEY  the basic-auth app's CSRF key (MLflow refuses to start without it).
  ESTEIRA_MLFLOW_DEFAULT_PERMISSION  what an authenticated user without a grant may do: READ (default)
      or NO_PERMISSIONS. An unauthenticated request is always refused (401).
  ESTEIRA_MODEL_NAME  the registered model the workflow releases: created here, so that no user but the
      admin can own it (see claim_model).
  ESTEIRA_MLFLOW_AUTH_CACHE_SECONDS  how long a checked credential is trusted (default 60; 0 checks the
      password hash on every request; see write_auth_config).

The users live in the backend store's own database, in MLflow's auth tables (their migrations keep
their own version table, alembic_version_auth), so no second database is needed. Only the image's
interpreter, MLflow and the standard library are used: the MLflow image holds nothing else.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

READER_USERNAME = "ESTEIRA_MLFLOW_READER_USERNAME"
READER_PASSWORD = "ESTEIRA_MLFLOW_READER_PASSWORD"
DEFAULT_PERMISSION = "ESTEIRA_MLFLOW_DEFAULT_PERMISSION"
MODEL_NAME = "ESTEIRA_MODEL_NAME"
CACHE_SECONDS = "ESTEIRA_MLFLOW_AUTH_CACHE_SECONDS"


def backend_store_uri(args: list[str]) -> str:
    """The value of --backend-store-uri in `mlflow server`'s arguments (either spelling)."""
    for i, arg in enumerate(args):
        if arg == "--backend-store-uri" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--backend-store-uri="):
            return arg.split("=", 1)[1]
    raise SystemExit("mlflow_start: --backend-store-uri is required (the auth store lives in that database)")


def write_auth_config(database_uri: str, default_permission: str, directory: str, cache_seconds: int = 60) -> str:
    """Write MLflow's auth configuration and return its path (for MLFLOW_AUTH_CONFIG_PATH).

    configparser interpolates `%`, and a quoted database password holds `%XX` escapes: doubled here.

    The credential cache: MLflow checks the password's scrypt hash on every request unless it is on,
    about 200 ms of CPU per request on this project's machines (a fraction of a vCPU in the task), which
    a model load or a lineage record makes dozens of. A credential checked once is trusted for
    `cache_seconds`; a rotation restarts the task, which empties the cache."""
    if default_permission not in ("READ", "NO_PERMISSIONS"):
        raise SystemExit(
            f"mlflow_start: {DEFAULT_PERMISSION} must be READ or NO_PERMISSIONS, not {default_permission!r}"
        )
    path = Path(directory) / "esteira-basic-auth.ini"
    path.write_text(
        "[mlflow]\n"
        f"default_permission = {default_permission}\n"
        f"database_uri = {database_uri.replace('%', '%%')}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {cache_seconds}\n"
    )
    path.chmod(0o600)
    return str(path)


def required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"mlflow_start: {name} is not set (the task definition's secrets give it)")
    return value


def sync_users(database_uri: str, users: list[tuple[str, str, bool]]) -> None:
    """Create each (username, password, is_admin) user, or reset its password and role to these."""
    # Imported here: the package reads MLFLOW_AUTH_CONFIG_PATH when it is first imported.
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(database_uri)  # runs the auth tables' migrations
    for username, password, is_admin in users:
        if not store.has_user(username, use_primary=True):
            store.create_user(username, password, is_admin=is_admin)
            print(f"mlflow_start: created user {username} (admin={is_admin})", flush=True)
            continue
        if not store.authenticate_user(username, password, use_primary=True):
            store.update_user(username, password=password)
            print(f"mlflow_start: {username}: password set from its secret", flush=True)
        if store.get_user(username).is_admin != is_admin:
            store.update_user(username, is_admin=is_admin)
            print(f"mlflow_start: {username}: admin={is_admin}", flush=True)


def claim_model(database_uri: str, model_name: str, non_admins: list[str]) -> None:
    """Create the stack's registered model now, before any client can, and take every grant on it from
    the users who are not MLflow's admin.

    Why: MLflow's basic-auth lets any signed-in user create a registered model, and the creator gets
    MANAGE on it. Without this, the read-only credential (serving's) could create the name the workflow
    registers into before the first training run, own it and move its `champion`. The model already
    existing makes such a create fail, and the grants check undoes an owner taken in an earlier life."""
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore as AuthStore
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore

    registry = RegistryStore(database_uri)
    try:
        registry.get_registered_model(model_name)
    except MlflowException:
        registry.create_registered_model(model_name, description="Registered by the MLflow task at its start.")
        print(f"mlflow_start: registered model {model_name} created (owned by the admin only)", flush=True)
    auth = AuthStore()
    auth.init_db(database_uri)
    for username in non_admins:
        try:
            auth.delete_registered_model_permission(model_name, username)
        except MlflowException:
            continue  # no grant: the default permission (READ) applies
        print(f"mlflow_start: {username}: its grant on {model_name} removed", flush=True)


def main(args: list[str]) -> None:
    """Sync the users, then exec the server; with --sync-users first, only sync (the local stack sets a
    running server's users from the task's secrets this way, localaws.ecs bind_external)."""
    sync_only = bool(args) and args[0] == "--sync-users"
    if sync_only:
        args = args[1:]
    uri = backend_store_uri(args)
    admin, admin_password = required("MLFLOW_AUTH_ADMIN_USERNAME"), required("MLFLOW_AUTH_ADMIN_PASSWORD")
    reader, reader_password = required(READER_USERNAME), required(READER_PASSWORD)
    required("MLFLOW_FLASK_SERVER_SECRET_KEY")
    if reader == admin:
        raise SystemExit("mlflow_start: the reader and the admin must be different users")
    directory = os.environ.get("TMPDIR") or tempfile.gettempdir()
    cache = int(os.environ.get(CACHE_SECONDS, "60"))
    config = write_auth_config(uri, os.environ.get(DEFAULT_PERMISSION, "READ"), directory, cache)
    os.environ["MLFLOW_AUTH_CONFIG_PATH"] = config
    sync_users(uri, [(admin, admin_password, True), (reader, reader_password, False)])
    model_name = os.environ.get(MODEL_NAME, "")
    if model_name:
        claim_model(uri, model_name, [reader])
    if sync_only:
        return
    # The reader's password has done its job; the server process does not need it.
    for name in (READER_USERNAME, READER_PASSWORD):
        os.environ.pop(name, None)
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    os.execv(mlflow, [mlflow, "server", "--app-name", "basic-auth", *args])


if __name__ == "__main__":
    main(sys.argv[1:])
