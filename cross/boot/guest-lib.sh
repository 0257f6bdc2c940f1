# Helpers for the scenarios' guest scripts (sourced inside the boot-test guest, as root).
# $T is the share (/mnt/test), $BOOT_NO this boot's number. Results: PASS:/FAIL: lines and
# FIGURE: name=value lines, which the host collects from the log.
set -u
fail=0
OUT=$T/out

check() { # check NAME COMMAND...: runs COMMAND, prints PASS/FAIL NAME
  if "${@:2}"; then echo "PASS: $1"; else echo "FAIL: $1"; fail=1; fi
}
figure() { echo "FIGURE: $1=$2"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
mono_s() { # a unit property holding a monotonic µs timestamp, in seconds since kernel start
  awk -v u="$(systemctl show -P "$2" "$1")" 'BEGIN{printf "%.1f", u/1e6}'
}
finish() {
  echo "RESULT: $([ $fail -eq 0 ] && echo PASS || echo FAIL)"
  exit $fail
}
wait_for() { # wait_for SECONDS COMMAND...: polls once a second until COMMAND succeeds
  local n=$1
  shift
  while ! "$@"; do
    n=$((n - 1))
    [ $n -gt 0 ] || return 1
    sleep 1
  done
}

# The events subscriber: a unit ordered before outpost.service that appends every message under
# outpost/ but the fleet's (binary chunks) to the share ($OUT/delivered.log, one line per
# message, written as it arrives), so what the broker delivered before a power cut is on the host.
# Its ExecStartPost waits until the subscription is live (a ping comes back), so outpost never
# publishes before it listens.
install_subscriber() {
  cat >/etc/systemd/system/boot-sub.service <<UNIT
[Unit]
Description=boot test: record what the broker delivers
After=mosquitto.service
Requires=mosquitto.service
Before=outpost.service
[Service]
# The 9p share must be mounted before the subscriber writes to it: after a power cut on armhf
# the 9p modules came up after this unit (the first try failed and nothing was recorded).
# (-M raspi3b has no virtio: there the payload is on the disk itself and nothing is mounted.)
ExecStartPre=/bin/sh -c 'for i in \$(seq 60); do mountpoint -q $T && exit 0; [ -e $T/scenario.guest ] && exit 0; modprobe 9pnet_virtio; mount -t 9p -o trans=virtio,version=9p2000.L,cache=none share $T && exit 0; sleep 1; done; exit 1'
ExecStart=/bin/sh -c 'exec stdbuf -oL mosquitto_sub -q 1 -c -i boot-sub -t "outpost/#" -T "outpost/fleet/#" -t boot/ping -F "%%t %%p" >>$OUT/delivered.log'
ExecStartPost=/bin/sh -c 'for i in \$(seq 60); do mosquitto_pub -q 1 -t boot/ping -m "\$(cat /proc/sys/kernel/random/boot_id)"; grep -q "boot/ping \$(cat /proc/sys/kernel/random/boot_id)" $OUT/delivered.log && exit 0; sleep 0.5; done; exit 1'
[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable --now boot-sub.service
}

# The package, on a fresh system: installs, is enabled, and its start is skipped (not failed)
# while agent.toml is the unprovisioned example.
install_package() {
  local deb
  deb=$(ls $T/deb/outpost_*.deb | head -1)
  check "dpkg -i $(basename "$deb")" dpkg -i "$deb"
  check "outpost.service enabled" systemctl -q is-enabled outpost.service
}

# `outpost provision`'s tree copied onto the root, as docs/FLASHING.md says, plus the test app.
provision() {
  cp -a $T/provision/. /
  mkdir -p /opt/outpost
  rm -rf /opt/outpost/app
  cp -a $T/app /opt/outpost/app
  grep -q '^app = ' /etc/outpost/agent.toml ||
    sed -i '0,/^\[/s||app = "/opt/outpost/app"\n\n[|' /etc/outpost/agent.toml
  systemd-tmpfiles --create outpost.conf
}

# Test-only settings for outpost.service: every event (-v) on the console as well as in the
# journal, so that the "ok ... seq a..=b" lines the agent prints after each durable commit reach
# the host's serial log even when the VM is then cut.
console_events() {
  mkdir -p /etc/systemd/system/outpost.service.d
  cat >/etc/systemd/system/outpost.service.d/boot-test.conf <<'UNIT'
[Service]
ExecStart=
ExecStart=/usr/bin/outpost -v agent --config /etc/outpost/agent.toml
StandardOutput=journal+console
StandardError=journal
UNIT
  systemctl daemon-reload
}

status_json() { outpost status --data /var/lib/outpost --json; }
json_num() { # json_num KEY: the first numeric "KEY":N in stdin
  grep -o "\"$1\":[0-9]*" | head -1 | cut -d: -f2
}
delivered_events() { grep -c '^outpost/[^ ]*/events/' $OUT/delivered.log 2>/dev/null || echo 0; }

# Seqs the agent reported committed this boot (its journal's "ok ... seq a..=b" lines) up to
# seq $1, that the broker never delivered: printed one a line.
lost_upto() {
  journalctl -b -u outpost -o cat --no-pager | grep ' ok in ' |
    sed -n 's/.* seq \([0-9]*\)\.\.=\([0-9]*\).*/\1 \2/p' >/tmp/reported
  grep '^outpost/[^ ]*/events/' $OUT/delivered.log | grep -o '"seq":[0-9]*' | cut -d: -f2 >/tmp/delivered
  awk -v upto="$1" 'NR==FNR { got[$1]=1; next } { for (s=$1; s<=$2 && s<=upto; s++) if (!(s in got)) print s }' \
    /tmp/delivered /tmp/reported
}
reported_max() {
  journalctl -b -u outpost -o cat --no-pager | grep ' ok in ' |
    sed -n 's/.* seq [0-9]*\.\.=\([0-9]*\).*/\1/p' | sort -n | tail -1
}
delivered_max() {
  grep '^outpost/[^ ]*/events/' $OUT/delivered.log | grep -o '"seq":[0-9]*' | cut -d: -f2 | sort -n | tail -1
}
