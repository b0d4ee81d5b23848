# syntax=docker/dockerfile:1
# Stand-in for public.ecr.aws/lambda/python:3.11 where that image cannot be pulled (no registry here);
# oci/build.py builds it (context: aws-lambda-rie, lambda-entrypoint.sh and bootstrap from this folder,
# the RIE built by `scripts/tools.sh --rie`) and passes it to docker/lambda.Dockerfile as LAMBDA_BASE_IMAGE.
#
# The contract docker/lambda.Dockerfile and Lambda rely on, kept:
#   Python 3.11 at /var/lang/bin (python3.11, python3, python, pip), site-packages at
#   /var/lang/lib/python3.11/site-packages; LAMBDA_TASK_ROOT=/var/task (the WORKDIR, first on the import
#   path), LAMBDA_RUNTIME_DIR=/var/runtime (the runtime interface client, awslambdaric, and bootstrap);
#   ENTRYPOINT /lambda-entrypoint.sh taking the handler as its one argument and running the Runtime
#   Interface Emulator (/usr/local/bin/aws-lambda-rie) in front of /var/runtime/bootstrap unless
#   AWS_LAMBDA_RUNTIME_API is set; the upstream image's PATH, LANG, TZ and LD_LIBRARY_PATH; root as the
#   image user (Lambda itself runs the function as an unprivileged user: oci/function.py does too).
#
# What differs from upstream:
#   - Debian bookworm (glibc 2.36) instead of Amazon Linux 2 (glibc 2.26): native wheels built for
#     manylinux2014 run on both; anything linked against AL2's system libraries is not tested here.
#   - The interpreter is Debian's python3.11 (3.11.2) and /var/lang a virtual environment of it
#     (/var/lang/bin/python3.11 links to /usr/bin/python3.11, the standard library is in
#     /usr/lib/python3.11), not AWS's build of the latest 3.11 patch release installed under /var/lang.
#   - The system's packages are Debian's (dpkg, apt), not Amazon Linux's (rpm, yum); /var/lang/lib holds
#     the venv's site-packages only, no shared libraries.
#   - No runtime-bundled AWS SDK: upstream ships boto3/botocore (and their dependencies) in the
#     interpreter's site-packages; here only awslambdaric and its two dependencies are installed, in
#     /var/runtime. esteira's image carries its own pinned boto3 in /var/task, which comes first on
#     the import path in both images, so the bundled one is never imported anyway.
#   - awslambdaric is the PyPI release pinned below, not the build AWS bundles with the image, and the
#     bootstrap is a shell script running `python3.11 -m awslambdaric` (upstream: bootstrap.py).
#   - aws-lambda-rie is built from source at the commit scripts/tools.sh pins, not AWS's release binary.
#   - The en_US.UTF-8 locale LANG names is generated here from Debian's `locales` package. TZ is
#     upstream's (:/etc/localtime); the zone is UTC either way: Debian's tzdata links /etc/localtime to
#     Etc/UTC, and a base without tzdata has no /etc/localtime, where glibc uses UTC.
ARG DEBIAN_IMAGE=localhost/esteira-standin/debian:bookworm
FROM ${DEBIAN_IMAGE}

# The locale LANG names. `locales` must be the same build as the base's C library (libc-bin), so that is
# the version asked for. (Before the PATH below: dpkg needs /usr/sbin and /sbin.)
RUN apt-get update \
    && apt-get install -y --no-install-recommends "locales=$(dpkg-query --showformat='${Version}' --show libc-bin)" \
    && localedef --inputfile=en_US --charmap=UTF-8 en_US.UTF-8 \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

# The environment the AWS base image sets (the same values).
ENV LANG=en_US.UTF-8 \
    TZ=:/etc/localtime \
    PATH=/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin \
    LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib \
    LAMBDA_TASK_ROOT=/var/task \
    LAMBDA_RUNTIME_DIR=/var/runtime

# The interpreter at /var/lang, the runtime interface client at /var/runtime (after site-packages on the
# import path, as in the python3.11 base: a .pth file), pinned with its dependencies.
RUN python3.11 -m venv /var/lang \
    && /var/lang/bin/python -m pip install --no-cache-dir --disable-pip-version-check --no-deps \
        --target /var/runtime awslambdaric==4.2.2 simplejson==4.3.0 snapshot-restore-py==1.0.0 \
    && echo /var/runtime > /var/lang/lib/python3.11/site-packages/lambda-runtime.pth \
    && mkdir -p /var/task /opt \
    && /var/lang/bin/python -c "import awslambdaric, runtime_client, simplejson, snapshot_restore_py"

COPY aws-lambda-rie /usr/local/bin/aws-lambda-rie
COPY lambda-entrypoint.sh /lambda-entrypoint.sh
COPY bootstrap /var/runtime/bootstrap
RUN chmod 0755 /usr/local/bin/aws-lambda-rie /lambda-entrypoint.sh /var/runtime/bootstrap

WORKDIR /var/task
ENTRYPOINT ["/lambda-entrypoint.sh"]
