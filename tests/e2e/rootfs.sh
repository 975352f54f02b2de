#!/bin/sh
# Build (once) a cached Debian 12 rootfs tarball:
#
#   tests/e2e/rootfs.sh [CACHE_DIR] [IMAGE]
#
# IMAGE e2e (the default): what the end-to-end tests boot with systemd-nspawn; CACHE_DIR defaults
# to $TLJH_E2E_CACHE or /var/cache/tljh-lock-e2e.
# IMAGE fleet: the e2e image with openssh-server, which the fleet test logs into (a tarball of
# its own in the e2e cache, so the e2e image and its cache stay as they are).
# IMAGE fresh: a new user's machine (git, make, python3 and the trust store, nothing else), in
# which .ci/run runs the README's commands; CACHE_DIR defaults to /var/cache/tljh-lock-fresh.
#
# Idempotent: if the image's tarball in CACHE_DIR exists, passes `zstd -t` and its sidecar
# .recipe file matches the recipe below, nothing is done. Otherwise debootstrap into a temporary
# directory inside CACHE_DIR, apply the image tweaks, tar | zstd, and rename into place
# atomically. Concurrent callers serialise on CACHE_DIR/.lock. Prints the output path last.
# The name carries the recipe's id (the first 12 hex digits of its sha256): checkouts whose
# recipes differ (branches, helpers sharing the cache) each keep their image instead of
# rebuilding the one file in turn.
#
# Mirror: $TLJH_E2E_MIRROR, else the deb.debian.org/debian URI found in /etc/apt/sources.list*,
# else http://deb.debian.org/debian.
#
# Needs root, debootstrap, zstd, tar and flock (`.ci/deps ci` installs them).
set -eu

IMAGE=${2:-e2e}
SUITE=bookworm
# Bump TWEAKS_VERSION whenever the tweaks below change, so cached tarballs are rebuilt.
TWEAKS_VERSION=1
# python3-venv is deliberately absent from the servers: the applier must cope with
# `python3 -m venv --without-pip`.
# openssl, git and bzip2 are in TLJH's own CI image (integration-tests/Dockerfile); its suite
# needs openssl (test_manual_https makes a certificate).
SERVER=python3,sudo,systemd,systemd-sysv,dbus,iproute2,curl,ca-certificates,openssl,git,bzip2
case $IMAGE in
e2e)
    CACHE_DIR=${1:-${TLJH_E2E_CACHE:-/var/cache/tljh-lock-e2e}}
    INCLUDE=$SERVER
    NAME=debian-12-minbase ;;
fleet)
    CACHE_DIR=${1:-${TLJH_E2E_CACHE:-/var/cache/tljh-lock-e2e}}
    INCLUDE=$SERVER,openssh-server
    NAME=debian-12-minbase+openssh-server ;;
fresh)
    CACHE_DIR=${1:-/var/cache/tljh-lock-fresh}
    INCLUDE=git,make,python3,ca-certificates
    NAME=debian-12-fresh ;;
*)
    echo "rootfs.sh: unknown image $IMAGE (e2e, fleet or fresh)" >&2; exit 2 ;;
esac
RECIPE="suite=$SUITE variant=minbase include=$INCLUDE tweaks=$TWEAKS_VERSION"
RECIPE_ID=$(printf '%s' "$RECIPE" | sha256sum | cut -c1-12)
OUT="$CACHE_DIR/$NAME-$RECIPE_ID.tar.zst"

export LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "rootfs.sh: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    log "must run as root"; exit 1
fi
for tool in debootstrap zstd tar flock; do
    command -v "$tool" >/dev/null || { log "missing $tool (.ci/deps ci installs it)"; exit 1; }
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
echo "tljh-$IMAGE" >"$ROOT/etc/hostname"
cat >"$ROOT/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	tljh-$IMAGE
::1		localhost ip6-localhost ip6-loopback
EOF
# No DNS configuration from the build host leaks into the image.
rm -f "$ROOT/etc/resolv.conf"; : >"$ROOT/etc/resolv.conf"
# Root has no password (locked, as debootstrap leaves it); tests enter with nsenter.
chroot "$ROOT" passwd -l root >/dev/null
# Servers: units that only make sense on hardware or with a network: masked so that a clean boot
# is "running", not "degraded". systemd-networkd/resolved are not enabled by Debian by default.
if [ "$IMAGE" != fresh ]; then
    for unit in systemd-networkd.service systemd-networkd.socket \
        systemd-networkd-wait-online.service systemd-resolved.service systemd-timesyncd.service \
        getty@tty1.service systemd-remount-fs.service systemd-firstboot.service apt-daily.timer \
        apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer; do
        ln -sf /dev/null "$ROOT/etc/systemd/system/$unit"
    done
fi
# fleet: no sshd host key shared by every copy of the image; each machine makes its own at first
# boot, before sshd's config test needs them.
if [ "$IMAGE" = fleet ]; then
    rm -f "$ROOT"/etc/ssh/ssh_host_*
    mkdir -p "$ROOT/etc/systemd/system/ssh.service.d"
    cat >"$ROOT/etc/systemd/system/ssh.service.d/host-keys.conf" <<'EOF'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
EOF
fi
# Smaller image; apt lists are useless without network anyway.
chroot "$ROOT" apt-get clean
rm -rf "$ROOT/var/lib/apt/lists/"* "$ROOT/var/log/"*.log "$ROOT/var/cache/debconf/"*-old \
    "$ROOT/var/cache/ldconfig/aux-cache"
echo "tljh-lock $IMAGE rootfs: $RECIPE mirror=$MIRROR" >"$ROOT/etc/tljh-e2e-image"
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
