#!/usr/bin/env bash
# A wheel built on trixie, installed where libcoap is not (a copy of the
# libcoap-free trixie root that ci/debian-root.sh keeps): importing it must
# fail with an error that names the shared library and the apt package, not
# "install the package with pip".
#   bash ci/missing-libcoap.sh
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

root=$(bash ci/debian-root.sh make trixie)
base=$(bash ci/debian-root.sh base trixie)
bash ci/debian-root.sh copy-src "$root" /src
bash ci/debian-root.sh run "$root" bash -c \
    'rm -rf /tmp/wheels && cd /src
     PYTHON=python3 VENV=/root/venv-ci . scripts/_venv.sh >/dev/null
     python -m pip wheel -q --no-deps -w /tmp/wheels .'
wheel=$(ls "$root"/tmp/wheels/libcoap_py-*.whl)

bare=$(mktemp -d "${LIBCOAP_PY_CI_CACHE:-/var/cache/libcoap-py-ci}/.bare.XXXXXX")
trap 'bash ci/debian-root.sh umount "$bare" 2>/dev/null || true; rm -rf "$bare"' EXIT
tar -C "$bare" -xf "$base"
cp "$wheel" "$bare/tmp/"
out=$(bash ci/debian-root.sh run "$bare" bash -c '
    python3 -m venv /root/v >/dev/null
    /root/v/bin/pip install -q --disable-pip-version-check /tmp/libcoap_py-*.whl 2>&1 | grep -v "^WARNING" || true
    cd /tmp && /root/v/bin/python -c "import libcoap_py" 2>&1 || true')
echo "$out" | tail -n 3
if grep -q "shared library libcoap-3-openssl.so.3" <<<"$out" \
    && grep -q "sudo apt install libcoap3" <<<"$out"; then
    echo "missing libcoap: the import error names libcoap-3-openssl.so.3 and libcoap3"
else
    echo "missing libcoap: the import error does not say what to install" >&2
    exit 1
fi
