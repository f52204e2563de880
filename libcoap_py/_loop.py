"""The I/O loop of one Context: its thread, its passes, and what runs after each.

An internal interface shared by the client side, the server side and
``context.py`` (its names are public within the package, not to users). The
Context owns one ``Loop``; sessions, observations, the server and the delayed
responses are given it, instead of reaching into the Context.

- ``enter()`` is the guard every call from the user passes: the owner thread,
  and a context that is still open.
- ``send(...)`` hands a one-shot request to libcoap and runs its first pass in
  one C call (see ``_exchange.py``, claims);
- ``io(wait_ms)`` runs one pass of libcoap's I/O (``lcp_io_process``), then
  ``after_io()``: the hand-off queue, the hooks the parts registered (those
  with work due), sessions
  released while libcoap was still using them, a ``close()`` asked for from a
  handler, and at last the first exception a handler raised.
- ``in_io`` is set while libcoap runs, so that what must wait for it (freeing a
  session, closing the context) waits; ``dispatching`` counts handlers running.
"""

from __future__ import annotations

import threading
from collections.abc import Sized
from typing import Any, Callable

from ._binding import ffi, lib
from ._handoff import Handoff
from .errors import IO_FAILED, CoapError, WrongThreadError, check
from .log import flush_log_summaries, pending_summaries

__all__ = ["Loop"]

_io_process = lib.lcp_io_process
_io_wait = lib.lcp_io_wait
_send_claimed = lib.lcp_send_claimed
_any = any


class Loop:
    """One Context's loop state (see the module's docstring)."""

    __slots__ = (
        "close_requested",
        "deferred_release",
        "dispatching",
        "error",
        "handoff",
        "hooks",
        "in_io",
        "on_close_request",
        "owner",
        "ptr",
        "watched",
    )

    def __init__(self, ptr: Any, on_close_request: Callable[[], None]) -> None:
        self.owner = threading.get_ident()
        self.ptr: Any = ptr
        self.in_io = False
        self.dispatching = 0
        self.error: BaseException | None = None
        self.deferred_release: list[Any] = []
        self.close_requested = False
        self.on_close_request = on_close_request
        self.handoff = Handoff(lib.coap_context_get_coap_fd(ptr))
        #: (due, hook, every): after every pass, in order, ``hook()`` runs when ``due``
        #: (a container the part keeps its pending work in) is not empty; while it is
        #: not, an event loop's driver runs a pass at least ``every`` seconds.
        self.hooks: list[tuple[Sized, Callable[[], None], float]] = []
        #: What after_io() looks at besides what a call into Python leaves behind (a
        #: handler's error, a close() asked for): the hand-off's queue and descriptors,
        #: rate-limited log lines, sessions to release and the hooks' containers. While
        #: all are empty, a pass that made no call into Python needs no after_io()
        #: (request()'s quiet answers: lcp_request_claimed's LCP_QUIET).
        self.watched: tuple[Sized, ...] = ()
        self._watch()

    def add_hook(self, due: Sized, hook: Callable[[], None], every: float) -> None:
        """Run ``hook()`` after every pass while ``due`` is not empty (see ``hooks``)."""
        self.hooks.append((due, hook, every))
        self._watch()

    def _watch(self) -> None:
        handoff = self.handoff
        self.watched = (
            handoff.queue,
            handoff.readers,
            pending_summaries,
            self.deferred_release,
            *(due for due, _, _ in self.hooks),
        )

    # -- guards -----------------------------------------------------------------------------

    def enter(self) -> Any:
        """The ``coap_context_t *``, or raise: another thread, or a closed Context."""
        if self.owner != threading.get_ident():
            raise WrongThreadError(
                "this Context belongs to another thread; libcoap contexts are not thread-safe "
                "(make one Context per thread)"
            )
        if self.ptr is None:
            raise CoapError("the Context is closed")
        return self.ptr

    def enter_for_close(self) -> None:
        if self.owner != threading.get_ident():
            raise WrongThreadError("close() must be called from the thread that made the Context")

    @property
    def owned(self) -> bool:
        """True on the owner thread, with the Context open (the quick form of enter())."""
        return self.owner == threading.get_ident() and self.ptr is not None

    # -- passes -----------------------------------------------------------------------------

    def io(self, wait_ms: int) -> int:
        """One pass of libcoap's I/O, waiting up to ``wait_ms`` (0: poll, -1: no bound),
        then ``after_io()``. lcp_io_process cannot raise: the trampolines keep
        exceptions for after_io."""
        self.in_io = True
        result: int = _io_process(self.ptr, wait_ms)
        self.in_io = False
        if _any(self.watched) or self.close_requested or self.error is not None:
            self.after_io()  # (its quick test, inline: the handler loop's every pass)
        if result < 0:
            check(result, IO_FAILED, zero_ok=True)
        return result

    def wait(self, claim: Any, wait_ms: int) -> int:
        """``io()`` for a blocking request: passes in C (lcp_io_wait) until ``claim`` is
        answered, a pass called into Python, a wake-up, or ``wait_ms``; then
        ``after_io()``. Watched descriptors (add_reader) need a pass at a time."""
        if self.handoff.readers:
            return self.io(wait_ms)
        self.in_io = True
        result: int = _io_wait(self.ptr, claim, wait_ms)
        self.in_io = False
        self.after_io()
        return check(result, IO_FAILED, zero_ok=True)

    def send(self, session_ptr: Any, pdu: Any, claim: Any, wait_ms: int) -> int:
        """Hand a request PDU to libcoap with ``claim`` armed for its answer, then run one
        pass of up to ``wait_ms`` (< 0: none), all in C (lcp_send_claimed). Returns
        the message ID (< 0: not sent). The caller records the claim's outcome, then
        calls ``after_io()``, which this pass needs as any other."""
        outer, self.in_io = self.in_io, True
        mid: int = _send_claimed(self.ptr, session_ptr, pdu, claim, wait_ms)
        self.in_io = outer
        return mid

    def guarded(self, function: Callable[..., Any], *args: Any) -> Any:
        """Call a libcoap function that may call back into handlers, as io() does."""
        self.in_io = True
        try:
            result = function(*args)
        finally:
            self.in_io = False
            self.after_io()
        return result

    def store_error(self, error: BaseException) -> None:
        """Keep the first exception a handler raised, for after_io() to re-raise."""
        if self.error is None:
            self.error = error

    def after_io(self) -> None:
        if _any(self.watched):
            self._run_watched()
        if self.close_requested:
            self.close_requested = False
            self.on_close_request()
        error = self.error
        if error is not None:
            self.error = None
            raise error

    def _run_watched(self) -> None:
        """after_io()'s part for what ``watched`` holds (some of it is not empty)."""
        handoff = self.handoff
        if handoff.queue or handoff.readers:
            handoff.run(self.store_error)
        if pending_summaries:
            flush_log_summaries()
        for due, hook, _ in self.hooks:
            if due:
                hook()
        if self.deferred_release:
            pending = list(self.deferred_release)
            self.deferred_release.clear()  # (the same list: it is watched)
            for ptr in pending:
                lib.coap_session_release(ptr)

    # -- sessions ---------------------------------------------------------------------------

    def release_session(self, ptr: Any) -> None:
        """Release a ``coap_session_t *``; while libcoap runs, once it has returned."""
        if self.in_io:
            # libcoap may still use the session after the handler returns.
            self.deferred_release.append(ptr)
        elif self.ptr is not None:
            lib.coap_session_release(ptr)

    def free(self) -> Any:
        """Mark the loop closed and return the context pointer for the caller to free
        (sessions released while libcoap ran are released first)."""
        self.handoff.close()
        ptr, self.ptr = self.ptr, None
        for pending_ptr in self.deferred_release:
            lib.coap_session_release(pending_ptr)
        self.deferred_release.clear()
        lib.coap_set_app_data(ptr, ffi.NULL)
        return ptr
