#!/usr/bin/env bash
# Memory footprint of `outpost agent`, in one command: every figure of the "Footprint" section of
# BENCHMARKS.md.
#   cross/footprint.sh                 build (or reuse) the release binaries and guests, measure all
#   cross/footprint.sh --no-build      measure the binaries already in cross/out/<target>/outpost
#   cross/footprint.sh [--no-build] TARGET...   only these: x86_64-unknown-linux-gnu (the host,
#                                      run natively), aarch64-unknown-linux-musl (run under
#                                      qemu-aarch64-static)
# For each target it reports:
#   - the stripped binary's size (aarch64: cross/build.sh; host: cargo build --release --target
#     <host>, copied to cross/out/<host>/outpost);
#   - idle: peak RSS (VmHWM) of `outpost agent --app bundles/examples/sampler` connected to a local
#     mosquitto, over its first $FOOTPRINT_IDLE_S s (default 20);
#   - load: peak RSS of `outpost agent --app bundles/testing/load` (one 100-byte event every 10 ms)
#     that first runs with the broker unreachable on top of a backlog of $FOOTPRINT_BACKLOG events
#     (default 50,000, queued with `outpost invoke` of the same component), then meets the broker
#     and drains while the app keeps invoking; measured over $FOOTPRINT_LOAD_S s (default 30)
#     after the broker started. Also: the backlog at connect, when the broker delivered its last
#     event (a mosquitto_sub on the events topic) and so the drain rate, the first `sync: drained`,
#     invocations/s, skipped runs.
# Under qemu-user the process is qemu: its VmHWM includes the emulator (its own binary, heap and
# the cache of translated code). The script also measures qemu running a trivial static aarch64
# binary, and samples /proc/PID/smaps to split the qemu process's RSS into the guest's own
# mappings (the agent: its binary's pages, heap, stacks), translated code and the rest of qemu.
# The guest share is the estimate of the agent's RSS on a board that the limits are checked on.
#
# Needs: mosquitto, mosquitto_sub, qemu-aarch64-static, aarch64-linux-gnu-gcc (./setup.sh).
# FOOTPRINT_KEEP=1 keeps the work directory (logs, samples) and prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C # decimal points in $EPOCHREALTIME and printf

IDLE_S=${FOOTPRINT_IDLE_S:-20}
LOAD_S=${FOOTPRINT_LOAD_S:-30}
OFFLINE_S=${FOOTPRINT_OFFLINE_S:-5}
BACKLOG=${FOOTPRINT_BACKLOG:-50000}
CHUNK=5000 # events per `outpost invoke` while queueing the backlog (within the app's output limit)
MOSQUITTO=/usr/sbin/mosquitto
QEMU=qemu-aarch64-static
SAMPLER_APP=bundles/examples/sampler
LOAD_APP=bundles/testing/load
# Limits of the issue (KiB for RSS, bytes for the binary).
LIMIT_BINARY=$((4 * 1024 * 1024))
LIMIT_IDLE_KIB=$((8 * 1024))
LIMIT_LOAD_KIB=$((16 * 1024))

host=$(rustc -vV | sed -n 's/^host: //p')
build=1
targets=()
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    "$host" | aarch64-unknown-linux-musl) targets+=("$arg") ;;
    *) echo "footprint: unknown argument $arg (targets: $host aarch64-unknown-linux-musl)" >&2; exit 2 ;;
  esac
done
((${#targets[@]})) || targets=("$host" aarch64-unknown-linux-musl)

die() { echo "footprint: $*" >&2; exit 1; }
say() { printf '\033[1mfootprint:\033[0m %s\n' "$*"; }
for tool in "$MOSQUITTO" mosquitto_sub; do
  command -v "$tool" >/dev/null || die "$tool is missing; run ./setup.sh"
done
if [[ " ${targets[*]} " == *" aarch64-unknown-linux-musl "* ]]; then
  for tool in "$QEMU" aarch64-linux-gnu-gcc; do
    command -v "$tool" >/dev/null || die "$tool is missing; run ./setup.sh"
  done
fi

# --- processes: every background process is recorded and ended on exit ---------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/outpost-footprint.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ ${FOOTPRINT_KEEP:-0} == 1 ]]; then
    echo "footprint: work directory kept: $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget() { # PID: no longer ours to clean up
  local kept=() pid
  for pid in "${pids[@]}"; do [[ $pid == "$1" ]] || kept+=("$pid"); done
  pids=("${kept[@]+"${kept[@]}"}")
}

# SIGTERM, then wait up to 20 s for the exit (SIGKILL and fail after that). Sets $stop_status.
stop() { # PID NAME
  local pid=$1 name=$2
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
    die "$name did not stop within 20 s of SIGTERM"
  fi
  stop_status=0
  wait "$pid" || stop_status=$?
  forget "$pid"
}

# Prefixes each line with the wall time it was read ($EPOCHREALTIME, seconds.micro).
stamp() { while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done; }

# Waits until FILE has a line matching the ERE after a stamp >= SINCE; prints that line's stamp.
# Fails if PID exits first or TIMEOUT seconds pass.
wait_line() { # FILE ERE SINCE TIMEOUT PID WHAT
  local file=$1 ere=$2 since=$3 timeout=$4 pid=$5 what=$6 deadline found
  deadline=$(awk -v n="$EPOCHREALTIME" -v t="$timeout" 'BEGIN { printf "%.6f", n + t }')
  while :; do
    found=$(awk -v s="$since" -v re="$ere" '$1 >= s && $0 ~ re { print $1; exit }' "$file" 2>/dev/null || true)
    [[ -n $found ]] && { echo "$found"; return 0; }
    kill -0 "$pid" 2>/dev/null || { tail -20 "$file" >&2; die "$what: process exited"; }
    if awk -v n="$EPOCHREALTIME" -v d="$deadline" 'BEGIN { exit !(n > d) }'; then
      tail -20 "$file" >&2
      die "$what: not seen within ${timeout}s"
    fi
    sleep 0.05
  done
}

status_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; } # PID VmHWM|VmRSS

# One sample of a process's memory: "stamp VmRSS guest code other" in KiB. For a qemu-user process,
# from smaps: the guest's mappings (the guest binary and everything qemu maps for the guest, which
# qemu 7 on x86_64 places below 2^40: the guest image at its link address, guest mmaps from
# 0x5500000000) vs qemu's own above that (its binary, heap, stack), of which the anonymous
# executable mapping is the translated-code cache. Natively: VmRSS and "- - -".
sample() { # PID EMULATED(0|1)
  local rss
  rss=$(status_kib "$1" VmRSS) || return 1
  [[ -n $rss ]] || return 1
  if [[ $2 == 1 ]]; then
    awk -v t="$EPOCHREALTIME" -v rss="$rss" '
      /^[0-9a-f]+-[0-9a-f]+ / { split($1, range, "-"); guest = length(range[1]) <= 10
        code = !guest && $2 ~ /x/ && NF < 6; next }
      /^Rss:/ { if (guest) g += $2; else if (code) c += $2; else o += $2 }
      END { printf "%s %d %d %d %d\n", t, rss, g, c, o }' "/proc/$1/smaps" 2>/dev/null || return 1
  else
    printf '%s %d - - -\n' "$EPOCHREALTIME" "$rss"
  fi
}

# Where a process's RSS is now, from smaps (KiB), as one line. Natively: the outpost binary's
# pages, shared libraries, anonymous memory (heap, stacks). Under qemu: the guest's binary pages
# and anonymous memory (as in sample), then qemu's translated code and the rest of qemu.
breakdown() { # PID EMULATED
  awk -v emulated="$2" '
    /^[0-9a-f]+-[0-9a-f]+ / { split($1, range, "-"); guest = length(range[1]) <= 10
      path = NF >= 6 ? $6 : ""; file = path ~ /^\//
      kind = emulated ? (guest ? (file ? "gbin" : "ganon") : ($2 ~ /x/ && path == "" ? "code" : "qemu")) \
                      : (path ~ /\/outpost$/ ? "bin" : (file ? "lib" : "anon")); next }
    /^Rss:/ { r[kind] += $2 }
    END {
      if (emulated) printf "guest: binary %d + anonymous %d KiB; qemu: translated code %d + rest %d KiB\n",
        r["gbin"], r["ganon"], r["code"], r["qemu"]
      else printf "binary %d + shared libraries %d + anonymous %d KiB\n", r["bin"], r["lib"], r["anon"]
    }' "/proc/$1/smaps"
}

# Samples PID every 0.1 s into FILE until the wall clock reaches UNTIL (or the process exits).
sample_until() { # PID EMULATED FILE UNTIL
  while awk -v n="$EPOCHREALTIME" -v u="$4" 'BEGIN { exit !(n < u) }'; do
    kill -0 "$1" 2>/dev/null || die "process $1 exited during the measurement (see $3)"
    sample "$1" "$2" >>"$3" || true
    sleep 0.1
  done
}

max_column() { awk -v c="$2" '$c != "-" && $c > m { m = $c } END { print m + 0 }' "$1"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.2f", k / 1024 }'; }
# For a qemu process, the guest's peak RSS: the largest sampled value, or VmHWM minus qemu's own
# RSS (translated code + the rest) at the end of the window if that is larger (a short peak
# between samples; qemu's own part grows, it is not freed, so this does not overstate the guest).
guest_peak() { # PID SAMPLES
  local hwm own
  hwm=$(status_kib "$1" VmHWM)
  own=$(sample "$1" 1 | awk '{ print $4 + $5 }')
  awk -v a="$(max_column "$2" 3)" -v b=$((hwm - own)) 'BEGIN { print (a > b ? a : b) }'
}
free_port() { # a loopback port nothing listens on, below the ephemeral range
  local port
  for _ in $(seq 200); do
    port=$((20000 + RANDOM % 12000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return 0; }
  done
  die "no free loopback port found"
}

# mosquitto on PORT (no persistence, no queue or in-flight limits, as the sync bench), its log
# stamped into DIR/log. Returns once it logs "running"; sets $broker_pid and $broker_ready.
start_broker() { # DIR PORT
  local dir=$1 port=$2 since=$EPOCHREALTIME
  mkdir -p "$dir"
  {
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port"
    printf 'set_tcp_nodelay true\nmax_inflight_messages 0\nmax_queued_messages 0\nmax_queued_bytes 0\n'
    printf 'log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n'
    # As root, mosquitto 2 would switch to user mosquitto, who cannot read this directory.
    if [[ $(id -u) == 0 ]]; then printf 'user root\n'; fi
  } >"$dir/mosquitto.conf"
  "$MOSQUITTO" -c "$dir/mosquitto.conf" </dev/null >/dev/null 2> >(stamp >>"$dir/log") &
  broker_pid=$!
  pids+=("$broker_pid")
  broker_ready=$(wait_line "$dir/log" ' running$' "$since" 20 "$broker_pid" "mosquitto on port $port")
}

# `outpost agent` of TARGET with stdout+stderr stamped into LOG; sets $agent_pid.
start_agent() { # TARGET LOG DEVICE PORT DATA APP
  local -a cmd=()
  if [[ $1 == aarch64-* ]]; then cmd=("$QEMU"); fi
  cmd+=("cross/out/$1/outpost" agent --device-id "$3" --broker "mqtt://127.0.0.1:$4" --data "$5"
    --app "$6" --simulate --cron-sync-wait 0s --reconnect-min 20ms --reconnect-max 250ms --status-every 1s
    -v) # -v: routine lines too (`sync: drained`, timed below), as before they went to debug
  "${cmd[@]}" </dev/null > >(stamp >"$2") 2>&1 &
  agent_pid=$!
  pids+=("$agent_pid")
}

stop_agent() { # PID LOG
  stop "$1" "outpost agent"
  [[ $stop_status == 0 ]] || { tail -20 "$2" >&2; die "outpost agent exited with status $stop_status"; }
  # The stamping reader may still be writing the last lines.
  for _ in $(seq 100); do grep -q 'outpost agent: stopped' "$2" && return 0; sleep 0.05; done
  tail -20 "$2" >&2
  die "outpost agent did not log 'stopped' after SIGTERM"
}

# --- build ------------------------------------------------------------------------------------------
if ((build)); then
  for target in "${targets[@]}"; do
    if [[ $target == "$host" ]]; then
      say "building the host release binary ($host)"
      # An explicit --target keeps this binary apart from target/release, which `cargo bench`
      # (profile bench: same code, not stripped) also writes.
      cargo build --release --locked -p outpost --target "$host"
      target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
      mkdir -p "cross/out/$host"
      cp "$target_dir/$host/release/outpost" "cross/out/$host/outpost"
    else
      say "building $target (cross/build.sh)"
      cross/build.sh "$target"
    fi
  done
  say "building the guests (bundles/)"
  (cd bundles && cargo build --release --quiet)
fi
for target in "${targets[@]}"; do
  [[ -x cross/out/$target/outpost ]] || die "cross/out/$target/outpost is missing (run without --no-build)"
done
for wasm in sampler load; do
  [[ -f bundles/target/wasm32-unknown-unknown/release/$wasm.wasm ]] ||
    die "bundles/target/wasm32-unknown-unknown/release/$wasm.wasm is missing (run without --no-build)"
done

# --- qemu's own footprint ---------------------------------------------------------------------------
qemu_base_kib=""
if [[ " ${targets[*]} " == *" aarch64-unknown-linux-musl "* ]]; then
  say "qemu baseline: $QEMU running a trivial static aarch64 program (puts, then pause)"
  printf '#include <stdio.h>\n#include <unistd.h>\nint main(void) { puts("ready"); fflush(stdout); for (;;) pause(); }\n' >"$work/pause.c"
  aarch64-linux-gnu-gcc -static -Os -o "$work/pause-aarch64" "$work/pause.c"
  since=$EPOCHREALTIME
  "$QEMU" "$work/pause-aarch64" </dev/null > >(stamp >"$work/pause.log") 2>&1 &
  pause_pid=$!
  pids+=("$pause_pid")
  wait_line "$work/pause.log" 'ready$' "$since" 20 "$pause_pid" "qemu baseline" >/dev/null
  qemu_base_kib=$(status_kib "$pause_pid" VmHWM)
  read -r _ _ qemu_base_guest qemu_base_code qemu_base_other < <(sample "$pause_pid" 1)
  echo "  VmHWM $qemu_base_kib KiB (guest $qemu_base_guest, translated code $qemu_base_code, rest of qemu $qemu_base_other KiB)"
  ((qemu_base_guest > 0)) ||
    die "no guest mappings below 2^40 in the qemu process: this qemu lays out guest memory differently; fix sample()"
  stop "$pause_pid" "qemu baseline"
fi

# --- start-up: from exec to the first committed invocation ---------------------------------------
# `outpost up --no-build` of an app whose one component runs on start (the noop guest), five
# times, each with a fresh state directory: the time from the exec to its ": ok in" line covers
# loading the binary, creating the store, compiling the module and the first commit.
declare -A startup
mkdir -p "$work/startup-app"
cat >"$work/startup-app/outpost.toml" <<TOML
manifest_version = 1
[app]
name = "startup"
version = "1.0.0"
[[component]]
id = "noop"
source = "$PWD/bundles/target/wasm32-unknown-unknown/release/noop.wasm"
[[component.trigger]]
on_start = true
TOML
for target in "${targets[@]}"; do
  say "$target: start-up to the first invocation (5 runs)"
  runner=()
  [[ $target == aarch64-* ]] && runner=("$QEMU")
  times=()
  for run in 1 2 3 4 5; do
    rm -rf "$work/startup-data"
    since=$EPOCHREALTIME
    "${runner[@]}" "cross/out/$target/outpost" up --no-build --data "$work/startup-data" "$work/startup-app" \
      </dev/null > >(stamp >"$work/startup-$run.log") 2>&1 &
    up_pid=$!
    pids+=("$up_pid")
    at=$(wait_line "$work/startup-$run.log" ': ok in ' "$since" 30 "$up_pid" "start-up run $run")
    stop "$up_pid" "start-up run $run"
    times+=("$(awk -v a="$at" -v b="$since" 'BEGIN { printf "%.0f", (a - b) * 1000 }')")
  done
  startup[$target]=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
  echo "  ms to the first invocation: ${times[*]} (median ${startup[$target]})"
done

# --- idle -------------------------------------------------------------------------------------------
idle_port=$(free_port)
start_broker "$work/broker-idle" "$idle_port"
idle_broker=$broker_pid

declare -A size idle_hwm idle_guest idle_runs load_hwm load_guest load_offline_hwm backlog drained_after \
  drain_rate runs_per_s skipped failed final_outbox connect_after
for target in "${targets[@]}"; do
  emulated=0
  [[ $target == aarch64-* ]] && emulated=1
  size[$target]=$(stat -c %s "cross/out/$target/outpost")
  say "$target: idle, $SAMPLER_APP for ${IDLE_S}s"
  dir="$work/$target"
  mkdir -p "$dir"
  start=$EPOCHREALTIME
  start_agent "$target" "$dir/idle.log" "fp-idle-${target%%-*}" "$idle_port" "$dir/idle-data" "$SAMPLER_APP"
  pid=$agent_pid
  connected=$(wait_line "$dir/idle.log" 'sync: connected' "$start" 60 "$pid" "idle agent ($target)")
  sample_until "$pid" "$emulated" "$dir/idle.samples" "$(awk -v s="$start" -v d="$IDLE_S" 'BEGIN { printf "%.6f", s + d }')"
  idle_hwm[$target]=$(status_kib "$pid" VmHWM)
  idle_guest[$target]=0
  ((emulated)) && idle_guest[$target]=$(guest_peak "$pid" "$dir/idle.samples")
  idle_where=$(breakdown "$pid" "$emulated")
  stop_agent "$pid" "$dir/idle.log"
  idle_runs[$target]=$(grep -c ': ok in ' "$dir/idle.log" || true)
  grep -q 'FAILED' "$dir/idle.log" && die "idle agent ($target): an invocation failed (see $dir/idle.log)"
  printf '  connected after %.2f s; %s sampler runs; VmHWM %s KiB (%s MiB)' \
    "$(awk -v a="$connected" -v b="$start" 'BEGIN { print a - b }')" "${idle_runs[$target]}" \
    "${idle_hwm[$target]}" "$(mib "${idle_hwm[$target]}")"
  ((emulated)) && printf '; guest share peak %s KiB (%s MiB)' "${idle_guest[$target]}" "$(mib "${idle_guest[$target]}")"
  echo
  echo "  RSS at the end: $idle_where"
done
stop "$idle_broker" mosquitto

# --- load -------------------------------------------------------------------------------------------
printf '%s\n' "$CHUNK" >"$work/chunk"
for target in "${targets[@]}"; do
  emulated=0
  runner=()
  [[ $target == aarch64-* ]] && emulated=1 && runner=("$QEMU")
  bin="cross/out/$target/outpost"
  dir="$work/$target"
  data="$dir/load-data"
  device="fp-load-${target%%-*}"

  say "$target: queueing a backlog of $BACKLOG events (outpost invoke $LOAD_APP load, $CHUNK per invocation)"
  left=$BACKLOG
  while ((left > 0)); do
    n=$((left < CHUNK ? left : CHUNK))
    printf '%s\n' "$n" >"$work/chunk"
    "${runner[@]}" "$bin" invoke "$LOAD_APP" load --payload "$work/chunk" --data "$data" >"$dir/invoke.log" 2>&1 ||
      { tail -5 "$dir/invoke.log" >&2; die "outpost invoke failed"; }
    left=$((left - n))
  done
  queued=$("${runner[@]}" "$bin" outbox list --data "$data" --limit 0 | sed -n 's/^outbox: \([0-9]*\) record.*/\1/p')
  [[ $queued == "$BACKLOG" ]] || die "expected $BACKLOG queued events, the outbox holds '${queued}'"

  port=$(free_port)
  say "$target: $LOAD_APP (every 10 ms) with the broker unreachable for ${OFFLINE_S}s, then mosquitto on :$port for ${LOAD_S}s"
  start=$EPOCHREALTIME
  start_agent "$target" "$dir/load.log" "$device" "$port" "$data" "$LOAD_APP"
  pid=$agent_pid
  first_run=$(wait_line "$dir/load.log" ': ok in ' "$start" 60 "$pid" "load agent ($target)")
  wait_line "$dir/load.log" 'cannot connect' "$start" 60 "$pid" "load agent ($target), offline" >/dev/null
  sample_until "$pid" "$emulated" "$dir/load.samples" "$(awk -v s="$first_run" -v d="$OFFLINE_S" 'BEGIN { printf "%.6f", s + d }')"
  load_offline_hwm[$target]=$(status_kib "$pid" VmHWM)

  start_broker "$dir/broker-load" "$port"
  load_broker=$broker_pid
  t0=$broker_ready
  t_end=$(awk -v s="$t0" -v d="$LOAD_S" 'BEGIN { printf "%.6f", s + d }')
  # The events as the broker delivers them, each message stamped by mosquitto_sub (%U: wall time).
  mosquitto_sub -p "$port" -q 1 -t "outpost/$device/events/load" -F '%U %p' >"$dir/events" 2>"$dir/events.err" &
  sub_pid=$!
  pids+=("$sub_pid")
  t_conn=$(wait_line "$dir/load.log" 'sync: connected' "$t0" 30 "$pid" "load agent ($target), reconnect")
  sample_until "$pid" "$emulated" "$dir/load.samples" "$t_end"
  load_hwm[$target]=$(status_kib "$pid" VmHWM)
  load_guest[$target]=0
  ((emulated)) && load_guest[$target]=$(guest_peak "$pid" "$dir/load.samples")
  load_where=$(breakdown "$pid" "$emulated")
  status=$(mosquitto_sub -p "$port" -t "outpost/$device/status" -C 1 -W 10 2>/dev/null || true)
  stop_agent "$pid" "$dir/load.log"
  stop "$sub_pid" mosquitto_sub
  stop "$load_broker" mosquitto

  # From the stamped log: the backlog when the link came up (the highest seq committed before
  # "sync: connected": seqs start at 1 and nothing had left the outbox), invocations in the window,
  # the first "sync: drained" (printed only when the outbox is seen empty with nothing in flight or
  # awaiting deletion, which a new event every 10 ms can prevent for a long time).
  read -r queued_at_connect runs fails said_drained < <(awk -v c="$t_conn" -v t0="$t0" -v e="$t_end" '
    / ok in / { s = match($0, /\.\.=[0-9]+/) ? substr($0, RSTART + 3, RLENGTH - 3) + 0 : 0
      if ($1 < c && s > b) b = s
      if ($1 >= t0 && $1 < e) n++ }
    / FAILED / { f++ }
    $1 >= c && /sync: drained/ && !d { d = $1 }
    END { printf "%d %d %d %s\n", b, n, f + 0, (d ? d - c : "-") }' "$dir/load.log")
  backlog[$target]=$queued_at_connect
  # Drained = the broker delivered the backlog's last event (to the subscriber, so it had taken it
  # from the agent). The subscriber may connect after the agent and miss the first events, never
  # the last one of the backlog.
  delivered_at=$(awk -v k="\"seq\":$queued_at_connect," 'index($0, k) { print $1; exit }' "$dir/events")
  if [[ -z $delivered_at ]]; then
    drained_after[$target]="not within ${LOAD_S}s"
    drain_rate[$target]="-"
  else
    drained_after[$target]=$(awk -v a="$delivered_at" -v b="$t_conn" 'BEGIN { printf "%.2f s", a - b }')
    drain_rate[$target]=$(awk -v n="$queued_at_connect" -v a="$delivered_at" -v b="$t_conn" 'BEGIN { printf "%.0f", n / (a - b) }')
  fi
  runs_per_s[$target]=$(awk -v n="$runs" -v d="$LOAD_S" 'BEGIN { printf "%.1f", n / d }')
  failed[$target]=$fails
  skipped[$target]=$(grep -o '"skipped_runs":[0-9]*' <<<"$status" | cut -d: -f2 || true)
  final_outbox[$target]=$(grep -o '"outbox":{"records":[0-9]*' <<<"$status" | grep -o '[0-9]*$' || true)
  acked=$(grep -o '"acked_rows":[0-9]*' <<<"$status" | cut -d: -f2 || true)
  load_guest_offline=$(awk -v t="$t0" '$1 < t && $3 != "-" && $3 > m { m = $3 } END { print m + 0 }' "$dir/load.samples")
  connect_after[$target]=$(awk -v a="$t_conn" -v b="$t0" 'BEGIN { printf "%.2f", a - b }')
  said="not printed"
  [[ $said_drained == - ]] || said=$(awk -v d="$said_drained" 'BEGIN { printf "%.2f s after connecting", d }')
  echo "  backlog at connect ${backlog[$target]} events; connected ${connect_after[$target]} s after the broker started"
  echo "  backlog's last event delivered ${drained_after[$target]} after connecting (${drain_rate[$target]} events/s);" \
    "first 'sync: drained' $said"
  echo "  ${runs_per_s[$target]} invocations/s in the window, $fails failed; status at the end: skipped runs ${skipped[$target]:-?}," \
    "acked rows ${acked:-?}, outbox ${final_outbox[$target]:-?} records"
  printf '  VmHWM offline with the backlog %s KiB (%s MiB); after the drain window %s KiB (%s MiB)' \
    "${load_offline_hwm[$target]}" "$(mib "${load_offline_hwm[$target]}")" "${load_hwm[$target]}" "$(mib "${load_hwm[$target]}")"
  ((emulated)) && printf '; guest share peak %s KiB offline (sampled), %s KiB overall' "$load_guest_offline" "${load_guest[$target]}"
  echo
  echo "  RSS at the end: $load_where"
  ((fails == 0)) || die "load agent ($target): $fails invocations failed (see $dir/load.log)"
done

# --- table ------------------------------------------------------------------------------------------
verdict() { (($1 <= $2)) && echo PASS || echo FAIL; } # VALUE LIMIT
bytes_mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }
source_state() { # the commit, and whether the tree differs from it (plumbing only: no index writes)
  local commit
  commit=$(git rev-parse --short HEAD 2>/dev/null) || { echo "not a git checkout"; return 0; }
  if git diff-index --quiet HEAD -- 2>/dev/null; then echo "commit $commit"; else echo "commit $commit + uncommitted changes"; fi
}
row() { printf '%-34s %-26s %-24s %-24s\n' "$@"; }
echo
echo "Footprint, $(date -u +%F), $(source_state); $(nproc) cores $(uname -m), $($QEMU --version 2>/dev/null | head -1 || true)"
echo "idle: $SAMPLER_APP, first ${IDLE_S}s. load: $LOAD_APP every 10 ms, backlog $BACKLOG + ${OFFLINE_S}s offline, ${LOAD_S}s from broker start"
row target "binary, stripped" "idle VmHWM" "load VmHWM"
row "limit" "<= 4 MiB (aarch64)" "<= 8 MiB" "<= 16 MiB"
for target in "${targets[@]}"; do
  bytes=${size[$target]}
  if [[ $target == aarch64-* ]]; then
    row "$target" "$bytes B $(bytes_mib "$bytes") MiB $(verdict "$bytes" $LIMIT_BINARY)" \
      "$(mib "${idle_hwm[$target]}") MiB qemu total" "$(mib "${load_hwm[$target]}") MiB qemu total"
    row "  agent under qemu (guest share)" "" \
      "$(mib "${idle_guest[$target]}") MiB $(verdict "${idle_guest[$target]}" $LIMIT_IDLE_KIB)" \
      "$(mib "${load_guest[$target]}") MiB $(verdict "${load_guest[$target]}" $LIMIT_LOAD_KIB)"
  else
    row "$target" "$bytes B $(bytes_mib "$bytes") MiB" \
      "$(mib "${idle_hwm[$target]}") MiB $(verdict "${idle_hwm[$target]}" $LIMIT_IDLE_KIB)" \
      "$(mib "${load_hwm[$target]}") MiB $(verdict "${load_hwm[$target]}" $LIMIT_LOAD_KIB)"
  fi
done
if [[ -n $qemu_base_kib ]]; then
  echo "qemu total = the qemu process's VmHWM. qemu running a trivial static aarch64 program: $(mib "$qemu_base_kib") MiB" \
    "(guest $qemu_base_guest KiB, translated code $qemu_base_code KiB, rest of qemu $qemu_base_other KiB)."
  echo "guest share = RSS of the guest's own mappings (binary, heap, stacks): the larger of its peak sampled every" \
    "0.1 s and VmHWM minus qemu's own RSS at the end."
fi
for target in "${targets[@]}"; do
  echo "$target start-up: exec to the first committed invocation (outpost up, on-start noop), median of 5: ${startup[$target]} ms"
done
for target in "${targets[@]}"; do
  echo "$target load: backlog ${backlog[$target]} at connect, delivered ${drained_after[$target]} after connect" \
    "(${drain_rate[$target]} events/s), ${runs_per_s[$target]} invocations/s, ${failed[$target]} failed, skipped runs ${skipped[$target]:-?}"
done
