#!/bin/sh
# ENTRYPOINT of the stand-in Lambda Python base (docker/standin/lambda-python.Dockerfile), with the
# contract of the AWS base image's /lambda-entrypoint.sh: the image's command (in Lambda, the
# function's image_config.command) is the handler, "module.function", and nothing else.
#   - In Lambda the service gives the runtime its Runtime API (AWS_LAMBDA_RUNTIME_API=host:port):
#     the runtime bootstrap is started directly.
#   - Anywhere else no Runtime API exists: the Runtime Interface Emulator provides one, serves
#     POST /2015-03-31/functions/function/invocations on :8080 and starts the bootstrap itself.
if [ "$#" -ne 1 ]; then
    echo "lambda-entrypoint.sh: takes one argument, the handler (module.function); got $#: $*" >&2
    exit 142 # the status the AWS base image's entrypoint exits with on the same mistake
fi
export _HANDLER="$1"

runtime_bootstrap="${LAMBDA_RUNTIME_DIR:-/var/runtime}/bootstrap"
if [ -n "${AWS_LAMBDA_RUNTIME_API:-}" ]; then
    exec "$runtime_bootstrap"
fi
exec /usr/local/bin/aws-lambda-rie "$runtime_bootstrap"
