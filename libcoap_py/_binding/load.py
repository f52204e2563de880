"""Why the compiled module ``libcoap_py._binding._libcoap`` did not load, in words a
user can act on."""

from __future__ import annotations

import re
from pathlib import Path

# The apt package that ships a shared library the module links against.
_PACKAGES = (
    (re.compile(r"libcoap-3(-\w+)?\.so"), "libcoap3"),
    (re.compile(r"libcoap-2(-\w+)?\.so"), "libcoap2"),
    (re.compile(r"libssl\.so\.3|libcrypto\.so\.3"), "libssl3 (libssl3t64 on trixie and later)"),
    (re.compile(r"libssl\.so\.1\.1|libcrypto\.so\.1\.1"), "libssl1.1"),
    (re.compile(r"libgnutls\.so"), "libgnutls30"),
)
_MISSING = re.compile(r"([\w.+-]+\.so[\w.]*): cannot open shared object file")


def load_error(exc: ImportError) -> ImportError:
    """An ImportError that says what to do about ``exc``."""
    text = str(exc)
    missing = _MISSING.search(text)
    if missing:
        library = missing.group(1)
        package = next((p for pattern, p in _PACKAGES if pattern.search(library)), None)
        fix = (
            f"install it: sudo apt install {package}"
            if package
            else "install the package that provides it"
        )
        return ImportError(
            f"libcoap-py's compiled module could not load the shared library {library}, "
            f"which it was built against ({text}); {fix}. A self-built libcoap must be on "
            "the runtime library path (see 'Building against a self-built libcoap' in the "
            "README)."
        )
    here = Path(__file__).resolve().parent
    if not any(here.glob("_libcoap*.so")) and (here.parent.parent / "build_ffi.py").exists():
        return ImportError(
            f"libcoap_py._binding._libcoap could not be loaded ({text}): this is the source folder "
            f"({here}), which has no compiled module. Install the package with pip "
            "(pip install .) and run Python from another folder, or with python -I, so "
            "that the installed package is imported."
        )
    return ImportError(
        f"libcoap_py._binding._libcoap could not be loaded ({text}); install the package with pip, "
        "which compiles it against the system libcoap (see the README)"
    )
