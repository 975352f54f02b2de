#!/bin/sh
# Build (once) the cached Debian 12 rootfs tarball that the end-to-end tests boot with
# systemd-nspawn.
#
#   tests/e2e/rootfs.sh [CACHE_DIR]      (default: $TLJH_E2E_CACHE or /var/cache/tljh-lock-e2e)
#
# Idempotent: if CACHE_DIR/debian-12-minbase-<recipe id>.tar.zst exists, passes `zstd -t` and its
# sidecar .recipe file matches the recipe below, nothing is done. Otherwise debootstrap into a
# temporary directory inside CACHE_DIR, apply the image tweaks, tar | zstd, and rename into place
# atomically. Concurrent callers serialise on CACHE_DIR/.lock. Prints the output path last.
# The name carries the recipe's id (the first 12 hex digits of its sha256): checkouts whose
# recipes differ (branches, helpers sharing the cache) each keep their image instead of
# rebuilding the one file in turn.
#
# Mirror: $TLJH_E2E_MIRROR, else the deb.debian.org/debian URI found in /etc/apt/sources.list*,
# else http://deb.debian.org/debian.
#
# Needs root and the packages listed in tests/e2e/APT_PACKAGES.
set -eu

CACHE_DIR=${1:-${TLJH_E2E_CACHE:-/var/cache/tljh-lock-e2e}}
SUITE=bookworm
# python3-venv is deliberately absent: the applier must cope with `python3 -m venv --without-pip`.
# openssl, git and bzip2 are in TLJH's own CI image (integration-tests/Dockerfile); its suite
# needs openssl (test_manual_https makes a certificate).
INCLUDE=python3,sudo,systemd,systemd-sysv,dbus,iproute2,curl,ca-certificates,openssl,git,bzip2
# Bump TWEAKS_VERSION whenever the tweaks below change, so cached tarballs are rebuilt.
TWEAKS_VERSION=1
RECIPE="suite=$SUITE variant=minbase include=$INCLUDE tweaks=$TWEAKS_VERSION"
RECIPE_ID=$(printf '%s' "$RECIPE" | sha256sum | cut -c1-12)
OUT="$CACHE_DIR/debian-12-minbase-$RECIPE_ID.tar.zst"

export LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "rootfs.sh: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    log "must run as root"; exit 1
fi
for tool in debootstrap zstd tar flock; do
    command -v "$tool" >/dev/null || { log "missing $tool (see tests/e2e/APT_PACKAGES)"; exit 1; }
done

mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.lock"
flock 9

valid() {
    [ -s "$OUT" ] && [ -f "$OUT.recipe" ] && [ "$(cat "$OUT.recipe")" = "$RECIPE" ] \
        && zstd -q -t "$OUT" 2>/dev/null
}

T0=$(now)
if valid; then
    log "cached $OUT ($(du -h "$OUT" | cut -f1), checked in $(elapsed "$T0") s)"
    echo "$OUT"
    exit 0
fi

MIRROR=${TLJH_E2E_MIRROR:-}
if [ -z "$MIRROR" ]; then
    MIRROR=$(grep -rhoE 'https?://deb\.debian\.org/debian/?([[:space:]]|$)' \
        /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null | head -n1 | tr -d '[:space:]' || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

TMP=$(mktemp -d "$CACHE_DIR/.build.XXXXXX")
ROOT="$TMP/root"
cleanup() {
    # debootstrap bind-mounts /dev, /proc and /sys into the target: unmount before deleting,
    # deepest first, and never let rm cross into a mount.
    awk -v p="$TMP/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m" || true; done
    rm -rf --one-file-system "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "debootstrap $SUITE from $MIRROR"
T1=$(now)
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOT" "$MIRROR" \
    >"$TMP/debootstrap.log" 2>&1 || {
    tail -n 30 "$TMP/debootstrap.log" >&2; log "debootstrap failed"; exit 1
}
log "debootstrap took $(elapsed "$T1") s"

# --- image tweaks: what a freshly provisioned server looks like -------------------------------
# Empty machine-id: systemd generates one at boot (first-boot semantics, no id shared by copies).
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"
echo tljh-e2e >"$ROOT/etc/hostname"
cat >"$ROOT/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	tljh-e2e
::1		localhost ip6-localhost ip6-loopback
EOF
# No DNS configuration from the build host leaks into the image.
rm -f "$ROOT/etc/resolv.conf"; : >"$ROOT/etc/resolv.conf"
# Root has no password (locked, as debootstrap leaves it); tests enter with nsenter.
chroot "$ROOT" passwd -l root >/dev/null
# Units that only make sense on hardware or with a network: masked so that a clean boot is
# "running", not "degraded". systemd-networkd/resolved are not enabled by Debian by default.
for unit in systemd-networkd.service systemd-networkd.socket systemd-networkd-wait-online.service \
    systemd-resolved.service systemd-timesyncd.service getty@tty1.service \
    systemd-remount-fs.service systemd-firstboot.service apt-daily.timer apt-daily-upgrade.timer \
    e2scrub_all.timer e2scrub_reap.service fstrim.timer; do
    ln -sf /dev/null "$ROOT/etc/systemd/system/$unit"
done
# Smaller image; apt lists are useless without network anyway.
chroot "$ROOT" apt-get clean
rm -rf "$ROOT/var/lib/apt/lists/"* "$ROOT/var/log/"*.log "$ROOT/var/cache/debconf/"*-old \
    "$ROOT/var/cache/ldconfig/aux-cache"
echo "tljh-lock e2e rootfs: $RECIPE mirror=$MIRROR" >"$ROOT/etc/tljh-e2e-image"
# -----------------------------------------------------------------------------------------------

# Anything left mounted under ROOT (debootstrap should have unmounted) must not get archived.
if awk -v p="$ROOT/" 'index($5, p) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
    log "mounts left under $ROOT:"; grep -F "$ROOT/" /proc/self/mountinfo >&2; exit 1
fi

T2=$(now)
tar --numeric-owner --xattrs --xattrs-include='*' --acls --one-file-system -C "$ROOT" -cf - . |
    zstd -q -T0 -10 -o "$TMP/out.tar.zst"
zstd -q -t "$TMP/out.tar.zst"
log "tar+zstd took $(elapsed "$T2") s, $(du -sh "$ROOT" | cut -f1) tree -> $(du -h "$TMP/out.tar.zst" | cut -f1)"

printf '%s\n' "$RECIPE" >"$OUT.recipe.new"
mv -f "$TMP/out.tar.zst" "$OUT"
mv -f "$OUT.recipe.new" "$OUT.recipe"
sync -f "$OUT" 2>/dev/null || true
log "built $OUT in $(elapsed "$T0") s total"
echo "$OUT"
