# syntax=docker/dockerfile:1
# The inference service image for ECS Fargate. Build from the repository root:
#   docker build -f docker/serving.Dockerfile -t esteira-serving .      (or: python -m oci.build serving)
# Its build context rules: docker/serving.Dockerfile.dockerignore.
# Base: an exact Python patch release of the slim Debian image, plus its digest once resolved.
# PYTHON_DIGEST (sha256:<64 hex>) is written by scripts/pin-base-images.sh, which needs registry access;
# it is empty until then (a digest must never be guessed). With it set, FROM is `tag@digest`: the tag
# documents, the digest decides. Where no registry is reachable, oci.build passes a stand-in with the
# same contract as PYTHON_IMAGE (docker/standin/python.Dockerfile; docs/images.md says what differs).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG PYTHON_DIGEST=

# ---- build: the serving dependencies at the versions the tests ran (requirements/serving.lock) ---------
FROM ${PYTHON_IMAGE}${PYTHON_DIGEST:+@}${PYTHON_DIGEST} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
COPY requirements/serving.lock /tmp/serving.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-deps --requirement /tmp/serving.lock \
    && /opt/venv/bin/pip uninstall --yes pip setuptools
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
    ESTEIRA_SERVING_HOST=0.0.0.0
WORKDIR /app
USER 10001:10001
# The port is the task definition's (ESTEIRA_SERVING_PORT; 8080 unset, model/serving/settings.py).
EXPOSE 8080
# /ready is 200 only when the model is loaded and passed its self-test; the start period covers the load.
HEALTHCHECK --interval=10s --timeout=3s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + (os.environ.get('ESTEIRA_SERVING_PORT') or os.environ.get('PORT') or '8080') + '/ready', timeout=2)"]
STOPSIGNAL SIGTERM
# Provenance last, so a new commit rebuilds one small layer: the commit the image was built from.
# The RUN reads the argument so that the layer cache is keyed on its value: buildah --layers (1.28,
# measured) keys ENV and LABEL on their unexpanded text and would keep the previous commit's layers.
ARG GIT_COMMIT=unknown
RUN test -n "${GIT_COMMIT}"
ENV GIT_COMMIT=${GIT_COMMIT}
LABEL org.opencontainers.image.revision=${GIT_COMMIT}
ENTRYPOINT ["python", "-m", "model.serving"]
