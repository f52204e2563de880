#!/usr/bin/env bash
# Provide libcoap 4.2.1 (Debian bullseye's libcoap2, libcoap2-dev, libcoap2-bin,
# with its libssl1.1) on a bookworm machine, the way a bullseye user has it,
# without touching the system: the packages are fetched with a private apt
# configuration (sources list, state and cache under PREFIX), unpacked with
# dpkg -x into PREFIX/root, and their pkg-config files rewritten to point there.
#
#   bash ci/libcoap2.sh [PREFIX]          # default PREFIX: .libcoap2
#   eval "$(bash ci/libcoap2.sh --env [PREFIX])"
#
# The mirror is the one this machine's own apt configuration names (its
# deb.debian.org or snapshot URI), with suite "bullseye". Nothing is added to
# /etc/apt. --env prints the exports (PKG_CONFIG_PATH, LD_LIBRARY_PATH, PATH,
# LIBCOAP_PY_PKG) that select this libcoap for building and running.
set -euo pipefail

print_env=0
if [ "${1:-}" = "--env" ]; then
    print_env=1
    shift
fi
prefix=$(mkdir -p "${1:-.libcoap2}" && cd "${1:-.libcoap2}" && pwd)
root="$prefix/root"
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
libdir="$root/usr/lib/$multiarch"

emit_env() {
    cat <<EOF
export PKG_CONFIG_PATH="$prefix/pkgconfig"
export LD_LIBRARY_PATH="$libdir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export PATH="$root/usr/bin:\$PATH"
export LIBCOAP_PY_PKG=libcoap-2-openssl
EOF
}

if [ -f "$prefix/.complete" ]; then
    [ "$print_env" = 1 ] && emit_env
    exit 0
fi

. "$(dirname "$0")/_mirror.sh"
mirror=$(debian_mirror)

apt_dir="$prefix/apt"
mkdir -p "$apt_dir/etc/sources.list.d" "$apt_dir/state/lists/partial" \
    "$apt_dir/cache/archives/partial" "$prefix/debs" "$root" "$prefix/pkgconfig"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb [signed-by=$keyring] $mirror bullseye main" >"$apt_dir/etc/sources.list"
apt_opts=(
    -o "Dir::Etc::SourceList=$apt_dir/etc/sources.list"
    -o "Dir::Etc::SourceParts=$apt_dir/etc/sources.list.d"
    -o "Dir::State=$apt_dir/state"
    -o "Dir::State::Lists=$apt_dir/state/lists"
    -o "Dir::Cache=$apt_dir/cache"
    -o "APT::Architecture=$arch"
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
)
echo "libcoap2: fetching bullseye's libcoap 4.2 from $mirror into $prefix" >&2
apt-get "${apt_opts[@]}" update -qq >&2
(cd "$prefix/debs" && apt-get "${apt_opts[@]}" download -qq \
    libcoap2 libcoap2-dev libcoap2-bin libssl1.1 >&2)
for deb in "$prefix"/debs/*.deb; do
    dpkg -x "$deb" "$root"
done

# pkg-config files name prefix=/usr: write copies whose prefix is the unpacked tree.
for pc in "$libdir"/pkgconfig/libcoap-2*.pc; do
    sed "s|^prefix=.*|prefix=$root/usr|" "$pc" >"$prefix/pkgconfig/$(basename "$pc")"
done
touch "$prefix/.complete"
echo "libcoap2: libcoap $(PKG_CONFIG_PATH="$prefix/pkgconfig" pkg-config --modversion libcoap-2-openssl) ready in $prefix" >&2
[ "$print_env" = 1 ] && emit_env
exit 0
