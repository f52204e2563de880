"""The binding layer: libcoap's declarations (``cdef/``), the project's C
(``glue.c``), the compiled module they make (``_libcoap``), and the way back
from C into Python (``extern.py``, ``callbacks.py``).

Everything above this package imports ``ffi`` and ``lib`` from here.
"""

from __future__ import annotations

try:
    from ._libcoap import ffi, lib
except ImportError as _exc:  # pragma: no cover - depends on the installation
    from .load import load_error

    raise load_error(_exc) from _exc

__all__ = ["ffi", "lib"]
