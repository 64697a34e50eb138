#!/usr/bin/env bash
# Builds the Debian package: release binaries, generated man pages and completions, then
# cargo-deb. Usage: packaging/build-deb.sh [DEB_VERSION]   (prints the .deb path last)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
cargo build --release -p mediatord -p mediatorctl
assets=target/assets
mkdir -p "$assets"
target/release/mediatord --man | gzip -9n > "$assets/mediatord.8.gz"
rm -rf "$assets/man" && mkdir -p "$assets/man"
target/release/mediatorctl man --dir "$assets/man"
gzip -9n "$assets/man"/*.1
target/release/mediatorctl completions bash > "$assets/mediatorctl.bash"
target/release/mediatorctl completions zsh > "$assets/_mediatorctl"
target/release/mediatorctl completions fish > "$assets/mediatorctl.fish"
args=(--no-build --strip -p mediatord)
if [ $# -ge 1 ]; then
    args+=(--deb-version "$1")
fi
cargo deb "${args[@]}" | tail -n 1
