# Sourced by the ci/ scripts: debian_mirror prints the Debian archive URI this
# machine's own apt configuration names (deb822 .sources files first, then the
# one-line sources.list), without a trailing slash. No host is named here.
debian_mirror() {
    local f m=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        m=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' "$f")
        [ -n "$m" ] && break
    done
    if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
        m=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^(http|https|file):/) {print $i; exit}}' /etc/apt/sources.list)
    fi
    if [ -z "$m" ]; then
        echo "no Debian mirror found in this machine's apt sources" >&2
        return 1
    fi
    echo "${m%/}"
}
