#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server on loopback for `mediator-load standard --postgres`,
# with the server's defaults (fsync and synchronous_commit on), and prints its admin URL.
# Debian's postgresql package provides the binaries. Stop it with: bench/postgres.sh stop DIR
#
# usage: bench/postgres.sh [DIR [PORT]]     (default DIR /tmp/mediator-bench-pg, PORT 55432)
#        bench/postgres.sh stop [DIR]
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
if [ "${1:-}" = stop ]; then
    dir=${2:-/tmp/mediator-bench-pg}
    runuser -u postgres -- "$bin/pg_ctl" -D "$dir" -m fast stop 2>/dev/null ||
        "$bin/pg_ctl" -D "$dir" -m fast stop
    exit
fi
dir=${1:-/tmp/mediator-bench-pg}
port=${2:-55432}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ ! -f "$dir/PG_VERSION" ]; then
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    as_pg "$bin/initdb" -D "$dir" -U postgres -A trust >/dev/null
fi
as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir" start >/dev/null
echo "postgres://postgres@127.0.0.1:$port/postgres"
