#!/usr/bin/env bash
# Installs the real yggdrasil-go 0.5 daemon (Debian bookworm-backports) so the
# yggnode interop tests (ygg/tests/interop_daemon.rs) can run against it.
# Idempotent, non-interactive, must run as root.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
# The Debian package installs the binaries in /usr/sbin.
export PATH="$PATH:/usr/sbin:/sbin"

if [ "$(id -u)" -ne 0 ]; then
    echo "install-yggdrasil.sh: must run as root" >&2
    exit 1
fi

have_05() {
    command -v yggdrasil >/dev/null 2>&1 &&
        yggdrasil -version 2>/dev/null | grep -Eq 'Build version:[[:space:]]*v?0\.5\.'
}

if ! have_05; then
    # Reuse the Debian mirror host already configured on this machine.
    mirror="$(grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
        grep -v security | head -n1 | tr -d ' ' || true)"
    mirror="${mirror%/}"
    [ -n "$mirror" ] || mirror="http://deb.debian.org/debian"

    if ! grep -rqsE '^[^#]*bookworm-backports|^Suites:.*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "deb ${mirror} bookworm-backports main" >/etc/apt/sources.list.d/bookworm-backports.list
        echo "install-yggdrasil.sh: added bookworm-backports (${mirror})"
    fi

    apt-get update -q
    apt-get install -y -q -t bookworm-backports yggdrasil
    # The package may enable a system service; the tests run their own
    # loopback-only daemons, so make sure the packaged one is not running.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now yggdrasil >/dev/null 2>&1 || true
    fi
fi

yggdrasil -version
