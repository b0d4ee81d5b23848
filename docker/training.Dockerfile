# syntax=docker/dockerfile:1
# The training image: `esteira train` as an ECS Fargate task or a SageMaker training job
# (both backends run the same entrypoint; Step Functions passes the data URIs as arguments).
# Build from the repository root:  docker build -f docker/training.Dockerfile -t esteira-training .
# Its build context rules: docker/training.Dockerfile.dockerignore.
# Base: the serving image's (see docker/serving.Dockerfile for the digest and the stand-in).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG PYTHON_DIGEST=

# ---- build: dependencies (requirements/training.lock) and the esteira package with its console script ---
FROM ${PYTHON_IMAGE}${PYTHON_DIGEST:+@}${PYTHON_DIGEST} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
COPY requirements/training.lock /tmp/training.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-deps --requirement /tmp/training.lock
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model/ model/
# The names Terraform, CDK and Python share: inside the package, so the wheel ships it as package data.
COPY contract.yaml model/contract.yaml
COPY pipelines/ pipelines/
RUN /opt/venv/bin/pip install --no-deps --no-compile . \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib/python3.11/site-packages/model \
       /opt/venv/lib/python3.11/site-packages/pipelines \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

# ---- runtime -------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}${PYTHON_DIGEST:+@}${PYTHON_DIGEST} AS runtime
LABEL org.opencontainers.image.title="esteira-training" \
      org.opencontainers.image.description="esteira train: fit, evaluate and register the intent classifier" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 esteira \
    && useradd --system --uid 10001 --gid esteira --home-dir /app --no-create-home --shell /usr/sbin/nologin esteira
COPY --from=build /opt/venv /opt/venv
# GIT_PYTHON_REFRESH: the image has no git, and MLflow's run-source lookup would otherwise write a
# 45-line warning into every training run's log.
ENV PATH=/opt/venv/bin:$PATH \
    MPLBACKEND=Agg \
    GIT_PYTHON_REFRESH=quiet \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
WORKDIR /app
USER 10001:10001
# The RUN reads the argument so that the layer cache is keyed on its value: buildah --layers (1.28,
# measured) keys ENV and LABEL on their unexpanded text and would keep the previous commit's layers.
ARG GIT_COMMIT=unknown
RUN test -n "${GIT_COMMIT}"
ENV GIT_COMMIT=${GIT_COMMIT}
LABEL org.opencontainers.image.revision=${GIT_COMMIT}
# No ENTRYPOINT: ECS overrides the command with `esteira train --train-data ... --eval-data ...`
# and SageMaker sets ContainerEntrypoint to the same.
CMD ["esteira", "train"]
