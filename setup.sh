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

# Debian packages: a real MQTT broker for the end-to-end tests, wabt for inspecting modules.
packages=(mosquitto mosquitto-clients wabt)
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

# Rust targets: guests build to wasm32-unknown-unknown.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding rustup target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

say "building guest components (bundles/)"
(cd bundles && cargo build --release --quiet)
say "ready"
