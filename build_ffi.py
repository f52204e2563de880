"""Build libcoap_py._binding._libcoap: a cffi out-of-line, API-mode extension over the
system libcoap.

The library is found with pkg-config. ``LIBCOAP_PY_PKG`` names one package
explicitly (e.g. ``libcoap-3-gnutls``); otherwise the first that exists of
``PREFERRED`` wins. The API generation (4.2 = libcoap2, 4.3 = libcoap3) is
read from the package's version and selects the per-generation declarations
in ``libcoap_py/_binding/cdef/v2`` or ``libcoap_py/_binding/cdef/v3``.

``LIBCOAP_PY_SANITIZE=address`` builds the extension with AddressSanitizer
(for ``scripts/asan``; such a build runs only with libasan preloaded).
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
CDEF_DIR = HERE / "libcoap_py" / "_binding" / "cdef"
GLUE = HERE / "libcoap_py" / "_binding" / "glue.c"

# The order says which backend does the most, as measured with the suite:
# OpenSSL (CRLs, PSK and certificates apart in one Context, DTLS_CONNECTED);
# GnuTLS (tested in CI: no CRLs, no PSK/PKI mix in one Context; the binding
# refuses what it cannot do, see libcoap_py/capabilities.py); Mbed TLS after
# it, because no Debian release ships an Mbed TLS build of libcoap, so nothing
# here has run on one (libcoap's source shows the same limits as GnuTLS);
# then no DTLS at all. libcoap 4.2 had no Mbed TLS backend.
PREFERRED = (
    "libcoap-3-openssl",
    "libcoap-3-gnutls",
    "libcoap-3-mbedtls",
    "libcoap-3-notls",
    "libcoap-3",
    "libcoap-2-openssl",
    "libcoap-2-gnutls",
    "libcoap-2",
)

# Declaration files, in dependency order. For each name the shared file
# (cdef/NAME.h) comes first, then the generation's own (cdef/vN/NAME.h).
ORDER = (
    "types",
    "structs",
    "str",
    "address",
    "pdu",
    "option",
    "dtls",
    "session",
    "net",
    "event",
    "debug",
    "resource",
    "glue",
)

_SINCE = re.compile(r"/\* @since ([0-9][0-9.]*) \*/")

INSTALL_HINT = (
    "libcoap-py needs the libcoap development files and pkg-config.\n"
    "  Debian bookworm / Ubuntu 22.04+ / Raspberry Pi OS bookworm:\n"
    "      sudo apt install libcoap3-dev pkg-config\n"
    "  Debian / Raspberry Pi OS bullseye, Ubuntu 20.04:\n"
    "      sudo apt install libcoap2-dev pkg-config\n"
    "  or set LIBCOAP_PY_PKG to the pkg-config name of your libcoap build."
)


class BuildError(SystemExit):
    """Stops the build with one readable message."""

    def __init__(self, message: str) -> None:
        super().__init__(f"\nlibcoap-py build: {message}\n")


def _pkg_config(*args: str) -> str:
    exe = os.environ.get("PKG_CONFIG", "pkg-config")
    if shutil.which(exe) is None:
        raise BuildError(f"pkg-config ({exe}) not found.\n{INSTALL_HINT}")
    out = subprocess.run([exe, *args], check=False, capture_output=True, text=True)
    if out.returncode != 0:
        raise LookupError(out.stderr.strip())
    return out.stdout.strip()


def _exists(package: str) -> bool:
    try:
        _pkg_config("--exists", package)
    except LookupError:
        return False
    return True


def find_package() -> str:
    """The pkg-config name of the libcoap to build against."""
    explicit = os.environ.get("LIBCOAP_PY_PKG")
    if explicit:
        if not _exists(explicit):
            raise BuildError(
                f"LIBCOAP_PY_PKG={explicit}, but pkg-config does not know that package."
                f"\n{INSTALL_HINT}"
            )
        return explicit
    for name in PREFERRED:
        if _exists(name):
            return name
    raise BuildError(f"no libcoap found by pkg-config.\n{INSTALL_HINT}")


def generation(version: str) -> int:
    """The libcoap API generation (2 or 3) of a library version string."""
    parts = version.split(".")
    try:
        major, minor = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise BuildError(f"cannot read libcoap version {version!r}") from None
    if (major, minor) == (4, 2):
        return 2
    if (major, minor) >= (4, 3):
        return 3
    raise BuildError(f"libcoap {version} is too old; 4.2 or newer is needed")


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        digits = "".join(itertools.takewhile(str.isdigit, part))
        parts.append(int(digits or 0))
    return tuple(parts)


def select_versions(text: str, version: str) -> str:
    """Keep the ``/* @since X.Y.Z */ ... /* @end */`` blocks that ``version`` has.

    Within a generation a struct can still grow (4.3.5 added a member to the
    union in ``coap_dtls_key_t``); such members are declared in a block that
    names the release that added them, so the declared layout matches the
    library being built against.
    """
    out: list[str] = []
    keep = [True]
    for line in text.splitlines():
        mark = _SINCE.fullmatch(line.strip())
        if mark:
            keep.append(keep[-1] and _version_tuple(version) >= _version_tuple(mark.group(1)))
            continue
        if line.strip() == "/* @end */":
            if len(keep) == 1:
                raise BuildError("unbalanced /* @end */ in the declarations")
            keep.pop()
            continue
        if keep[-1]:
            out.append(line)
    if len(keep) != 1:
        raise BuildError("a /* @since */ block in the declarations has no /* @end */")
    return "\n".join(out) + "\n"


def declarations(gen: int, version: str) -> str:
    """Assemble the cdef text: shared then per-generation file for each header."""
    chunks = []
    for name in ORDER:
        for path in (CDEF_DIR / f"{name}.h", CDEF_DIR / f"v{gen}" / f"{name}.h"):
            if path.exists():
                text = select_versions(path.read_text(), version)
                chunks.append(f"/* {path.relative_to(HERE)} */\n{text}")
    return "\n".join(chunks)


def _flags(package: str, what: str) -> list[str]:
    return shlex.split(_pkg_config(what, package))


def sanitizer_flags() -> tuple[list[str], list[str]]:
    """(compile, link) flags for ``LIBCOAP_PY_SANITIZE`` (empty when it is unset)."""
    wanted = os.environ.get("LIBCOAP_PY_SANITIZE", "")
    if not wanted:
        return [], []
    if wanted != "address":
        raise BuildError(f"LIBCOAP_PY_SANITIZE={wanted!r}: only 'address' is supported")
    compile_flags = ["-fsanitize=address", "-fno-omit-frame-pointer", "-g", "-O1"]
    return compile_flags, ["-fsanitize=address"]


def make_builder() -> FFI:
    package = find_package()
    version = _pkg_config("--modversion", package)
    gen = generation(version)
    header = "coap3/coap.h" if gen == 3 else "coap2/coap.h"
    cflags = _flags(package, "--cflags")
    libs = _flags(package, "--libs")
    sanitize_compile, sanitize_link = sanitizer_flags()

    builder = FFI()
    builder.cdef(declarations(gen, version))
    # The switch is part of the source, so that turning it on or off rebuilds.
    source = (
        f"#define LCP_SANITIZE_ADDRESS {1 if sanitize_compile else 0}\n"
        f"#define LCP_GENERATION {gen}\n"
        f'#define LCP_PKG_NAME "{package}"\n'
        f"#include <{header}>\n"
        "#include <stdint.h>\n#include <stddef.h>\n"
        + (CDEF_DIR / "structs.h").read_text()
        + GLUE.read_text()
    )
    builder.set_source(
        "libcoap_py._binding._libcoap",
        source,
        include_dirs=[a[2:] for a in cflags if a.startswith("-I")],
        extra_compile_args=[a for a in cflags if not a.startswith("-I")]
        + ["-Wno-deprecated-declarations", *sanitize_compile],
        library_dirs=[a[2:] for a in libs if a.startswith("-L")],
        libraries=[a[2:] for a in libs if a.startswith("-l")],
        extra_link_args=[a for a in libs if not a.startswith(("-L", "-l"))] + sanitize_link,
    )
    sanitized = " with AddressSanitizer" if sanitize_compile else ""
    print(
        f"libcoap-py: building against {package} {version} (generation {gen}){sanitized}",
        file=sys.stderr,
    )
    return builder


ffibuilder = make_builder()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
