#!/bin/sh
# The runtime's unit and end-to-end tests under Python 3.13 (Debian trixie's), in a chroot.
#
#   sh tests/py313/run.sh [PYTEST ARGS...]      (make test-py313; part of make test)
#
# The root is made once with debootstrap (about 40 s) and cached in out/cache/py313/root, with
# a venv holding the test dependencies (reinstalled when pyproject.toml changes). Each run copies
# the working tree into the root (so the chroot never writes into the checkout), mounts /proc and
# /dev in a private mount namespace (gone when the run ends), and runs pytest there. The chroot
# shares the host's network namespace: the tests' servers on 127.0.0.1 work as on the host.
#
# Not run here: tests/packaging (containers need buildah and the host's tools), tests/emulator
# and tests/bench (developer tooling, which runs on the developer's Python, tested on the host).
#
# When the root cannot be set up (no root privileges, no debootstrap, no Debian mirror, no PyPI):
# with CI=true the run fails; otherwise it says why and exits 0, so a laptop without a mirror is
# not blocked. A test failure always fails.
set -eu

REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE="$REPO/out/cache/py313"
ROOT="$CACHE/root"
SUITE=trixie
MIRROR=${LAMBDA_RUNTIME_TEST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
VENV=/opt/venv  # inside the root
# What the selected tests import besides pyproject.toml's dependencies and the runtime's optional
# parts: awslambdaric (the context is compared with its own), boto3 (streamed invokes end to
# end), hatchling and editables (the editable install).
TEST_DEPS="pytest>=8 pytest-timeout>=2.3 hypothesis>=6.100 opentelemetry-proto awslambdaric>=2.2 hatchling editables boto3"
# The runtime under 3.13; the tooling (emulator, packaging, docs, bench, soak) is tested on the
# host's Python.
SELECTION="tests --ignore=tests/packaging --ignore=tests/emulator --ignore=tests/bench \
    --ignore=tests/soak --ignore=tests/test_docs.py"

say() { echo "py313: $*" >&2; }

# Setup problems: fatal in CI, a reported skip elsewhere.
cannot() {
    if [ "${CI:-}" = true ]; then
        say "FAILED to set up the Python 3.13 chroot: $*"
        exit 1
    fi
    say "SKIPPED (set-up failed; with CI=true this fails): $*"
    exit 0
}

[ "$(id -u)" = 0 ] || cannot "chroot and debootstrap need root"
command -v debootstrap >/dev/null 2>&1 || sh "$REPO/tests/packaging/setup_tools.sh" \
    || cannot "debootstrap is not installed and setup_tools.sh could not install it"
command -v unshare >/dev/null 2>&1 || cannot "unshare (util-linux) is not installed"
mkdir -p "$CACHE"

# One run at a time per checkout (two would share the cached root).
exec 9>"$CACHE/lock"
flock 9

in_root() {
    # A private mount namespace: the mounts vanish with it, even when the run is killed.
    unshare --mount --propagation private -- sh -c '
        root=$1; shift
        mount -t proc proc "$root/proc" && mount --rbind /dev "$root/dev" || exit 97
        exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
            PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin "$@"' sh "$ROOT" "$@"
}

if [ ! -e "$ROOT/.debootstrapped" ]; then
    say "creating a Debian $SUITE root with Python 3 (once; cached in out/cache/py313)"
    rm -rf "$ROOT" "$ROOT.new"
    started=$(date +%s)
    if ! debootstrap --variant=minbase --include=python3,python3-venv "$SUITE" "$ROOT.new" \
        "$MIRROR" >"$CACHE/debootstrap.out" 2>&1; then
        detail=$(tail -c 1500 "$ROOT.new/debootstrap/debootstrap.log" 2>/dev/null \
            || tail -c 1500 "$CACHE/debootstrap.out")
        rm -rf "$ROOT.new"
        cannot "debootstrap $SUITE from $MIRROR failed: $detail"
    fi
    rm -rf "$ROOT.new/var/cache/apt/archives"/*.deb "$ROOT.new/usr/share/doc" \
        "$ROOT.new/usr/share/man"
    touch "$ROOT.new/.debootstrapped"
    mv "$ROOT.new" "$ROOT"
    say "root ready in $(( $(date +%s) - started )) s"
fi

in_root true 2>"$CACHE/probe.out" \
    || cannot "cannot enter the chroot (unshare --mount, mount, chroot): $(cat "$CACHE/probe.out")"

# What pip needs to reach PyPI from inside: the host's CA bundle and name servers.
mkdir -p "$ROOT/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

# The dependencies and the extras the runtime's tests use, read from pyproject.toml by the host's
# Python (3.11+ has tomllib).
deps=$(python3 -c '
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = project["optional-dependencies"]
print(" ".join(project["dependencies"] + extras["emulator"] + extras["otel"] + extras["structlog"]))
' "$REPO/pyproject.toml") || cannot "could not read the dependencies from pyproject.toml"
deps_key=$(echo "$deps $TEST_DEPS" | sha256sum | cut -c1-16)
if [ "$(cat "$ROOT/opt/.deps" 2>/dev/null)" != "$deps_key" ]; then
    say "installing the test dependencies in $VENV (once per change of pyproject.toml)"
    rm -rf "$ROOT$VENV"
    # shellcheck disable=SC2086
    in_root sh -c 'python3 -m venv "$1" && shift &&
        PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
        /opt/venv/bin/pip install --quiet "$@"' sh "$VENV" $deps $TEST_DEPS \
        >"$CACHE/pip.out" 2>&1 || cannot "pip install in the chroot failed: $(tail -c 1500 "$CACHE/pip.out")"
    echo "$deps_key" >"$ROOT/opt/.deps"
fi

# The working tree as it is now (uncommitted changes included), without what is built or cached.
rm -rf "$ROOT/src"
mkdir -p "$ROOT/src"
tar -C "$REPO" --exclude=./.venv --exclude=./out --exclude=./.git --exclude=__pycache__ \
    --exclude=./.pytest_cache --exclude=./.mypy_cache --exclude=./.ruff_cache \
    --exclude=./.hypothesis --exclude='*.egg-info' -cf - . | tar -C "$ROOT/src" -xf -
# Editable, as on the host: the lambda-runtime command and the pytest plugin's entry point.
in_root sh -c 'cd /src && pip install --quiet --no-deps --no-build-isolation --editable .' >"$CACHE/install.out" 2>&1 \
    || { say "installing the project in the chroot failed:"; cat "$CACHE/install.out" >&2; exit 1; }

say "$(in_root python --version) in $ROOT"
started=$(date +%s)
status=0
# shellcheck disable=SC2086
in_root sh -c 'cd /src && exec python -m pytest -q -p no:cacheprovider "$@"' sh \
    $SELECTION "$@" || status=$?
say "pytest under Python 3.13: exit $status after $(( $(date +%s) - started )) s"
exit $status
