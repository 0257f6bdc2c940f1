#!/usr/bin/env bash
# Supply-chain check (docs/SECURITY.md, "Supply chain"): cargo-deny with deny.toml, run by
# .ci/run. Licenses, bans and sources need only Cargo.lock. Advisories need the RustSec
# database, a git repository on GitHub: fetched when GitHub answers, else the snapshot in
# .ci/advisory-db/ (CC0, refreshed with .ci/advisory-db/refresh.sh) is checked instead, and the
# output says which. deny.toml fails a database older than 180 days.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.20.2
# Installed once per machine from crates.io (~10 min of compiling on 2 busy cores).
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $VERSION"; then
    cargo install cargo-deny --version "$VERSION" --locked
fi

echo "-- licenses, bans, sources"
cargo deny --locked --offline check licenses bans sources

echo "-- advisories"
if timeout 120 cargo deny --locked fetch db >/dev/null 2>&1; then
    echo "RustSec database: fetched now"
    cargo deny --locked --offline check advisories
    exit 0
fi
# cargo-deny keeps each database under $CARGO_HOME/advisory-dbs/NAME-HASH, HASH from the URL.
db_root="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
db="$db_root/advisory-db-3157b0e258782691"
. .ci/advisory-db/SNAPSHOT
rm -rf "$db"
mkdir -p "$db/.git"
tar -xzf .ci/advisory-db/crates.tar.gz -C "$db"
# cargo-deny dates a database by .git/FETCH_HEAD's mtime: the snapshot's own date, so its
# staleness limit applies to the snapshot's age, not to when it was unpacked.
touch -d "$date" "$db/.git/FETCH_HEAD"
echo "RustSec database: GitHub unreachable; snapshot $commit of $date (.ci/advisory-db)"
cargo deny --locked --offline check advisories
