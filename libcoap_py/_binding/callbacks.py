"""The extern "Python" functions libcoap calls (through glue.c), and how they dispatch.

Each trampoline finds the Context's ``Dispatch`` (``_dispatch.py``) in the
context's app data and hands the call on. This module imports nothing above
the binding layer at run time: it knows the objects it finds only by their
methods (types, for the checker, under TYPE_CHECKING).

Rule: no exception crosses into C. Each trampoline is registered with
``@extern`` (``extern.py``): when its body raises, the one error path keeps the
exception on the Dispatch the trampoline had found (its local ``dispatch``,
re-raised by the next ``run_once()``/``request()``), and returns a safe value
to libcoap. So each body sets ``dispatch`` as soon as it knows it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import ffi, lib
from .extern import extern, keep_for_context

if TYPE_CHECKING:
    from .._dispatch import Dispatch
    from ..client.session import Session
    from ..dtls import PSK, PeerCheck
    from ..server.serving import Resource

_server_log = logging.getLogger("libcoap_py.server")
_NULL = ffi.NULL
_NOT_FOUND = 4 << 5 | 4  # 4.04
_SERVER_ERROR = 5 << 5  # 5.00


def _find(session_ptr: Any) -> tuple[Dispatch | None, Session | None]:
    """The Dispatch of the session's context, and our Session for it (if any)."""
    data = lib.lcp_session_context_app_data(session_ptr)
    if data == _NULL:
        return None, None
    dispatch: Dispatch = ffi.from_handle(data)
    data = lib.coap_session_get_app_data(session_ptr)
    return dispatch, (ffi.from_handle(data) if data != _NULL else None)


@extern(error=1)
def lcp_py_response(
    session_data: Any,
    context_data: Any,
    sent: Any,
    sent_info: Any,
    received: Any,
    info: Any,
    mid: int,
) -> int:
    if context_data == _NULL:
        return 0  # the context is being freed
    dispatch: Dispatch = ffi.from_handle(context_data)
    session: Session | None = ffi.from_handle(session_data) if session_data else None
    return dispatch.on_response(session, sent, sent_info, received, info, mid)


@extern
def lcp_py_nack(session_ptr: Any, sent: Any, reason: int, mid: int) -> None:
    dispatch, session = _find(session_ptr)
    if dispatch is not None:
        delayed = dispatch.server.delayed
        if delayed.awaiting and delayed.nacked(session_ptr, mid, reason):
            return
        dispatch.on_nack(session, sent, reason, mid)


@extern
def lcp_py_event(session_ptr: Any, event: int) -> None:
    dispatch, session = _find(session_ptr)
    if dispatch is not None:
        dispatch.on_event(session, event)


def _request_failed(error: BaseException, frame: dict[str, Any]) -> None:
    """A request's dispatch failed outside the handler (whose exceptions the server
    handles): 5.00 for the client, the exception for the loop."""
    response = frame.get("response")
    if response is not None:
        lib.lcp_pdu_set_code(response, _SERVER_ERROR)
    keep_for_context(error, frame)


@extern(on_error=_request_failed)
def lcp_py_request(
    resource_ptr: Any, session_ptr: Any, request: Any, query: Any, response: Any
) -> None:
    data = lib.coap_resource_get_userdata(resource_ptr)
    context_data = lib.lcp_session_context_app_data(session_ptr)
    if data == _NULL or context_data == _NULL:
        lib.lcp_pdu_set_code(response, _NOT_FOUND)
        return
    dispatch: Dispatch = ffi.from_handle(context_data)
    resource: Resource = ffi.from_handle(data)
    # (Straight to the server: a request's session is the server's to find.)
    dispatch.server.on_request(resource, session_ptr, request, query, response)


def _peer_check_failed(error: BaseException, frame: dict[str, Any]) -> None:
    """validate_cn or the name check raised: a server refuses the client, logs why and
    goes on serving; a client's loop re-raises it. The handshake fails (0)."""
    session_ptr = frame.get("session_ptr")
    if (
        isinstance(error, Exception)
        and session_ptr is not None
        and lib.lcp_session_is_server(session_ptr)
    ):
        _server_log.error("validate_cn failed; refusing the client", exc_info=error)
    else:
        keep_for_context(error, frame)


@extern(error=0, on_error=_peer_check_failed)
def lcp_py_cn(
    session_ptr: Any, cn: Any, der: Any, der_len: int, depth: int, validated: int, arg: Any
) -> int:
    check: PeerCheck = ffi.from_handle(arg)
    name = ffi.string(cn).decode("utf-8", "replace") if cn != _NULL else ""
    dispatch, session = _find(session_ptr)
    if dispatch is not None:
        dispatch.on_cn(session_ptr, session, name, depth)
    if depth == 0 and check.server_name is not None:
        # (Only client sessions carry a server name to check.)
        problem = check.name_problem(bytes(ffi.buffer(der, der_len)) if der else b"")
        if problem is not None:
            if session is not None:
                session._refuse_peer(problem)
            logging.getLogger("libcoap_py").warning("%s; the handshake is aborted", problem)
            return 0
    pki = check.pki
    if pki.validate_cn is not None and validated:
        return 1 if pki.validate_cn(name, depth) else 0
    return 1


def _psk_lookup_failed(error: BaseException, frame: dict[str, Any]) -> None:
    """The PSK key lookup raised: the client is refused (NULL); a server goes on
    serving and logs why; KeyboardInterrupt and the like go to the loop."""
    if isinstance(error, Exception):
        _server_log.error("the PSK key lookup failed; refusing the client", exc_info=error)
    else:
        keep_for_context(error, frame)


@extern(on_error=_psk_lookup_failed)
def lcp_py_psk_key(session_ptr: Any, identity: Any, length: int, arg: Any) -> Any:
    dispatch, _ = _find(session_ptr)
    if arg != _NULL:
        psk: PSK | None = ffi.from_handle(arg)
    else:  # libcoap 4.2's hook has no argument: the context knows its PSK
        psk = None if dispatch is None else dispatch.server_psk()
    if psk is None:
        return _NULL
    return psk._key_cdata(ffi.buffer(identity, length)[:])
