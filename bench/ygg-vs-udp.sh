#!/usr/bin/env bash
# Mediator protocol latency and throughput over Yggdrasil next to plain QUIC over UDP, and
# Mimir 3.x's ygg_stream next to Mimir 2.x's QUIC inside Yggdrasil.
#
# One release mediatord serves all of them: plain QUIC on a loopback UDP port, and on its
# embedded Yggdrasil node listening on loopback TCP both QUIC (yggquic) and ygg_stream (port
# 42). The same Go client (tests/go/mimirclient, quic-go v0.52 with yggquic's settings) runs
# `-scenario bench` once over UDP and once over its own in-process yggdrasil-go v0.5.12 node
# peered directly with mediatord's node. Then `mediator-load transports` (bench/src/
# transports.rs) runs the same scenario from Rust with one client code over two transports,
# each on fresh yggnode client nodes peered directly with mediatord's node: QUIC (quinn on the
# node) and ygg_stream (our yggstream crate on the node; pushes with status 2). After AUTH,
# CREATE_CHAT, ADD_USER and SUBSCRIBE each client measures
#   (a) COUNT sequential SEND_MESSAGE round trips (send -> ack), and the send -> push latency
#       of those messages to a second session subscribed to the chat;
#   (b) a closed loop with WINDOW requests in flight (one per sender session; the server runs a
#       session's requests one at a time) for BENCH_TIME: acknowledged messages/s, send -> ack
#       and send -> push.
# Every acknowledged message must reach the subscriber exactly once, or the run fails.
#
# Columns of the table:
#   UDP QUIC (Go)          Go client, quic-go over plain UDP on loopback (no Yggdrasil)
#   Yggdrasil QUIC (Go)    Go client, quic-go over its yggdrasil-go node (Mimir 2.x's path)
#   Yggdrasil QUIC (Rust)  Rust client, quinn over its yggnode node (Mimir 2.x's transport)
#   ygg_stream (Rust)      Rust client, ygg_stream over its yggnode node (Mimir 3.x's path)
# The two Rust columns differ only in the transport; the two Yggdrasil QUIC columns only in the
# client (language, QUIC and Yggdrasil implementations). All four use the same daemon and
# database, in this order.
#
# usage: bench/ygg-vs-udp.sh [extra mimirclient flags, e.g. -count 2000 -window 32
#                              -bench-time 20s -size 1000]
#        -count, -window, -bench-time and -size are given to the Rust client too.
# env:   GO (Go toolchain, default `go`, else /usr/local/go/bin/go), DATA_DIR (database
#        directory; default a fresh temporary one; fsync speed dominates throughput),
#        CARGO_TARGET_DIR.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
target=${CARGO_TARGET_DIR:-$root/target}
command -v jq >/dev/null || { echo "jq is needed to print the table" >&2; exit 1; }

work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "building mediatord and mediator-load (release) and the Go client..." >&2
(cd "$root" && cargo build --quiet --release -p mediatord -p mediator-bench)
(cd "$root/tests/go/mimirclient" && "$GO" build -mod=readonly -o "$work/mimirclient" .)

data=${DATA_DIR:-$work/data}
# The closed-loop client sends as fast as it is answered, far beyond a person's rate: the
# per-key SEND_MESSAGE rate limit is raised for it.
printf '[limits]\nrate_send_message_per_key = { per_sec = 1e9, burst = 1e9 }\n' >"$work/mediatord.toml"
"$target/release/mediatord" --data-dir "$data" --config "$work/mediatord.toml" \
    --quic-listen 127.0.0.1:0 --listen tcp://127.0.0.1:0 --log warn >"$work/out" 2>"$work/log" &
pid=$!
udp='' ygg='' key='' stream=''
for _ in $(seq 300); do
    udp=$(sed -n 's/^listening quic //p' "$work/out")
    ygg=$(sed -n 's/^listening yggdrasil //p' "$work/out")
    key=$(sed -n 's/^mediatord public key //p' "$work/out")
    stream=$(sed -n 's/^listening ygg_stream port //p' "$work/out")
    [ -n "$udp" ] && [ -n "$ygg" ] && [ -n "$key" ] && [ -n "$stream" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
    sleep 0.1
done
if [ -z "$key" ] || [ -z "$stream" ]; then
    echo "mediatord did not start" >&2
    cat "$work/log" >&2
    exit 1
fi
echo "mediatord $key: quic $udp, yggdrasil $ygg, ygg_stream port $stream" >&2

run() { # name, transport flags...
    local name=$1
    shift
    echo "bench over $name..." >&2
    if ! "$work/mimirclient" "$@" -server-key "$key" -scenario bench "${extra[@]}" \
        >"$work/$name.out" 2>"$work/$name.err"; then
        echo "bench over $name failed:" >&2
        cat "$work/$name.out" "$work/$name.err" >&2
        exit 1
    fi
    grep '^{' "$work/$name.out" >"$work/$name.json"
    cat "$work/$name.json"
}
extra=("$@")
run udp -udp "$udp"
run ygg -ygg-peer "$ygg" -connect-timeout 60s

# The Rust client takes the scenario's own flags, written with two dashes.
rust_flags=()
for ((i = 0; i < ${#extra[@]}; i++)); do
    a=${extra[i]}
    name=${a#"${a%%[!-]*}"} # without its leading dashes
    case $name in
    count=* | window=* | bench-time=* | size=*) rust_flags+=("--$name") ;;
    count | window | bench-time | size)
        rust_flags+=("--$name" "${extra[i + 1]:-}")
        i=$((i + 1))
        ;;
    esac
done
echo "bench over Yggdrasil QUIC and ygg_stream (Rust)..." >&2
if ! "$target/release/mediator-load" transports --server-key "$key" --ygg-peer "$ygg" \
    --stream-port "$stream" --server-pid "$pid" --connect-timeout 60s "${rust_flags[@]}" \
    >"$work/rust.out" 2>"$work/rust.err"; then
    echo "bench over Yggdrasil QUIC and ygg_stream (Rust) failed:" >&2
    cat "$work/rust.out" "$work/rust.err" >&2
    exit 1
fi
grep '^{.*"transport":"ygg-quic"' "$work/rust.out" >"$work/rust-quic.json"
grep '^{.*"transport":"ygg-stream"' "$work/rust.out" >"$work/rust-stream.json"
cat "$work/rust-quic.json" "$work/rust-stream.json"

results=("$work/udp.json" "$work/ygg.json" "$work/rust-quic.json" "$work/rust-stream.json")
row() { # label, jq path, divisor, printf format
    local values=() f
    for f in "${results[@]}"; do
        values+=("$(jq -r "$2 / $3" "$f")")
    done
    printf "%-34s $4 $4 $4 $4\n" "$1" "${values[@]}"
}
echo
printf 'mediatord release, %s CPUs, %s-byte messages\n' "$(nproc)" "$(jq -r .size "$work/udp.json")"
printf '%-34s %21s %21s %21s %21s\n' "" "UDP QUIC (Go)" "Yggdrasil QUIC (Go)" \
    "Yggdrasil QUIC (Rust)" "ygg_stream (Rust)"
row "sequential: messages" .seq.n 1 %21d
row "  send -> ack p50 (ms)" .seq.ack_p50_us 1000 %21.2f
row "  send -> ack p99 (ms)" .seq.ack_p99_us 1000 %21.2f
row "  send -> ack max (ms)" .seq.ack_max_us 1000 %21.2f
row "  send -> push p50 (ms)" .seq.push_p50_us 1000 %21.2f
row "  send -> push p99 (ms)" .seq.push_p99_us 1000 %21.2f
row "  send -> push max (ms)" .seq.push_max_us 1000 %21.2f
row "closed loop: in flight" .loop.window 1 %21d
row "  messages/s" .loop.msgs_per_s 1 %21.0f
row "  send -> ack p50 (ms)" .loop.ack_p50_us 1000 %21.2f
row "  send -> ack p99 (ms)" .loop.ack_p99_us 1000 %21.2f
row "  send -> push p50 (ms)" .loop.push_p50_us 1000 %21.2f
row "  send -> push p99 (ms)" .loop.push_p99_us 1000 %21.2f
row "  send -> push max (ms)" .loop.push_max_us 1000 %21.2f
if [ -s "$work/log" ]; then
    echo
    echo "mediatord log (warnings and errors):"
    cat "$work/log"
fi
