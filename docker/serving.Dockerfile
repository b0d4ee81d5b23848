# syntax=docker/dockerfile:1
# The inference service image for ECS Fargate. Build from the repository root:
#   docker build -f docker/serving.Dockerfile -t esteira-serving .
# Base: an exact Python patch release of the slim Debian image, plus its digest once resolved.
# PYTHON_DIGEST (sha256:<64 hex>) is written by scripts/pin-base-images.sh, which runs
# `docker buildx imagetools inspect` and so needs registry access; it is empty until then (this
# repository's build machines cannot reach a registry, and a digest must never be guessed). With it set,
# FROM is `tag@digest`: the tag documents, the digest decides. --build-arg PYTHON_DIGEST=... overrides.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG PYTHON_DIGEST=

# ---- build: resolve and install only the serving dependencies ------------------------------------------
FROM ${PYTHON_IMAGE}${PYTHON_DIGEST:+@}${PYTHON_DIGEST} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /src
RUN pip install --no-cache-dir uv==0.13.9
COPY pyproject.toml ./
COPY requirements/dev.lock requirements/dev.lock
# The serving set is the project's core dependencies (no extras: no MLflow server, no test or CDK tools),
# resolved at exactly the versions the dev lock pins, so the image runs what the tests ran.
RUN uv pip compile pyproject.toml --constraint requirements/dev.lock --no-header --output-file /tmp/serving.txt \
    && python -m venv /opt/venv \
    && uv pip sync --python /opt/venv/bin/python /tmp/serving.txt \
    && cp /tmp/serving.txt /opt/venv/serving-requirements.txt
COPY model/ /src/model/
# The names Terraform, CDK and Python share (model/contract.py reads this copy inside the package).
COPY contract.yaml /src/model/contract.yaml
RUN python -m compileall -q /src/model

# ---- runtime: the venv and the model package, nothing else -----------------------------------------------
FROM ${PYTHON_IMAGE}${PYTHON_DIGEST:+@}${PYTHON_DIGEST} AS runtime
LABEL org.opencontainers.image.title="esteira-serving" \
      org.opencontainers.image.description="esteira intent classifier inference service" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 esteira \
    && useradd --system --uid 10001 --gid esteira --no-create-home --shell /usr/sbin/nologin esteira
COPY --from=build /opt/venv /opt/venv
COPY --from=build /src/model /app/model
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8080
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# /ready is 200 only when the model is loaded and passed its self-test; the start period covers the load.
HEALTHCHECK --interval=10s --timeout=3s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/ready', timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "model.serving"]
