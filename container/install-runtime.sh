#!/bin/sh
# Installs lambda-runtime into a container image's build stage:
#
#   install-runtime.sh PYTHON SOURCE WITH [TARGET]
#
# PYTHON runs pip; SOURCE is the project folder (pyproject.toml, runtime/); WITH names the
# optional parts, comma-separated: otel and structlog (what a function's observability settings
# need) and emulator (the local emulator behind `docker run -p 9000:8080 IMAGE`; Lambda never
# runs it). TARGET, when given, is a `pip --target` folder instead of PYTHON's own site-packages.
#
# Without `emulator` the image gets the runtime core only, as the runtime layer does: pip installs
# the dependencies of the chosen parts, then the distribution itself is replaced by its core
# files, so no emulator, packaging or CLI code (nor httpx or h11) is in the image.
set -eu
python=$1 src=$2 with=$3 target=${4:-}

extras="" emulator=no
for part in $(printf '%s' "$with" | tr ',' ' '); do
    case $part in
        otel|structlog) ;;
        emulator) emulator=yes ;;
        *) echo "WITH: unknown part '$part'; choose from otel, structlog, emulator" >&2; exit 2 ;;
    esac
    extras=${extras:+$extras,}$part
done

spec=$src
[ -n "$extras" ] && spec="$src[$extras]"
if [ -n "$target" ]; then
    "$python" -m pip install --no-compile --target "$target" "$spec"
    site=$target
else
    "$python" -m pip install --no-compile "$spec"
    site=$("$python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
fi
# Console scripts written by pip would name the build stage's paths; the images do not use them.
rm -rf "$site/bin"
[ "$emulator" = yes ] && exit 0

if [ -n "$target" ]; then
    rm -rf "$site/runtime" "$site"/lambda_runtime-*.dist-info
else
    "$python" -m pip uninstall --yes --quiet lambda-runtime
fi
PYTHONPATH=$src "$python" -m runtime.packaging.core "$site"
