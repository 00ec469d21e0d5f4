#!/bin/sh
# Installs the Debian tools the packaging tests use: buildah (image builds without a Docker
# engine) with an OCI runtime, debootstrap and the Debian keyring (a local base image, since base
# images cannot be pulled), unzip, util-linux's unshare/nsenter/setpriv and iproute2's ip (private
# mount and network namespaces). Idempotent: silent and instant when everything is there.
# Needs root for apt-get; without root it only says what is missing.
set -eu

need=""
want() { command -v "$1" >/dev/null 2>&1 || need="$need $2"; }
want buildah buildah
want debootstrap debootstrap
want unzip unzip
want unshare util-linux
want nsenter util-linux
want setpriv util-linux
want ip iproute2
command -v crun >/dev/null 2>&1 || command -v runc >/dev/null 2>&1 || need="$need crun"
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need="$need debian-archive-keyring"

[ -z "$need" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "setup_tools.sh: missing:$need; run it as root to install them with apt-get" >&2
    exit 1
fi
echo "setup_tools.sh: installing$need" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $need; } >"$log" 2>&1
then
    cat "$log" >&2
    exit 1
fi
