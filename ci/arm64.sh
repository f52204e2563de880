#!/usr/bin/env bash
# libcoap-py on arm64 (a Raspberry Pi's architecture, with Raspberry Pi OS's
# Debian base, trixie), under qemu-user emulation on this machine:
#   - qemu-user-static and binfmt_misc (mounted, qemu-aarch64 registered);
#   - an arm64 trixie root from ci/debian-root.sh (cached);
#   - in it, on its own python3, GCC 14 and libcoap 4.3.4: the package built and
#     installed as the README says, `libcoap-py demo` (the C sample end to end
#     against the local data service) and a small DTLS test set.
# Whole-suite speed under emulation is not the goal: the set is small.
#   bash ci/arm64.sh
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

if [ "$(dpkg --print-architecture)" = arm64 ]; then
    echo "arm64: this machine is arm64 already; the main runs cover it"
    exit 0
fi

need=()
for pkg in qemu-user-static binfmt-support debootstrap; do
    dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
    apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64
fi

t0=$SECONDS
root=$(bash ci/debian-root.sh make trixie arm64)
echo "arm64: root ready in $((SECONDS - t0)) s: $root"
bash ci/debian-root.sh copy-src "$root" /src

# The DTLS set: the struct layout on this ABI, certificate and PSK handshakes
# against coap-server-openssl, and recovery after failures.
tests=(tests/test_layout.py tests/test_dtls.py tests/test_recovery.py)
t1=$SECONDS
# One build (the slow part under emulation), then the demo and the tests.
bash ci/debian-root.sh run "$root" bash -c '
    set -e
    cd /src
    echo "arm64: $(uname -m), $(python3 --version), $(gcc --version | head -n 1), libcoap $(pkg-config --modversion libcoap-3-openssl)"
    PYTHON=python3 VENV=/root/venv-ci . scripts/_venv.sh
    python -m pip install -q --disable-pip-version-check ".[test,certs]"
    python -I -c "import libcoap_py as c; print(\"libcoap-py on libcoap\", c.libcoap_version(), \"/\", c.tls_library(), \"/ DTLS:\", c.dtls_is_supported())"
    libcoap-py demo --dir /root/demo
    python -I -m pytest -q -p no:cacheprovider "$@"
' bash "${tests[@]}"
echo "arm64: build, demo and tests in $((SECONDS - t1)) s (root: $((t1 - t0)) s)"
