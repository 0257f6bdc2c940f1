#!/usr/bin/env bash
# Release binaries of `outpost` for Raspberry-Pi-class boards, in one command:
#   cross/build.sh                 both targets below
#   cross/build.sh TARGET...       only these
# aarch64-unknown-linux-musl      static; 64-bit OS on Pi 3/4/5, Zero 2 W, CM3/4/5
# armv7-unknown-linux-gnueabihf   dynamic glibc; 32-bit Raspberry Pi OS (Pi 2/3/4, Zero 2 W)
# Each lands in cross/out/<target>/outpost; the script prints its size, `file` output and, for
# glibc targets, the newest glibc symbol version it needs. Linkers and the cc crate's compilers
# come from .cargo/config.toml; ./setup.sh installs them. See cross/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

default_targets=(aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf)
targets=("$@")
((${#targets[@]})) || targets=("${default_targets[@]}")

# What each target needs on the build machine, and what `file` must say about the result.
gcc_for() {
  case "$1" in
    aarch64-unknown-linux-musl) echo aarch64-linux-gnu ;;
    armv7-unknown-linux-gnueabihf) echo arm-linux-gnueabihf ;;
    *) echo "cross/build.sh: unsupported target $1 (supported: ${default_targets[*]})" >&2; exit 2 ;;
  esac
}
expect_for() {
  case "$1" in
    aarch64-unknown-linux-musl) echo "ELF 64-bit.*ARM aarch64.*statically linked" ;;
    armv7-unknown-linux-gnueabihf) echo "ELF 32-bit.*ARM, EABI5.*dynamically linked" ;;
  esac
}

installed=$(rustup target list --installed)
for target in "${targets[@]}"; do
  prefix=$(gcc_for "$target")
  command -v "$prefix-gcc" >/dev/null || {
    echo "cross/build.sh: $prefix-gcc is missing; run ./setup.sh" >&2; exit 1; }
  grep -qx "$target" <<<"$installed" || {
    echo "cross/build.sh: rustup target $target is missing; run ./setup.sh" >&2; exit 1; }
done
command -v file >/dev/null || { echo "cross/build.sh: 'file' is missing; run ./setup.sh" >&2; exit 1; }

# One cargo run for all targets: their final (single-threaded) LTO links overlap.
target_args=()
for target in "${targets[@]}"; do target_args+=(--target "$target"); done
# Device builds: without the publisher commands (see the `operator` feature in agent/Cargo.toml).
# The release profile aborts on panic, so nothing ever unwinds: no unwind tables for our crates
# and no .eh_frame_hdr index (~200 KB of the 4 MiB budget). What it costs: a panic's backtrace
# (RUST_BACKTRACE=1) is empty, which on a stripped binary told nothing anyway. Segments are
# aligned for pages up to 16 KiB (the Pi 5's kernel) rather than aarch64's default 64 KiB,
# which only padded the file.
export RUSTFLAGS="${RUSTFLAGS:-} -C force-unwind-tables=no -C link-arg=-Wl,--no-eh-frame-hdr -C link-arg=-Wl,-z,max-page-size=16384"
cargo build --release --locked -p outpost --no-default-features "${target_args[@]}"

target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
status=0
for target in "${targets[@]}"; do
  built="$target_dir/$target/release/outpost"
  out="cross/out/$target/outpost"
  mkdir -p "${out%/*}"
  cp "$built" "$out"
  # The unwind tables of the precompiled std and C objects (.eh_frame, ~530 KB, and the landing
  # pad tables .gcc_except_table point into) stay behind after the flags above: nothing can read
  # them (panic = abort, and without .eh_frame_hdr the unwinder finds no frame data anyway), so
  # they go, like symbols do. `outpost up` below and cross/test-arm.sh run the result.
  if [[ $target == aarch64-* ]]; then
    aarch64-linux-gnu-objcopy --remove-section=.eh_frame --remove-section=.gcc_except_table "$out"
  fi
  bytes=$(stat -c %s "$out")
  description=$(file -b "$out")
  echo
  echo "$target: $out"
  printf '  size:  %d bytes (%s MiB)\n' "$bytes" "$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }')"
  echo "  file:  $description"
  if [[ $target == *-gnu* ]]; then
    glibc=$("$(gcc_for "$target")-objdump" -T "$out" | grep -o 'GLIBC_[0-9][0-9.]*' |
      sed 's/GLIBC_//' | sort -uV | tail -1)
    echo "  needs: glibc >= $glibc"
  fi
  # The device budget: the 64-bit board binary must stay within 4 MiB (cross/README.md).
  if [[ $target == aarch64-* ]] && ((bytes > 4 * 1024 * 1024)); then
    echo "  ERROR: $bytes bytes is over the 4 MiB device budget" >&2
    status=1
  fi
  if ! grep -Eq "$(expect_for "$target")" <<<"$description"; then
    echo "  ERROR: expected \`file\` to match: $(expect_for "$target")" >&2
    status=1
  fi
  if [[ $description != *", stripped"* ]]; then
    echo "  ERROR: not stripped" >&2
    status=1
  fi
done
exit "$status"
