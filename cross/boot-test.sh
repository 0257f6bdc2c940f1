#!/usr/bin/env bash
# Boot tests: the outpost .deb under real systemd on emulated ARM boards (qemu full-system, TCG).
#
#   cross/boot-test.sh setup                 host packages (apt) + binfmt_misc; idempotent
#   cross/boot-test.sh image ARCH            the cached bookworm image (rebuilt only when its
#                                            recipe changed; FORCE=1 rebuilds)
#   cross/boot-test.sh deb ARCH              release binary (cross/build.sh) + .deb for ARCH
#   cross/boot-test.sh run ARCH SCENARIO     one scenario (cross/boot/SCENARIO.sh), exit = its
#                                            status; log and figures in $OUT/ARCH-SCENARIO/
#   cross/boot-test.sh matrix                setup, then every scenario on arm64 and armhf,
#                                            install-run and no-rtc on raspi3b (~50 min on 2
#                                            cores with the images cached)
#   cross/boot-test.sh ci                    arm64 install-run + power-cut (what .ci/run runs)
#   cross/boot-test.sh shell ARCH            interactive boot of the image (Ctrl-A x quits)
#
# ARCH: arm64 (-M virt, cortex-a53: the Pi 3's core), armhf (-M virt, cortex-a15, 32-bit ARMv7
# with the armv7 glibc binary), raspi3b (-M raspi3b: BCM2837, 4 cores, 1 GiB, SD card, no RTC,
# no virtio; uses the arm64 image and binary).
#
# How a run works: the cached image (read-only) is copied to a scratch disk for the scenario, so
# state survives the scenario's own reboots and power cuts but never leaks into the next
# scenario. The guest has no network device (-nic none): mosquitto runs on its loopback. A 9p
# share (virtio) carries the .deb, the provision output, the scenario scripts in, and results
# out; the guest writes results there unbuffered, so whatever it reported before a power cut
# (qemu killed with SIGKILL) is on the host. raspi3b has no virtio: the payload is written into
# the scratch disk and results come back on the serial console (ARMTEST| lines).
#
# A scenario is a pair of scripts in cross/boot/: SCENARIO.sh runs on the host (drives boots,
# cuts, checks) with the helpers below (boot_vm, boot_until, ...) and SCENARIO.guest runs as
# root inside the guest after multi-user.target, once per boot (BOOT_NO tells which).
#
# Environment: OUTPOST_BOOT_CACHE (images; default ~/.cache/outpost-boot), OUT (results; default
# $OUTPOST_BOOT_CACHE/out), SMP (2; raspi3b always 4), MEM (1024), BOOT_TIMEOUT (900 s per boot),
# NO_BUILD=1 (reuse the last .deb), MIRROR/SECURITY (Debian archive; SECURITY= omits it).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
CACHE=${OUTPOST_BOOT_CACHE:-$HOME/.cache/outpost-boot}
OUT=${OUT:-$CACHE/out}
SUITE=bookworm
SMP=${SMP:-2}
MEM=${MEM:-1024}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-900}

say() { printf '\033[1mboot-test:\033[0m %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}

# The Debian archive this machine's apt already uses (first URI whose Suites has bookworm$1).
host_uri() {
  awk -v want="bookworm$1" '/^URIs:/{u=$2} /^Suites:/{for(i=2;i<=NF;i++) if($i==want){print u; exit}}' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null || true
}
MIRROR=${MIRROR:-$(host_uri "")}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY=${SECURITY-$(host_uri -security)}

# --- host setup ---------------------------------------------------------------------------------
HOST_PACKAGES=(qemu-system-arm qemu-utils qemu-user-static binfmt-support mmdebstrap arch-test
  e2fsprogs dpkg-dev binutils)

cmd_setup() {
  local missing=() p sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  for p in "${HOST_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    $sudo apt-get update -qq || true # one index failing mid-sync must not stop us
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
  # mmdebstrap runs the ARM maintainer scripts through qemu-user, registered with binfmt_misc.
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    $sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  $sudo update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  $sudo update-binfmts --enable qemu-arm >/dev/null 2>&1 || true
  arch-test arm64 >/dev/null && arch-test armhf >/dev/null || die "binfmt_misc: cannot run ARM binaries"
  say "host ready"
}

# --- the image ----------------------------------------------------------------------------------
# Everything the image is made of is in image_recipe; its hash names the cache entry.
GUEST_PACKAGES="systemd-sysv,udev,dbus,kmod,procps,iproute2,initramfs-tools,mosquitto,mosquitto-clients,tzdata,coreutils"

image_arch() { # the Debian architecture of an image: raspi3b boots the arm64 one
  case "$1" in
    arm64 | raspi3b) echo arm64 ;;
    armhf) echo armhf ;;
    *) die "unknown ARCH '$1' (arm64, armhf, raspi3b)" ;;
  esac
}

kernel_package() {
  case "$1" in
    arm64) echo linux-image-arm64 ;;
    armhf) echo linux-image-armmp-lpae ;;
  esac
}

write_overlay() { # files baked into the image, under $1
  local o=$1
  mkdir -p "$o/usr/local/sbin" "$o/etc/systemd/system" "$o/etc/initramfs-tools/conf.d" \
    "$o/etc/mosquitto/conf.d"
  cp "$here/boot/guest-harness" "$o/usr/local/sbin/outpost-boot-harness"
  chmod 755 "$o/usr/local/sbin/outpost-boot-harness"
  cp "$here/boot/outpost-boot-harness.service" "$o/etc/systemd/system/"
  # MODULES=most makes mkinitramfs spawn thousands of emulated processes (> 10 min); a short
  # list takes < 1 min: virtio for -M virt, SD host + mmc for -M raspi3b, 9p for the share.
  printf 'MODULES=list\nCOMPRESS=gzip\n' >"$o/etc/initramfs-tools/conf.d/outpost-boot"
  printf '%s\n' virtio_pci virtio_mmio virtio_blk ext4 mmc_block sdhci_iproc bcm2835 \
    >"$o/etc/initramfs-tools/modules"
  # The broker keeps its state across the scenario's power cuts as far as it can.
  printf 'persistence true\nautosave_interval 1\nautosave_on_changes true\n' \
    >"$o/etc/mosquitto/conf.d/outpost-boot.conf"
}

recipe_hash() { # changes whenever anything the image is built from changes
  {
    declare -f write_overlay image_build
    echo "$GUEST_PACKAGES $MIRROR $SECURITY $1"
    cat "$here/boot/guest-harness" "$here/boot/outpost-boot-harness.service"
  } | sha256sum | cut -c1-16
}

image_build() { # $1 arm64|armhf; builds $CACHE/$1/{rootfs.ext4,vmlinuz,initrd.img,dtbs}
  local arch=$1 dir=$CACHE/$1 work t0=$SECONDS
  work=$(mktemp -d "$CACHE/build-$arch.XXXX")
  write_overlay "$work/overlay"
  local srcs=("deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main")
  [ -n "$SECURITY" ] && srcs+=("deb $SECURITY $SUITE-security main")
  mmdebstrap --mode=root --variant=minbase --architectures="$arch" \
    --include="$GUEST_PACKAGES,$(kernel_package "$arch")" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --essential-hook="cp -a $work/overlay/etc/initramfs-tools/. \"\$1/etc/initramfs-tools/\"" \
    --customize-hook="cp -a $work/overlay/. \"\$1/\"" \
    --customize-hook='echo outpost-boot > "$1/etc/hostname"' \
    --customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 outpost-boot\n" > "$1/etc/hosts"' \
    --customize-hook='printf "LABEL=rootfs / ext4 rw,errors=remount-ro 0 1\n" > "$1/etc/fstab"' \
    --customize-hook='chroot "$1" passwd -d root' \
    --customize-hook='chroot "$1" systemctl enable outpost-boot-harness.service' \
    --customize-hook='mkdir -p "$1/etc/systemd/system/serial-getty@ttyAMA0.service.d"; printf "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200 %%I \$TERM\n" > "$1/etc/systemd/system/serial-getty@ttyAMA0.service.d/autologin.conf"' \
    --customize-hook="cp -L \"\$1\"/boot/vmlinuz-* $work/vmlinuz; cp -L \"\$1\"/boot/initrd.img-* $work/initrd.img" \
    --customize-hook="mkdir -p $work/dtbs; cp \"\$1\"/usr/lib/linux-image-*/broadcom/bcm2837-rpi-3-b.dtb $work/dtbs/ 2>/dev/null || true" \
    "$SUITE" "$work/rootfs" "${srcs[@]}" || return 1 # (set -e is off under `if !`)
  # 2 GiB: -M raspi3b wants an SD card whose size is a power of 2.
  truncate -s 2G "$work/rootfs.ext4"
  mke2fs -q -t ext4 -L rootfs -d "$work/rootfs" "$work/rootfs.ext4" || return 1
  [ -s "$work/vmlinuz" ] && [ -s "$work/initrd.img" ] || return 1
  rm -rf "$work/rootfs" "$work/overlay"
  rm -rf "$dir"
  mv "$work" "$dir"
  say "image $arch: built in $((SECONDS - t0)) s"
}

cmd_image() {
  local arch hash
  arch=$(image_arch "$1")
  mkdir -p "$CACHE"
  hash=$(recipe_hash "$arch")
  if [ -z "${FORCE:-}" ] && [ "$(cat "$CACHE/$arch/recipe" 2>/dev/null)" = "$hash" ]; then
    return 0
  fi
  say "image $arch: building (recipe $hash; ~8 min)"
  if ! image_build "$arch"; then
    # The security suite's index for armhf is often caught mid-sync ("File has unexpected
    # size"); the image is still a bookworm image without it (NOTES.md, boot section).
    [ -n "$SECURITY" ] || die "image $arch: mmdebstrap failed"
    say "image $arch: failed; once more without $SECURITY"
    rm -rf "$CACHE"/build-"$arch".*
    SECURITY="" image_build "$arch"
  fi
  echo "$hash" >"$CACHE/$arch/recipe"
}

# --- the package and the provision output -------------------------------------------------------
rust_target() {
  case "$1" in
    arm64) echo aarch64-unknown-linux-musl ;;
    armhf) echo armv7-unknown-linux-gnueabihf ;;
  esac
}

cmd_deb() { # the release binary (NO_BUILD=1: the last one) and its .deb, in $CACHE/deb-ARCH/
  local arch target
  arch=$(image_arch "$1")
  target=$(rust_target "$arch")
  [ -n "${NO_BUILD:-}" ] || "$here/build.sh" "$target" >&2
  rm -rf "$CACHE/deb-$arch"
  DEB_COMPRESSION=gzip "$here/package-deb.sh" "$arch" "$repo/cross/out/$target/outpost" \
    "$CACHE/deb-$arch" >/dev/null
}

host_outpost() { # the workstation's outpost (operator commands: provision, keygen, bundle)
  if [ -z "${NO_BUILD:-}" ] || [ ! -x "$repo/target/debug/outpost" ]; then
    (cd "$repo" && cargo build -q -p outpost) >&2
  fi
  echo "$repo/target/debug/outpost"
}

# The app the scenarios run: the `burst` test guest on two 5 ms interval triggers, committing
# events as fast as the (emulated) board's fsyncs allow.
write_app() {
  local dir=$1 wasm=$repo/bundles/target/wasm32-unknown-unknown/release/burst.wasm
  [ -f "$wasm" ] || (cd "$repo/bundles" && cargo build --release -q) >&2
  mkdir -p "$dir"
  cp "$wasm" "$dir/burst.wasm"
  cat >"$dir/outpost.toml" <<'TOML'
manifest_version = 1
[app]
name = "burst"
version = "1.0.0"
[[component]]
id = "burst"
source = "burst.wasm"
grants = { kv = ["burst"], streams = ["burst"] }
[[component.trigger]]
name = "fast-a"
interval = "5ms"
[[component.trigger]]
name = "fast-b"
interval = "5ms"
TOML
}

# --- one run: a scratch disk, a share, boots --------------------------------------------------
# Sets R (results), SHARE, DISK, ARCH (as asked: arm64, armhf or raspi3b), IARCH (image arch).
prepare() {
  ARCH=$1 SCENARIO=$2
  IARCH=$(image_arch "$ARCH")
  R=$OUT/$ARCH-$SCENARIO
  SHARE=$R/share DISK=$R/disk.img
  local guest=$here/boot/$SCENARIO.guest op
  [ -f "$guest" ] || die "no scenario $SCENARIO ($guest)"
  cmd_image "$IARCH"
  cmd_deb "$IARCH"
  op=$(host_outpost)
  rm -rf "$R"
  mkdir -p "$SHARE/out" "$SHARE/deb"
  cp "$CACHE/deb-$IARCH"/outpost_*.deb "$SHARE/deb/"
  cp "$guest" "$SHARE/scenario.guest"
  cp "$here/boot/guest-lib.sh" "$SHARE/"
  chmod 755 "$SHARE/scenario.guest"
  "$op" keygen --out "$R/keys" --name publisher >/dev/null
  "$op" provision --device-id "boot-$ARCH" --broker mqtt://127.0.0.1:1883 \
    --trust "$R/keys/publisher.pub" --group boot --out "$SHARE/provision" >/dev/null
  write_app "$SHARE/app"
  [ ! -x "$here/boot/$SCENARIO.prepare" ] || "$here/boot/$SCENARIO.prepare" "$SHARE" "$op" "$R"
  cp --sparse=always "$CACHE/$IARCH/rootfs.ext4" "$DISK"
}

QEMU_PID=""
# boot_vm N [CUT]: boot the scratch disk (boot number N); without CUT, wait until the guest
# powers off. With CUT, a command run once the guest printed "BOOTTEST| CUT-READY" whose
# success means "cut now": qemu is then killed with SIGKILL (no shutdown, no flush: a power
# cut). Serial console: $R/serial-N.log. Sets BOOT_WALL (s, host).
boot_vm() {
  local n=$1 cut=${2:-} log=$R/serial-$1.log t0=$SECONDS q
  echo "$n" >"$SHARE/boot-no"
  local args="root=/dev/vda rw console=ttyAMA0 outpost.boottest=1 systemd.mask=serial-getty@ttyAMA0.service"
  case "$ARCH" in
    arm64) q=(qemu-system-aarch64 -M virt -cpu cortex-a53 -smp "$SMP" -m "$MEM") ;;
    armhf) q=(qemu-system-arm -M virt -cpu cortex-a15 -smp "$SMP" -m "$MEM") ;;
    raspi3b) q=(qemu-system-aarch64 -M raspi3b -m 1G -dtb "$CACHE/arm64/dtbs/bcm2837-rpi-3-b.dtb")
      args="root=/dev/mmcblk0 rw rootwait console=ttyAMA0,115200 outpost.boottest=1 systemd.mask=serial-getty@ttyAMA0.service" ;;
  esac
  q+=(-kernel "$CACHE/$IARCH/vmlinuz" -initrd "$CACHE/$IARCH/initrd.img" -append "$args"
    -nic none -display none -monitor none -serial "file:$log" -no-reboot)
  if [ "$ARCH" = raspi3b ]; then
    # No virtio on the Pi model: the share goes into the disk, results come on the console.
    copy_into_disk "$SHARE" /mnt/test
    q+=(-drive "file=$DISK,if=sd,format=raw")
  else
    q+=(-drive "file=$DISK,if=virtio,format=raw,cache=writeback"
      -virtfs "local,path=$SHARE,mount_tag=share,security_model=none,id=share")
  fi
  say "$ARCH $SCENARIO: boot $n${cut:+ (cut when: $cut)}"
  "${q[@]}" </dev/null >"$R/qemu-$n.log" 2>&1 &
  QEMU_PID=$!
  local cutting=""
  while kill -0 "$QEMU_PID" 2>/dev/null; do
    if ((SECONDS - t0 > BOOT_TIMEOUT)); then
      say "boot $n: timeout after ${BOOT_TIMEOUT}s"
      kill -KILL "$QEMU_PID"
      break
    fi
    if [ -n "$cut" ] && grep -aq 'BOOTTEST| CUT-READY' "$log" 2>/dev/null; then
      cutting=1
      if eval "$cut"; then
        kill -KILL "$QEMU_PID"
        say "boot $n: power cut (qemu SIGKILL) at $((SECONDS - t0)) s"
        break
      fi
    fi
    sleep "${POLL:-1}"
  done
  wait "$QEMU_PID" 2>/dev/null || true
  QEMU_PID=""
  BOOT_WALL=$((SECONDS - t0))
  grep -a 'BOOTTEST' "$log" | grep -av ' ok in ' | sed "s/^/  [$n] /" | tail -n 60 >&2 || true
  [ -n "$cut" ] && [ -z "$cutting" ] && say "boot $n: ended before it could be cut"
  return 0
}

copy_into_disk() { # copy_into_disk DIR PATH: DIR's tree into the ext4 scratch disk at PATH
  local f rel cmds=$R/debugfs.cmds
  {
    echo "mkdir $2"
    (cd "$1" && find . -mindepth 1 -path ./out -prune -o -print) | while IFS= read -r rel; do
      rel=${rel#./}
      if [ -d "$1/$rel" ]; then
        echo "mkdir $2/$rel"
      else
        echo "write $1/$rel $2/$rel"
        # (an `if`: a last command that fails would fail the loop, and set -e the run)
        if [ -x "$1/$rel" ]; then echo "sif $2/$rel mode 0100755"; fi
      fi
    done
  } >"$cmds"
  debugfs -w -f "$cmds" "$DISK" >/dev/null 2>&1
}

boot_rc() { # the guest script's status for boot N (99 if it never finished)
  local rc
  rc=$(sed -n "s/.*BOOTTEST-END boot=$1 rc=\([0-9]*\).*/\1/p" "$R/serial-$1.log" | tail -1)
  echo "${rc:-99}"
}

figures() { # the FIGURE: lines of every boot, as name=value
  grep -ah 'BOOTTEST| FIGURE: ' "$R"/serial-*.log | sed 's/.*FIGURE: //'
}

cmd_run() {
  prepare "$1" "$2"
  local rc t0=$SECONDS
  if [ -f "$here/boot/$SCENARIO.host" ]; then
    set +e
    (. "$here/boot/$SCENARIO.host")
    rc=$?
    set -e
  else
    boot_vm 1
    rc=$(boot_rc 1)
  fi
  say "$ARCH $SCENARIO: $([ "$rc" = 0 ] && echo PASS || echo "FAIL (rc $rc)") in $((SECONDS - t0)) s; logs in $R"
  figures | sed "s/^/  /" >&2 || true
  return "$rc"
}

cmd_shell() {
  ARCH=$1 IARCH=$(image_arch "$1")
  cmd_image "$IARCH"
  local q=qemu-system-aarch64 cpu=cortex-a53
  [ "$IARCH" = armhf ] && q=qemu-system-arm cpu=cortex-a15
  exec "$q" -M virt -cpu "$cpu" -smp "$SMP" -m "$MEM" -nographic -nic none \
    -kernel "$CACHE/$IARCH/vmlinuz" -initrd "$CACHE/$IARCH/initrd.img" \
    -append "root=/dev/vda rw console=ttyAMA0" \
    -drive "file=$CACHE/$IARCH/rootfs.ext4,if=virtio,format=raw,snapshot=on"
}

MATRIX=(arm64:install-run arm64:power-cut arm64:watchdog arm64:fleet-reboot arm64:upgrade-purge
  armhf:install-run armhf:power-cut armhf:watchdog armhf:fleet-reboot armhf:upgrade-purge
  raspi3b:install-run raspi3b:no-rtc)
CI=(arm64:install-run arm64:power-cut)

cmd_list() { # run ARCH:SCENARIO items one after another (one VM at a time); summary at the end
  local item failed=0 summary=()
  for item in "$@"; do
    if (cmd_run "${item%%:*}" "${item#*:}"); then
      summary+=("PASS $item")
    else
      summary+=("FAIL $item")
      failed=1
    fi
  done
  printf '%s\n' "${summary[@]}" >&2
  return $failed
}

case "${BASH_SOURCE[0]}" in
  "$0") ;;
  *) return 0 ;; # sourced for its helpers
esac

case "${1:-}" in
  setup) cmd_setup ;;
  image) cmd_image "$(image_arch "${2:?ARCH}")" ;;
  deb) cmd_deb "${2:?ARCH}" ;;
  run) cmd_run "${2:?ARCH}" "${3:?SCENARIO}" ;;
  matrix) cmd_setup && cmd_list "${MATRIX[@]}" ;;
  ci) cmd_list "${CI[@]}" ;;
  shell) cmd_shell "${2:?ARCH}" ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | head -n -1
    exit 2
    ;;
esac
