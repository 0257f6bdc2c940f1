#!/usr/bin/env bash
# Packages an outpost binary as a Debian package for flashing onto boards (docs/FLASHING.md):
#
#   cross/package-deb.sh ARCH BINARY OUTDIR      ARCH: arm64 | armhf | amd64
#
# writes OUTDIR/outpost_<version>_<ARCH>.deb (version from the workspace Cargo.toml) and prints
# its path. Contents: /usr/bin/outpost, the hardened unit /lib/systemd/system/outpost.service,
# the example /etc/outpost/agent.toml (a conffile: upgrades keep local edits), the sysusers.d
# and tmpfiles.d entries of the service user, docs/FLASHING.md, and the maintainer scripts in
# cross/debian/. Depends is read from the binary: none for a static one (arm64 musl), else
# libc6 (>= the newest GLIBC_ symbol version it uses); plus tzdata always, since cron triggers'
# time zones are read from the system's tz database (no database is built into the binary). Package the stripped release binary: this
# script copies BINARY as it is.
#
# Environment: DEB_MAINTAINER (Maintainer field), DEB_DEPENDS (replaces the computed Depends),
# DEB_COMPRESSION (dpkg-deb -Z: xz by default; gzip or none for quick local builds).
# Needs dpkg-deb and readelf (binutils); no root: files are root-owned via --root-owner-group.
set -euo pipefail

die() {
  echo "package-deb: $*" >&2
  exit 1
}

[ $# -eq 3 ] || die "usage: $0 arm64|armhf|amd64 BINARY OUTDIR"
arch=$1 binary=$2 outdir=$3
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
debian=$here/debian

# The ELF machine each Debian architecture must have, so a mix-up fails here, not on a board.
case "$arch" in
  arm64) machine=AArch64 ;;
  armhf) machine=ARM ;;
  amd64) machine="Advanced Micro Devices X86-64" ;;
  *) die "unknown architecture '$arch' (arm64, armhf or amd64)" ;;
esac
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (Debian package dpkg)"
command -v readelf >/dev/null || die "readelf is missing (Debian package binutils)"
if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
  die "$binary: not an executable file"
fi
header=$(readelf -h "$binary" 2>/dev/null) || die "$binary: not an ELF file"
grep -q "Machine: *$machine\$" <<<"$header" \
  || die "$binary: not a $arch binary ($(sed -n 's/^ *Machine: *//p' <<<"$header"))"

# The version of [workspace.package]; a SemVer pre-release (1.0.0-rc.1) sorts before its release
# only with Debian's tilde (1.0.0~rc.1).
version=$(awk '
  /^\[/ { section = $0 }
  section == "[workspace.package]" && $1 == "version" { gsub(/"/, "", $3); print $3; exit }
' "$repo/Cargo.toml")
[ -n "$version" ] || die "no version in [workspace.package] of $repo/Cargo.toml"
version=${version/-/\~}

# Depends, from what the binary links: nothing when static, libc6 at the newest GLIBC_x.y it
# needs (what dpkg-shlibdeps would find, without needing that architecture's libc installed).
depends_of() {
  local needed lib glibc
  needed=$(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  [ -n "$needed" ] || return 0
  local deps=()
  for lib in $needed; do
    case "$lib" in
      libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | librt.so.1 | ld-linux*) ;;
      libgcc_s.so.1) deps+=("libgcc-s1") ;;
      *) die "$1 links $lib, which this script does not know the package of" ;;
    esac
  done
  glibc=$(readelf -V "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
  [ -n "$glibc" ] && deps=("libc6 (>= $glibc)" "${deps[@]}")
  local joined="" dep
  for dep in "${deps[@]}"; do
    joined+="${joined:+, }$dep"
  done
  echo "$joined"
}
if [ -n "${DEB_DEPENDS+set}" ]; then
  depends=$DEB_DEPENDS
else
  depends=$(depends_of "$binary")
  depends="${depends:+$depends, }tzdata"
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"
umask 022
install -D -m 0755 "$binary" "$stage/usr/bin/outpost"
install -D -m 0644 "$debian/outpost.service" "$stage/lib/systemd/system/outpost.service"
install -D -m 0644 "$debian/agent.toml" "$stage/etc/outpost/agent.toml"
install -D -m 0644 "$debian/outpost.sysusers" "$stage/usr/lib/sysusers.d/outpost.conf"
install -D -m 0644 "$debian/outpost.tmpfiles" "$stage/usr/lib/tmpfiles.d/outpost.conf"
install -D -m 0644 "$debian/copyright" "$stage/usr/share/doc/outpost/copyright"
install -D -m 0644 "$repo/docs/FLASHING.md" "$stage/usr/share/doc/outpost/FLASHING.md"
install -d -m 0755 "$stage/DEBIAN"
for script in postinst prerm postrm; do
  install -m 0755 "$debian/$script" "$stage/DEBIAN/$script"
done
echo /etc/outpost/agent.toml >"$stage/DEBIAN/conffiles"

installed_size=$(du -sk --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
{
  echo "Package: outpost"
  echo "Version: $version"
  echo "Architecture: $arch"
  echo "Maintainer: ${DEB_MAINTAINER:-Outpost maintainers <outpost@example.invalid>}"
  echo "Installed-Size: $installed_size"
  [ -z "$depends" ] || echo "Depends: $depends"
  echo "Section: net"
  echo "Priority: optional"
  echo "Description: offline-first edge agent running sandboxed WebAssembly components"
  echo " Outpost runs WebAssembly components in the wasmi interpreter, started by cron"
  echo " schedules, intervals and sensor readings, commits what they write to a local"
  echo " store first, and forwards events to an MQTT broker whenever the link allows."
  echo " This package installs the agent as the hardened systemd service outpost.service,"
  echo " enabled but started only once /etc/outpost/agent.toml names a real device."
} >"$stage/DEBIAN/control"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles"

mkdir -p "$outdir"
deb="$outdir/outpost_${version}_${arch}.deb"
# Reproducible: file times in the archives are the last commit's (dpkg-deb reads this).
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)
  export SOURCE_DATE_EPOCH
fi
dpkg-deb --build --root-owner-group -Z"${DEB_COMPRESSION:-xz}" "$stage" "$deb" >/dev/null
echo "$deb"
