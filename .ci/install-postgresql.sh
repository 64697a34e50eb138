#!/usr/bin/env bash
# Installs the PostgreSQL server from Debian's packages so the PostgreSQL store tests
# (tests/tests/pg_migrate.rs) can start their own servers on loopback (tests/support/pg.rs:
# initdb in a temporary directory, run as the package's postgres user). The packaged
# cluster is not used; it is stopped if the package started it. The system's certificate
# authorities (ca-certificates) are installed too: the TLS tests (tests/tests/pg_tls.rs)
# check that a server they do not vouch for is refused.
# Idempotent, non-interactive, must run as root.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" -ne 0 ]; then
    echo "install-postgresql.sh: must run as root" >&2
    exit 1
fi

have_server() {
    ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && id postgres >/dev/null 2>&1 &&
        command -v psql >/dev/null 2>&1
}

if ! have_server; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends postgresql postgresql-client
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now postgresql >/dev/null 2>&1 || true
    fi
fi

if [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends ca-certificates
fi

ls -d /usr/lib/postgresql/*/bin/postgres
