#!/bin/sh
# Entrypoint of the lambda-runtime container images. The image CMD (the handler, optionally
# followed by emulator options) arrives as "$@".
#
# On Lambda (AWS_LAMBDA_RUNTIME_API is set) it becomes the runtime: /var/runtime/bootstrap when
# the image has one (the provided.al2023 recipe), else `python -m runtime`.
# Anywhere else, in an image built with WITH=emulator, it starts the local emulator, which runs
# the runtime for the handler and serves the Invoke API on 0.0.0.0:8080
# (AWS_LAMBDA_FUNCTION_TIMEOUT and AWS_LAMBDA_FUNCTION_MEMORY_SIZE are honoured, as by AWS's
# emulator). Options after the handler override these defaults, e.g.
#   docker run IMAGE app.handler --timeout 30
set -eu

python=${LAMBDA_RUNTIME_PYTHON:-python3}

if [ -n "${AWS_LAMBDA_RUNTIME_API:-}" ]; then
    if [ -x /var/runtime/bootstrap ]; then
        exec /var/runtime/bootstrap "$@"
    fi
    exec "$python" -m runtime "$@"
fi

if [ $# -eq 0 ]; then
    if [ -z "${_HANDLER:-}" ]; then
        echo "lambda-entrypoint: no handler: pass it as the command (e.g. app.handler)" \
             "or set _HANDLER" >&2
        exit 2
    fi
    set -- "$_HANDLER"
fi
handler=$1
shift

# The provided.al2023 recipe keeps the runtime's packages beside bootstrap, off the default path.
if [ -d /var/runtime/python/runtime ]; then
    PYTHONPATH=/var/runtime/python${PYTHONPATH:+:$PYTHONPATH}
    export PYTHONPATH
fi

# Images built without the emulator hold the runtime only (no runtime.cli).
if ! "$python" -c 'import importlib.util as u, sys; sys.exit(not u.find_spec("runtime.cli"))' \
        2>/dev/null; then
    echo "lambda-entrypoint: this image has no local emulator (it holds the runtime only):" \
         "rebuild it with --build-arg WITH=emulator, or run \`lambda-runtime serve $handler" \
         "--no-spawn\` outside and pass AWS_LAMBDA_RUNTIME_API=host:port to the container" >&2
    exit 2
fi

# Defaults first, so that options given after the handler win (the last occurrence counts).
if [ -x /var/runtime/bootstrap ]; then
    # Run the runtime exactly as Lambda would: through the image's bootstrap.
    set -- --runtime-cmd /var/runtime/bootstrap "$@"
fi
if [ -n "${AWS_LAMBDA_FUNCTION_MEMORY_SIZE:-}" ]; then
    set -- --memory "$AWS_LAMBDA_FUNCTION_MEMORY_SIZE" "$@"
fi
if [ -n "${AWS_LAMBDA_FUNCTION_TIMEOUT:-}" ]; then
    set -- --timeout "$AWS_LAMBDA_FUNCTION_TIMEOUT" "$@"
fi
exec "$python" -m runtime.cli serve "$handler" --host 0.0.0.0 --port 8080 \
    --task-root "${LAMBDA_TASK_ROOT:-/var/task}" "$@"
