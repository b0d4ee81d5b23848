# syntax=docker/dockerfile:1
# The MLflow tracking server image for ECS Fargate (infra/terraform/modules/mlflow, task `mlflow`).
# Build from the repository root:
#   docker build -f docker/mlflow.Dockerfile -t esteira-mlflow .      (or: python -m oci.build mlflow)
# Its build context rules: docker/mlflow.Dockerfile.dockerignore (the lock file and the start script).
# The task definition replaces the CMD: entryPoint ["sh", "-c"] and a command that quotes DB_PASSWORD
# with `python -c` into a postgresql://...?sslmode=require URI and execs /opt/esteira/mlflow_start.py,
# which starts `mlflow server --app-name basic-auth` with the artifacts proxied to
# s3://<artifacts bucket>/mlflow (users from the task's secrets). `python` must resolve on PATH, the root
# filesystem is read-only and /tmp is the task's only writable volume: HOME and TMPDIR point there.
# Base: the serving image's (see docker/serving.Dockerfile for the digest and the stand-in).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG PYTHON_DIGEST=

# ---- build: mlflow + psycopg2-binary at the versions the tests ran (requirements/mlflow.lock) -----------
FROM ${PYTHON_IMAGE}${PYTHON_DIGEST:+@}${PYTHON_DIGEST} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
COPY requirements/mlflow.lock /tmp/mlflow.lock
# pip compiles every module it installs: nothing is left to write bytecode for on the read-only root.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-deps --requirement /tmp/mlflow.lock \
    && /opt/venv/bin/mlflow --version

# ---- runtime: the venv, nothing else ---------------------------------------------------------------------
FROM ${PYTHON_IMAGE}${PYTHON_DIGEST:+@}${PYTHON_DIGEST} AS runtime
LABEL org.opencontainers.image.title="esteira-mlflow" \
      org.opencontainers.image.description="esteira MLflow tracking server (PostgreSQL backend store, S3 artifacts)" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 esteira \
    && useradd --system --uid 10001 --gid esteira --home-dir /tmp --no-create-home --shell /usr/sbin/nologin esteira
COPY --from=build /opt/venv /opt/venv
# The task's entry (infra/terraform/modules/mlflow): syncs the basic-auth users from the injected secrets,
# then execs `mlflow server --app-name basic-auth`. Compiled here: the root filesystem is read-only.
COPY docker/mlflow_start.py /opt/esteira/mlflow_start.py
RUN /opt/venv/bin/python -m py_compile /opt/esteira/mlflow_start.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    GIT_PYTHON_REFRESH=quiet \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
WORKDIR /tmp
USER 10001:10001
EXPOSE 5000
# /health is exempt from MLFLOW_SERVER_ALLOWED_HOSTS, so it answers on 127.0.0.1 too.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=2)"]
STOPSIGNAL SIGTERM
# Provenance last, so a new commit rebuilds one small layer: the commit the image was built from.
# The RUN reads the argument so that the layer cache is keyed on its value: buildah --layers (1.28,
# measured) keys ENV and LABEL on their unexpanded text and would keep the previous commit's layers.
ARG GIT_COMMIT=unknown
RUN test -n "${GIT_COMMIT}"
ENV GIT_COMMIT=${GIT_COMMIT}
LABEL org.opencontainers.image.revision=${GIT_COMMIT}
# A self-contained server for `docker run -p 5000:5000` (SQLite and artifacts under /tmp, gone with the
# container); ECS replaces it with the PostgreSQL + S3 command above. Memory: every uvicorn worker is a
# full interpreter with mlflow imported (~170 MB), plus ~180 MB for the `mlflow server` parent; MLflow's
# default of 4 workers takes ~900 MB, its job runner (off above, as in the task) ~1.3 GB more.
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000", "--workers", "2", \
     "--backend-store-uri", "sqlite:////tmp/mlflow.db", "--artifacts-destination", "/tmp/mlartifacts"]
