#!/usr/bin/env bash
# Refreshes the RustSec advisory snapshot that .ci/deny.sh checks against when GitHub cannot be
# reached. Give it a clone of https://github.com/rustsec/advisory-db (any way you can get one);
# it packs `crates/` reproducibly and records the commit and its date.
#   .ci/advisory-db/refresh.sh /path/to/advisory-db
set -euo pipefail
src="${1:?usage: $0 /path/to/advisory-db-clone}"
here="$(cd "$(dirname "$0")" && pwd)"
commit="$(git -C "$src" log -1 --format=%H)"
date="$(git -C "$src" log -1 --format=%cI)"
tar -C "$src" --sort=name --mtime="$date" --owner=0 --group=0 --numeric-owner -cf - crates \
    | gzip -n -9 >"$here/crates.tar.gz"
printf 'commit=%s\ndate=%s\n' "$commit" "$date" >"$here/SNAPSHOT"
echo "snapshot $commit of $date: $(tar -tzf "$here/crates.tar.gz" | grep -c '\.md$') advisories"
