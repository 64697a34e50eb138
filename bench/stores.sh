#!/usr/bin/env bash
# Runs ingest, fan-out and sync on both stores in the same run: first on the SQLite file, then
# on a throwaway local PostgreSQL server (bench/postgres.sh, stopped again at the end), each
# with its raw baselines. Prints one table with every row twice ([sqlite], [postgresql]) and a
# JSON summary (the PostgreSQL run under "postgres").
#
#   bash bench/stores.sh                              # about ten minutes on 2 cores
#   bash bench/stores.sh --json /tmp/stores.json
#   bash bench/stores.sh --only ingest                # extra arguments go to mediator-load
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p mediatord -p mediator-bench
target="${CARGO_TARGET_DIR:-target}/release"
dir=$(mktemp -d /tmp/mediator-stores-pg.XXXXXX)
url=$(bash bench/postgres.sh "$dir" 55433)
trap 'bash bench/postgres.sh stop "$dir" >/dev/null; rm -rf "$dir"' EXIT
only=(--only ingest,fanout,sync)
for a in "$@"; do case $a in --only | --only=*) only=() ;; esac; done
"$target/mediator-load" standard --mediatord "$target/mediatord" "${only[@]}" \
    --postgres "$url" --both-stores "$@"
