#!/usr/bin/env bash
# Installs everything Outpost needs on a fresh Debian/Ubuntu machine with a Rust toolchain
# (rustup), then builds the guest components. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

if ! command -v cargo >/dev/null || ! command -v rustup >/dev/null; then
  echo "setup: Rust is missing. Install rustup (https://rustup.rs) and run ./setup.sh again." >&2
  exit 1
fi

# Debian packages: clang + lld build the C guests (bundles/sdk-c, `outpost new c`); a real MQTT broker for the end-to-end tests, wabt for inspecting modules;
# for the ARM builds and tests (cross/README.md): the cross gccs link (with the target's libc
# headers for C in dependencies, e.g. ring), qemu-user runs ARM binaries, `file` checks them.
packages=(mosquitto mosquitto-clients wabt
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
  qemu-user-static file
  binutils systemd openssl
  clang lld)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The broker is started by the tests themselves, on a free loopback port; not as a service.
if command -v systemctl >/dev/null && systemctl is-active --quiet mosquitto 2>/dev/null; then
  say "note: a system mosquitto is running on port 1883; the tests do not use it"
fi

# Rust targets: guests build to wasm32-unknown-unknown; the device binaries (cross/build.sh) to
# 64-bit ARM (static musl) and 32-bit ARMv7 (glibc).
installed_targets=$(rustup target list --installed)
for target in wasm32-unknown-unknown aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf; do
  if ! grep -qx "$target" <<<"$installed_targets"; then
    say "adding rustup target $target"
    rustup --quiet target add "$target"
  fi
done

# Guest toolchains for Zig and AssemblyScript, pinned, in a directory of this checkout (not
# system-wide): .toolchains/bin/{zig,asc} are what the examples' build commands and the tests
# run (put that directory on PATH to build them by hand). Zig from PyPI's `ziglang` wheel
# (Debian bookworm has no zig), AssemblyScript from npm.
zig_version=0.14.1
as_version=0.28.20
tools="$PWD/.toolchains"
mkdir -p "$tools/bin"
if [ "$("$tools/bin/zig" version 2>/dev/null)" != "$zig_version" ]; then
  say "installing zig $zig_version (pip ziglang) into .toolchains"
  command -v python3 >/dev/null || { echo "setup: python3 is needed for zig" >&2; exit 1; }
  rm -rf "$tools/ziglang"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$tools/ziglang" "ziglang==$zig_version"
  printf '#!/bin/sh\nPYTHONPATH="%s" exec python3 -m ziglang "$@"\n' "$tools/ziglang" >"$tools/bin/zig"
  chmod +x "$tools/bin/zig"
fi
if [ "$("$tools/bin/asc" --version 2>/dev/null)" != "Version $as_version" ]; then
  say "installing assemblyscript $as_version (npm) into .toolchains"
  command -v npm >/dev/null || { echo "setup: node and npm are needed for AssemblyScript" >&2; exit 1; }
  npm install --silent --no-audit --no-fund --prefix "$tools/assemblyscript" "assemblyscript@$as_version"
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$tools/assemblyscript/node_modules/.bin/asc" >"$tools/bin/asc"
  chmod +x "$tools/bin/asc"
fi

say "building guest components (bundles/)"
(cd bundles && cargo build --release --quiet)
say "ready"
