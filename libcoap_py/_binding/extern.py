"""Registering the extern "Python" functions libcoap calls (``ffi.def_extern``), with
one error path for all of them.

Rule: no exception crosses into C. A trampoline's body raises as any Python
code does; the error path, which costs nothing until an exception happens,
gets the exception and the trampoline's frame (its arguments and the locals it
had set), returns ``error`` to C (or what ``on_error`` returns), and hands the
exception on: by default to the Context whose dispatch the frame names (its local ``dispatch``),
which re-raises it from its next ``run_once()``/``request()``.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Callable, TypeVar, overload

from . import ffi

__all__ = ["extern", "keep_for_context", "lost"]

F = TypeVar("F", bound=Callable[..., Any])
#: ``on_error(error, frame_locals)``: what a trampoline does with an exception; its
#: result, unless None, goes to C instead of the trampoline's ``error`` value.
OnError = Callable[[BaseException, "dict[str, Any]"], Any]

_log = logging.getLogger("libcoap_py")


def lost(error: BaseException) -> None:
    """An exception with no Context to carry it (libcoap is tearing down): log it."""
    _log.error("exception in a libcoap callback with no Context to re-raise it", exc_info=error)


def keep_for_context(error: BaseException, frame: dict[str, Any]) -> None:
    """The default error path: the Dispatch in the frame's ``dispatch`` (the
    Context's) keeps the exception for its loop to re-raise; without one, it is
    logged."""
    dispatch = frame.get("dispatch")
    if dispatch is not None:
        dispatch.store_error(error)
    else:
        lost(error)


@overload
def extern(func: F) -> F: ...
@overload
def extern(*, error: Any = None, on_error: OnError = keep_for_context) -> Callable[[F], F]: ...


def extern(
    func: F | None = None, *, error: Any = None, on_error: OnError = keep_for_context
) -> Any:
    """Register ``func`` as the Python side of the extern "Python" C function of its
    name, returning ``error`` to C when it raises (None: 0 or NULL) after
    ``on_error``. ``@extern`` or ``@extern(error=..., on_error=...)``."""

    def register(function: F) -> F:
        def onerror(kind: Any, value: BaseException | None, trace: TracebackType | None) -> Any:
            if value is None:  # cffi could not convert the result: a bug here
                value = TypeError(f"{function.__name__} returned a value C cannot take")
            frame = trace.tb_frame.f_locals if trace is not None else {}
            try:
                return on_error(value, frame)
            except BaseException as failure:  # the error path itself must not fail
                lost(failure)
                return None

        if error is None:
            ffi.def_extern(onerror=onerror)(function)
        else:
            ffi.def_extern(error=error, onerror=onerror)(function)
        return function

    return register(func) if func is not None else register
