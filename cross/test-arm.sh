#!/usr/bin/env bash
# The test suite on ARM, under qemu-user, on an x86_64 machine (cross/README.md):
#   cross/test-arm.sh [--full] [TARGET...]      targets: aarch64-unknown-linux-musl (default),
#                                               armv7-unknown-linux-gnueabihf (default)
# Default (what CI runs): every test that runs in-process (unit tests of all packages, isolation,
# examples, scheduling, the hal's mosquitto tests, the manifest's), through cargo and the
# `runner` in .cargo/config.toml. --full: the whole workspace's tests, also those that spawn the
# `outpost` binary (cli, crash, sync, sync_faults, mqtt_triggers; slow under emulation).
# Then, for each target, the release binary from cross/build.sh runs `outpost up` on the sampler
# example for a few seconds and must report successful invocations and events.
set -euo pipefail
cd "$(dirname "$0")/.."

full=false
targets=()
for arg in "$@"; do
  case "$arg" in
    --full) full=true ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "cross/test-arm.sh: unknown option $arg" >&2; exit 2 ;;
    *) targets+=("$arg") ;;
  esac
done
((${#targets[@]})) || targets=(aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf)

# How to run a binary of each target here. Keep in line with `runner` in .cargo/config.toml.
runner_for() {
  case "$1" in
    aarch64-unknown-linux-musl) echo "qemu-aarch64-static" ;;
    armv7-unknown-linux-gnueabihf) echo "qemu-arm-static -L /usr/arm-linux-gnueabihf" ;;
    *) echo "cross/test-arm.sh: unsupported target $1" >&2; exit 2 ;;
  esac
}
for target in "${targets[@]}"; do
  read -r emulator _ <<<"$(runner_for "$target")"
  command -v "$emulator" >/dev/null || {
    echo "cross/test-arm.sh: $emulator is missing; run ./setup.sh" >&2; exit 1; }
done

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

# Test output is also collected here, to close with one count over all targets.
log=$(mktemp)

# The tests that run in-process. The others spawn target/<target>/debug/outpost, which the kernel
# can only exec through a qemu binfmt_misc registration: --full runs them through a shim instead.
subset=(-p outpost-abi -p outpost-manifest -p outpost-hal -p outpost-bundle -p outpost --lib --bins
  --test mqtt_broker --test linux_board --test accepted --test errors --test format)
# The in-process areas of the agent's one end-to-end binary (tests/main.rs), by module filter.
e2e_in_process=(-p outpost --test e2e -- isolation:: examples:: scheduling::)

# --full: tests that cannot run on a foreign architecture, as `--skip` filters per test binary.
# packaging's .deb tests strip and package the test build of `outpost` with the host's tools.
skips_for() {
  case "$1" in
    e2e-*) echo "--skip packaging::the_deb_" ;;
  esac
}

# --full: build every test binary, put a shim that execs the emulator in place of the debug
# `outpost` the tests spawn (its path is compiled into them), run each test binary under the
# emulator from its package directory as cargo would, then put the real binary back. (cargo
# itself would re-link its own `outpost` over the shim before running anything.)
shimmed=""
restore_shim() {
  if [[ -n $shimmed && -f "$shimmed.real" ]]; then mv -f "$shimmed.real" "$shimmed"; fi
  shimmed=""
}
trap 'restore_shim; rm -f "$log"' EXIT

full_run() {
  local target=$1 runner line exe manifest failed=() json skips
  read -r -a runner <<<"$(runner_for "$target")"
  json=$(cargo test --locked --target "$target" --workspace --no-run \
    --message-format=json-render-diagnostics) || {
    echo "cross/test-arm.sh: $target: building the tests failed" >&2; return 1; }
  local bin
  bin=$(grep -o '"executable":"[^"]*/debug/outpost"' <<<"$json" | sed 's/"executable":"//; s/"$//' |
    head -1)
  [[ -x $bin ]] || { echo "cross/test-arm.sh: no debug outpost binary for $target" >&2; exit 1; }
  # The shim is a new file: cargo hard-links `outpost` to its own copy in deps/, which must
  # stay intact (writing through the link would corrupt cargo's build).
  rm -f "$bin.real"
  mv "$bin" "$bin.real"
  shimmed=$bin
  printf '#!/bin/sh\nexec %s "%s" "$@"\n' "${runner[*]}" "$bin.real" >"$bin"
  chmod +x "$bin"
  while IFS= read -r line; do
    exe=$(sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' <<<"$line")
    manifest=$(sed -n 's/.*"manifest_path":"\([^"]*\)".*/\1/p' <<<"$line")
    [[ -n $exe ]] || continue
    read -r -a skips <<<"$(skips_for "${exe##*/}")"
    echo "     Running ${exe#"$PWD/"} ${skips[*]}"
    (cd "$(dirname "$manifest")" && "${runner[@]}" "$exe" "${skips[@]}") 2>&1 | tee -a "$log" ||
      failed+=("${exe##*/}")
  done < <(grep -E '"profile":\{[^}]*"test":true' <<<"$json" | grep '"executable":"/')
  restore_shim
  if ((${#failed[@]})); then
    echo "cross/test-arm.sh: $target: failed test binaries: ${failed[*]}" >&2
    return 1
  fi
}

# Guests (wasm) for the tests and the example; a no-op when ./setup.sh built them.
(cd bundles && env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET cargo build --release --quiet)

status=0
checks_failed=0
for target in "${targets[@]}"; do
  if $full; then
    say "$target: all tests under $(runner_for "$target")"
    full_run "$target" || status=1
  else
    say "$target: in-process tests under $(runner_for "$target")"
    cargo test --locked --target "$target" "${subset[@]}" 2>&1 | tee -a "$log" || status=1
    cargo test --locked --target "$target" "${e2e_in_process[@]}" 2>&1 | tee -a "$log" || status=1
  fi
done

say "release binaries (cross/build.sh)"
cross/build.sh "${targets[@]}" || { status=1; checks_failed=$((checks_failed + 1)); }

# The shipped binary runs the sampler example (a cron job every 2 s) under emulation: Ctrl-C after
# 5 s must stop it cleanly after at least one committed invocation with its event.
for target in "${targets[@]}"; do
  say "$target: outpost up bundles/examples/sampler under emulation"
  read -r -a runner <<<"$(runner_for "$target")"
  data=$(mktemp -d)
  set +e
  output=$(timeout -k 10 -s INT --preserve-status 5 "${runner[@]}" "cross/out/$target/outpost" \
    up bundles/examples/sampler --no-build --data "$data" 2>&1)
  code=$?
  set -e
  rm -rf "$data"
  printf '%s\n' "$output" | sed 's/^/  | /'
  problems=()
  ((code == 0)) || problems+=("exit status $code after SIGINT")
  grep -q ": ok in " <<<"$output" || problems+=("no 'ok in' line")
  grep -q "event readings" <<<"$output" || problems+=("no 'event readings' line")
  if ((${#problems[@]})); then
    echo "cross/test-arm.sh: $target: outpost up: $(IFS=,; echo "${problems[*]}")" >&2
    status=1
    checks_failed=$((checks_failed + 1))
  else
    echo "  $target: outpost up ran the example and produced events"
    echo "test result: ok. 1 passed; 0 failed (outpost up on $target)" >>"$log"
  fi
done

# One closing count: test cases under emulation plus the `outpost up` checks.
read -r passed failed < <(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p' "$log" |
  awk '{ p += $1; f += $2 } END { print p + 0, f + 0 }')
failed=$((failed + checks_failed))
((status == 0 || failed > 0)) || failed=1 # a test binary died without a result line
if $full; then mode="all tests"; else mode="in-process tests"; fi
say "ARM under qemu-user: ${targets[*]} ($mode, outpost up)"
echo "arm: $passed passed, $failed failed"
exit "$status"
