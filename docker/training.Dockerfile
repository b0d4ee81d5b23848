# The training image: `esteira train` as an ECS Fargate task or a SageMaker training job
# (both backends run the same entrypoint; Step Functions passes the data URIs as arguments).
# Build from the repository root:  docker build -f docker/training.Dockerfile -t esteira-training .
# Base: an exact Python patch release (the serving image's), plus its digest (sha256:<64 hex>) once
# resolved by scripts/pin-base-images.sh (needs registry access; empty until then, never guessed).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG PYTHON_DIGEST=
FROM ${PYTHON_IMAGE}${PYTHON_DIGEST:+@}${PYTHON_DIGEST}

RUN groupadd --system --gid 10001 esteira && useradd --system --uid 10001 --gid esteira --home /app esteira
WORKDIR /app

COPY requirements/dev.lock /tmp/dev.lock
RUN grep -E '^(mlflow-skinny|scikit-learn|numpy|scipy|pandas|pyarrow|boto3|botocore|joblib|threadpoolctl|cloudpickle|requests|urllib3|certifi|charset-normalizer|idna|packaging|protobuf|pyyaml|python-dateutil|pytz|tzdata|six|jmespath|s3transfer|click|sqlparse|cachetools|databricks-sdk|google-auth|opentelemetry-api|opentelemetry-sdk|opentelemetry-semantic-conventions|opentelemetry-proto|importlib-metadata|zipp|typing-extensions|pydantic|pydantic-core|annotated-types|typing-inspection|deprecated|wrapt|gitpython|gitdb|smmap|rsa|pyasn1|pyasn1-modules|matplotlib|contourpy|cycler|fonttools|kiwisolver|pillow|pyparsing)==' /tmp/dev.lock \
        > /tmp/runtime.txt \
    && pip install --no-cache-dir --no-deps -r /tmp/runtime.txt \
    && rm /tmp/dev.lock /tmp/runtime.txt

COPY pyproject.toml README.md ./
COPY model/ model/
# The names Terraform, CDK and Python share: inside the package, so `pip install .` ships it as package data.
COPY contract.yaml model/contract.yaml
COPY pipelines/ pipelines/
RUN pip install --no-cache-dir --no-deps . && chown -R esteira:esteira /app

ARG GIT_COMMIT=unknown
ENV GIT_COMMIT=${GIT_COMMIT} \
    MPLBACKEND=Agg \
    PYTHONUNBUFFERED=1
USER 10001

# No ENTRYPOINT: ECS overrides the command with `esteira train --train-data ... --eval-data ...`
# and SageMaker sets ContainerEntrypoint to the same.
CMD ["esteira", "train"]
