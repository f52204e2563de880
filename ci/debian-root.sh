#!/usr/bin/env bash
# Debian roots for CI: a release's own python3, GCC and libcoap, made with
# debootstrap from this machine's Debian mirror, cached between runs.
#
#   bash ci/debian-root.sh make SUITE [ARCH]   # print the root's path (made once)
#   bash ci/debian-root.sh base SUITE [ARCH]   # print the libcoap-free tarball's path
#   bash ci/debian-root.sh run ROOT CMD...     # run CMD as root inside ROOT
#   bash ci/debian-root.sh copy-src ROOT DEST  # copy this checkout to ROOT/DEST
#   bash ci/debian-root.sh umount ROOT         # undo run's mounts (after a kill)
#
# Cache: $LIBCOAP_PY_CI_CACHE (default /var/cache/libcoap-py-ci) holds, per
# SUITE-ARCH, a libcoap-free tarball (minbase + python3-venv, python3-dev,
# gcc, pkg-config, ca-certificates: the root a bundled wheel is checked in)
# and the unpacked root with libcoap3-dev and libcoap3-bin added. ARCH other
# than the machine's runs under qemu-user-static through binfmt_misc.
# The root gets the machine's DNS, pip configuration and CA bundle, so that
# apt and pip reach the package registries from inside it.
set -euo pipefail
shopt -s inherit_errexit
here=$(cd "$(dirname "$0")" && pwd)
. "$here/_mirror.sh"
cache=${LIBCOAP_PY_CI_CACHE:-/var/cache/libcoap-py-ci}
host_arch=$(dpkg --print-architecture)
base_packages=(python3-venv python3-dev gcc libc6-dev pkg-config ca-certificates)
coap_packages=(libcoap3-dev libcoap3-bin)

log() { echo "debian-root: $*" >&2; }

# mount_root ROOT / umount_root ROOT: the kernel file systems a build and the
# tests need (sockets, /dev/null, /dev/urandom, shared memory, /proc).
mount_root() {
    local r=$1
    mountpoint -q "$r/proc" || mount -t proc proc "$r/proc"
    mountpoint -q "$r/dev" || mount --rbind /dev "$r/dev"
    mountpoint -q "$r/sys" || mount --rbind /sys "$r/sys"
}
umount_root() {
    local r=$1 m
    for m in sys dev proc; do
        if mountpoint -q "$r/$m"; then
            umount -R "$r/$m" 2>/dev/null || umount -lR "$r/$m" || true
        fi
    done
}

# host_config ROOT: DNS, pip configuration and the CA bundle from this machine.
# A mirror that is a dated snapshot serves sid's Release file past its
# Valid-Until date: apt in the root accepts it (the archive key still checks it).
host_config() {
    local r=$1 f
    mkdir -p "$r/etc/apt/apt.conf.d"
    echo 'Acquire::Check-Valid-Until "false";' >"$r/etc/apt/apt.conf.d/99libcoap-py-ci"
    cp -L /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || true
    cp -L /etc/hosts "$r/etc/hosts" 2>/dev/null || true
    for f in /etc/pip.conf /etc/xdg/pip; do
        if [ -e "$f" ]; then
            mkdir -p "$r$(dirname "$f")"
            rm -rf "${r:?}$f"
            cp -a "$f" "$r$f"
        fi
    done
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        mkdir -p "$r/etc/ssl/certs"
        cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"
    fi
}

# in_root ROOT CMD...: run CMD in ROOT with a clean environment, keeping the
# variables that point pip at the package index and CI's own flag.
in_root() {
    local r=$1 v
    shift
    local envs=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive)
    for v in CI PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_CERT \
        PIP_DEFAULT_TIMEOUT PIP_DISABLE_PIP_VERSION_CHECK SSL_CERT_FILE \
        REQUESTS_CA_BUNDLE http_proxy https_proxy HTTP_PROXY HTTPS_PROXY no_proxy NO_PROXY; do
        [ -n "${!v:-}" ] && envs+=("$v=${!v}")
    done
    host_config "$r"
    mount_root "$r"
    local rc=0
    env -i "${envs[@]}" chroot "$r" "$@" || rc=$?
    umount_root "$r"
    return "$rc"
}

# apt_in_root ROOT LOG PACKAGE...: install packages in ROOT, apt's output to LOG.
apt_in_root() {
    local r=$1 logfile=$2
    shift 2
    in_root "$r" sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends "$@" && apt-get clean' \
        sh "$@" >"$logfile" 2>&1 || {
        tail -n 30 "$logfile" >&2
        return 1
    }
}

make_base() {
    local suite=$1 arch=$2 tarball=$3 dir
    dir="$cache/.$suite-$arch-base.tmp"
    umount_root "$dir" 2>/dev/null || true
    rm -rf "$dir"
    mkdir -p "$dir"
    local mirror
    mirror=$(debian_mirror)
    if [ "$arch" != "$host_arch" ] && [ ! -e "/proc/sys/fs/binfmt_misc/qemu-${arch/arm64/aarch64}" ]; then
        log "no binfmt_misc registration for $arch (install qemu-user-static, mount binfmt_misc, update-binfmts --enable)"
        return 1
    fi
    log "debootstrap $suite/$arch from $mirror"
    local t0=$SECONDS
    debootstrap --variant=minbase --arch="$arch" "$suite" "$dir" "$mirror" >"$cache/$suite-$arch-debootstrap.log" 2>&1 || {
        tail -n 30 "$cache/$suite-$arch-debootstrap.log" >&2
        return 1
    }
    log "debootstrap $suite/$arch: $((SECONDS - t0)) s"
    apt_in_root "$dir" "$cache/$suite-$arch-base-apt.log" "${base_packages[@]}"
    tar -C "$dir" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$dir"
    log "libcoap-free $suite/$arch root: $tarball ($((SECONDS - t0)) s)"
}

cmd_base() {
    local suite=$1 arch=${2:-$host_arch}
    local tarball="$cache/$suite-$arch-base.tar"
    mkdir -p "$cache"
    [ -f "$tarball" ] || make_base "$suite" "$arch" "$tarball"
    echo "$tarball"
}

cmd_make() {
    local suite=$1 arch=${2:-$host_arch}
    local root="$cache/$suite-$arch"
    if [ -f "$root/.libcoap-py-complete" ]; then
        echo "$root"
        return 0
    fi
    local tarball t0=$SECONDS
    tarball=$(cmd_base "$suite" "$arch")
    umount_root "$root" 2>/dev/null || true
    rm -rf "$root"
    mkdir -p "$root"
    tar -C "$root" -xf "$tarball"
    apt_in_root "$root" "$cache/$suite-$arch-apt.log" "${coap_packages[@]}"
    touch "$root/.libcoap-py-complete"
    log "$suite/$arch root with libcoap $(in_root "$root" pkg-config --modversion libcoap-3-openssl): $root ($((SECONDS - t0)) s)"
    echo "$root"
}

cmd_copy_src() {
    local root=$1 dest=$2
    cd "$here/.."
    rm -rf "${root:?}/${dest#/}"
    mkdir -p "$root/${dest#/}"
    git ls-files -z --cached --others --exclude-standard \
        | tar --null -T - -cf - | tar -C "$root/${dest#/}" -xf -
}

case "${1:-}" in
make) shift; cmd_make "$@" ;;
base) shift; cmd_base "$@" ;;
run) shift; r=$1; shift; in_root "$r" "$@" ;;
copy-src) shift; cmd_copy_src "$@" ;;
umount) shift; umount_root "$1" ;;
*) sed -n '2,18p' "$0" >&2; exit 2 ;;
esac
