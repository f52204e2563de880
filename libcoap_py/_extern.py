"""A typed front for ``ffi.def_extern``: registers an extern "Python" function."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from ._libcoap import ffi

F = TypeVar("F", bound=Callable[..., Any])


def extern(func: F) -> F:
    """Register ``func`` as the Python side of the extern "Python" C function of its name."""
    ffi.def_extern()(func)
    return func
