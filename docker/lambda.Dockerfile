# syntax=docker/dockerfile:1
# One image for every workflow Lambda; each function's image command is `lambdas.<name>.handler`
# (infra/terraform/modules/workflow: image_config.command). A container image (limit 10 GB) rather than
# a zip + layer (250 MB unzipped): scikit-learn, scipy, numpy, pandas and mlflow-skinny alone are
# ~400 MB installed. Build from the repository root:
#   docker build -f docker/lambda.Dockerfile -t esteira-lambda .      (or: python -m oci.build lambdas)
# Its build context rules: docker/lambda.Dockerfile.dockerignore. Run it as Lambda does: oci/function.py.
# Base: an exact AWS Lambda Python release, plus its digest (sha256:<64 hex>) once resolved by
# scripts/pin-base-images.sh (needs registry access; empty until then, never guessed). Where no registry
# is reachable, oci.build passes a stand-in with the same contract (docker/standin/lambda-python.Dockerfile,
# which says what differs).
ARG LAMBDA_BASE_IMAGE=public.ecr.aws/lambda/python:3.11.2025.11.13.14
ARG LAMBDA_BASE_DIGEST=
FROM ${LAMBDA_BASE_IMAGE}${LAMBDA_BASE_DIGEST:+@}${LAMBDA_BASE_DIGEST}
LABEL org.opencontainers.image.title="esteira-lambdas" \
      org.opencontainers.image.description="esteira workflow Lambdas (one handler module per function)" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# The runtime dependencies at the versions the tests ran (requirements/lambdas.lock: the core
# dependencies and the Parquet reader; no dev tools, no MLflow server), into the function's own directory as AWS recommends for images:
# /var/task is first on the import path, so these shadow whatever the base bundles (its boto3).
COPY requirements/lambdas.lock /tmp/lambdas.lock
RUN pip install --no-deps --target "${LAMBDA_TASK_ROOT}" --requirement /tmp/lambdas.lock \
    && rm /tmp/lambdas.lock

COPY model/ ${LAMBDA_TASK_ROOT}/model/
# The names Terraform, CDK and Python share (model/contract.py reads this copy inside the package).
COPY contract.yaml ${LAMBDA_TASK_ROOT}/model/contract.yaml
COPY pipelines/ ${LAMBDA_TASK_ROOT}/pipelines/
COPY lambdas/ ${LAMBDA_TASK_ROOT}/lambdas/
# Lambda's filesystem is read-only: bytecode not written here would be compiled again on every cold start.
RUN python -m compileall -q "${LAMBDA_TASK_ROOT}"

# GIT_PYTHON_REFRESH: MLflow looks for git to tag a run's source; there is none in the image, so it stays quiet.
ENV MPLBACKEND=Agg \
    GIT_PYTHON_REFRESH=quiet \
    HOME=/tmp

# Provenance last, so a new commit rebuilds one small layer: the commit the image was built from.
# The RUN reads the argument so that the layer cache is keyed on its value: buildah --layers (1.28,
# measured) keys ENV and LABEL on their unexpanded text and would keep the previous commit's layers.
ARG GIT_COMMIT=unknown
RUN test -n "${GIT_COMMIT}"
ENV GIT_COMMIT=${GIT_COMMIT}
LABEL org.opencontainers.image.revision=${GIT_COMMIT}
# Terraform overrides this per function (image_config.command).
CMD ["lambdas.validate_data.handler"]
