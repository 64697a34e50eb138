#!/usr/bin/env bash
# Builds the Debian package: release binaries, generated man pages, completions and changelog,
# then cargo-deb. Usage: packaging/build-deb.sh [DEB_VERSION]   (prints the .deb path last)
#
# DEB_VERSION defaults to the crate's version with revision 1 (0.1.0 -> 0.1.0-1). The same
# source gives the same package: file dates and the changelog's date come from
# SOURCE_DATE_EPOCH, or else from the last commit.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

# The cargo-deb the packaging is written and tested against (its systemd snippets end up in
# the maintainer scripts).
cargo_deb_version=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
    cargo install cargo-deb --version "$cargo_deb_version" --locked
fi

if [ $# -ge 1 ]; then
    deb_version=$1
else
    pkgid=$(cargo pkgid -p mediatord)
    deb_version="${pkgid##*[#@]}-1"
fi
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || stat -c %Y packaging/debian/changelog.in)}

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

# The changelog: the template's first entry becomes the entry of the version being built
# (its maintainer from [package.metadata.deb], its date from SOURCE_DATE_EPOCH); the entries
# after it are released versions, kept when older than that version.
maintainer=$(sed -n '/^\[package\.metadata\.deb\]/,/^\[/s/^maintainer = "\(.*\)"$/\1/p' mediatord/Cargo.toml)
[ -n "$maintainer" ] || { echo "build-deb: no maintainer in mediatord/Cargo.toml" >&2; exit 1; }
date=$(date -u -R -d "@$epoch")
entries=()
entry=
while IFS= read -r line || [ -n "$line" ]; do
    if [[ $line == "mediatord ("* ]] && [ -n "$entry" ]; then
        entries+=("$entry")
        entry=
    fi
    entry+="$line"$'\n'
done < packaging/debian/changelog.in
entries+=("$entry")
top=${entries[0]//@VERSION@/$deb_version}
top=${top//@MAINTAINER@/$maintainer}
changelog=$(
    printf '%s' "${top//@DATE@/$date}"
    for entry in "${entries[@]:1}"; do
        version=${entry#mediatord (}
        version=${version%%)*}
        if dpkg --compare-versions "$version" lt "$deb_version"; then
            printf '%s' "$entry"
        fi
    done
)
printf '%s\n' "$changelog" | cat -s > "$assets/changelog"

SOURCE_DATE_EPOCH=$epoch cargo deb --no-build --strip -p mediatord --deb-version "$deb_version" | tail -n 1
