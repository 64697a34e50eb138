#!/usr/bin/env bash
# Runs the standard mediatord benchmarks with release builds and prints one table
# (scenario, mediatord figure, baseline figure, ratio, target) followed by a JSON summary.
#
#   bash bench/run.sh                 # full size (needs about 2 GiB RAM and a few minutes)
#   bash bench/run.sh --scale 0.1     # smaller machines
#   bash bench/run.sh --smoke         # every scenario tiny; exits non-zero on any failure
#   bash bench/run.sh --only ingest,sync --json /tmp/bench.json
#   bash bench/run.sh --only attacks  # the attack scenarios (run only when named)
#   bash bench/run.sh --only chats    # 1,000 / 10,000 / 100,000 chats and a 20,000-chat
#                                     # v4 import (run only when named; about ten minutes)
#
# Extra arguments go to `mediator-load standard` (see `mediator-load standard --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p mediatord -p mediator-bench
target="${CARGO_TARGET_DIR:-target}/release"
exec "$target/mediator-load" standard --mediatord "$target/mediatord" "$@"
