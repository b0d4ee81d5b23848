# One image for every workflow Lambda; each function's image command is `lambdas.<name>.handler`.
# A container image (limit 10 GB) rather than a zip + layer (250 MB unzipped): scikit-learn, scipy,
# numpy, pandas and mlflow-skinny alone are ~400 MB installed.
# Build from the repository root:  docker build -f docker/lambda.Dockerfile -t esteira-lambda .
# Base: an exact AWS Lambda Python release, plus its digest (sha256:<64 hex>) once resolved by
# scripts/pin-base-images.sh (needs registry access; empty until then, never guessed).
ARG LAMBDA_BASE_IMAGE=public.ecr.aws/lambda/python:3.11.2025.11.13.14
ARG LAMBDA_BASE_DIGEST=
FROM ${LAMBDA_BASE_IMAGE}${LAMBDA_BASE_DIGEST:+@}${LAMBDA_BASE_DIGEST}

# Runtime dependencies only, at the versions the lock file pins (no dev tools, no MLflow server).
COPY requirements/dev.lock /tmp/dev.lock
RUN grep -E '^(mlflow-skinny|scikit-learn|numpy|scipy|pandas|pyarrow|boto3|botocore|joblib|threadpoolctl|cloudpickle|requests|urllib3|certifi|charset-normalizer|idna|packaging|protobuf|pyyaml|python-dateutil|pytz|tzdata|six|jmespath|s3transfer|click|sqlparse|cachetools|databricks-sdk|google-auth|opentelemetry-api|opentelemetry-sdk|opentelemetry-semantic-conventions|opentelemetry-proto|importlib-metadata|zipp|typing-extensions|pydantic|pydantic-core|annotated-types|typing-inspection|deprecated|wrapt|fastapi|starlette|anyio|sniffio|gitpython|gitdb|smmap|uvicorn|h11|rsa|pyasn1|pyasn1-modules)==' /tmp/dev.lock \
        > /tmp/runtime.txt \
    && pip install --no-cache-dir --no-deps -r /tmp/runtime.txt \
    && rm /tmp/dev.lock /tmp/runtime.txt

COPY model/ ${LAMBDA_TASK_ROOT}/model/
# The names Terraform, CDK and Python share (model/contract.py reads this copy inside the package).
COPY contract.yaml ${LAMBDA_TASK_ROOT}/model/contract.yaml
COPY pipelines/ ${LAMBDA_TASK_ROOT}/pipelines/
COPY lambdas/ ${LAMBDA_TASK_ROOT}/lambdas/

ARG GIT_COMMIT=unknown
ENV GIT_COMMIT=${GIT_COMMIT} \
    MPLBACKEND=Agg \
    HOME=/tmp

# Terraform overrides this per function (image_config.command).
CMD ["lambdas.validate_data.handler"]
