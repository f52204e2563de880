"""The extern "Python" functions libcoap calls (through _glue.c), and how they dispatch.

Rule: no exception crosses into C. Each trampoline catches everything,
stores the first exception on its Context (re-raised by the next
``run_once()``/``request()``), and returns a safe value to libcoap.
"""

from __future__ import annotations

import logging
from typing import Any

from ._extern import extern
from ._libcoap import ffi, lib
from .codes import Code
from .context import Context
from .dtls import PSK, PeerCheck
from .server import Resource
from .session import Session

_log = logging.getLogger("libcoap_py")
_server_log = logging.getLogger("libcoap_py.server")
_NULL = ffi.NULL
_NOT_FOUND = int(Code.NOT_FOUND)
_SERVER_ERROR = int(Code.INTERNAL_SERVER_ERROR)


def _find(session_ptr: Any) -> tuple[Context | None, Session | None]:
    data = lib.coap_session_get_app_data(session_ptr)
    if data != _NULL:
        session: Session = ffi.from_handle(data)
        return session._context, session
    data = lib.lcp_session_context_app_data(session_ptr)
    if data != _NULL:
        return ffi.from_handle(data), None
    return None, None


def _lost(error: BaseException) -> None:
    # No Context to carry it (libcoap is tearing down): at least make it visible.
    _log.error("exception in a libcoap callback with no Context to re-raise it", exc_info=error)


@extern
def lcp_py_response(
    session_ptr: Any,
    session_data: Any,
    sent: Any,
    sent_info: Any,
    received: Any,
    info: Any,
    mid: int,
) -> int:
    context = None
    try:
        if session_data:  # not NULL: what _find() would find first, read in C
            session: Session | None = ffi.from_handle(session_data)
            assert session is not None
            context = session._context
        else:
            context, session = _find(session_ptr)
            if context is None:
                return 0
        return context._on_response(session, sent, sent_info, received, info, mid)
    except BaseException as error:
        if context is not None:
            context._store_error(error)
        else:
            _lost(error)
        return 1


@extern
def lcp_py_nack(session_ptr: Any, sent: Any, reason: int, mid: int) -> None:
    context = None
    try:
        context, session = _find(session_ptr)
        if context is not None:
            if context._delayed.awaiting and context._delayed.nacked(session_ptr, mid, reason):
                return
            context._on_nack(session, sent, reason, mid)
    except BaseException as error:
        if context is not None:
            context._store_error(error)
        else:
            _lost(error)


@extern
def lcp_py_event(session_ptr: Any, event: int) -> None:
    context = None
    try:
        context, session = _find(session_ptr)
        if context is not None:
            context._on_event(session, event)
    except BaseException as error:
        if context is not None:
            context._store_error(error)
        else:
            _lost(error)


@extern
def lcp_py_request(
    resource_ptr: Any, session_ptr: Any, request: Any, query: Any, response: Any
) -> None:
    context = None
    try:
        data = lib.coap_resource_get_userdata(resource_ptr)
        if data == _NULL:
            lib.lcp_pdu_set_code(response, _NOT_FOUND)
            return
        resource: Resource = ffi.from_handle(data)
        context = resource._context
        context._on_request(resource, session_ptr, request, query, response)
    except BaseException as error:  # Exceptions are handled in _on_request
        lib.lcp_pdu_set_code(response, _SERVER_ERROR)
        if context is not None:
            context._store_error(error)
        else:
            _lost(error)


@extern
def lcp_py_cn(
    session_ptr: Any, cn: Any, der: Any, der_len: int, depth: int, validated: int, arg: Any
) -> int:
    context = None
    try:
        check: PeerCheck = ffi.from_handle(arg)
        name = ffi.string(cn).decode("utf-8", "replace") if cn != _NULL else ""
        context, session = _find(session_ptr)
        if context is not None:
            context._on_cn(session_ptr, session, name, depth)
        if depth == 0 and check.server_name is not None:
            # (Only client sessions carry a server name to check.)
            problem = check.name_problem(bytes(ffi.buffer(der, der_len)) if der else b"")
            if problem is not None:
                if isinstance(session, Session):
                    session._refuse_peer(problem)
                _log.warning("%s; the handshake is aborted", problem)
                return 0
        pki = check.pki
        if pki.validate_cn is not None and validated:
            return 1 if pki.validate_cn(name, depth) else 0
        return 1
    except Exception as error:
        if lib.lcp_session_is_server(session_ptr):
            # A server goes on serving: refuse this client, log why.
            _server_log.error("validate_cn failed; refusing the client", exc_info=error)
        elif context is not None:
            context._store_error(error)
        else:
            _lost(error)
        return 0
    except BaseException as error:
        if context is not None:
            context._store_error(error)
        else:
            _lost(error)
        return 0


@extern
def lcp_py_psk_key(session_ptr: Any, identity: Any, length: int, arg: Any) -> Any:
    context = None
    try:
        context, _ = _find(session_ptr)
        if arg != _NULL:
            psk: PSK | None = ffi.from_handle(arg)
        else:  # libcoap 4.2's hook has no argument: the context knows its PSK
            psk = None if context is None else context._dtls_psk
        if psk is None:
            return _NULL
        return psk._key_cdata(ffi.buffer(identity, length)[:])
    except Exception as error:
        # A server goes on serving: refuse this client, log why.
        _server_log.error("the PSK key lookup failed; refusing the client", exc_info=error)
        return _NULL
    except BaseException as error:
        if context is not None:
            context._store_error(error)
        else:
            _lost(error)
        return _NULL
