"""The DTLS setups of one Context, shared by its client sessions and its server.

libcoap keeps one certificate setup and one PSK setup per context, and its TLS
backends differ in how they keep them apart (``capabilities.py``). Client
sessions and endpoints of one Context must therefore agree: ``Credentials``
records what each side set up, and refuses, with ``NotSupportedError``, a
setup that would meet another one the backend cannot keep apart. An internal
interface of ``context.py`` and ``server/``.
"""

from __future__ import annotations

import os
from typing import Any

from ._binding import ffi, lib
from .capabilities import BACKEND
from .dtls import PKI, PSK
from .errors import NotSupportedError, check

__all__ = ["Credentials"]


class Credentials:
    """What a Context's client sessions and endpoints set up (see the module)."""

    __slots__ = ("client_pki_used", "had_psk", "keep", "server_pki", "server_psk")

    def __init__(self) -> None:
        self.had_psk = False  # a PSK client session was made
        self.client_pki_used = False  # a certificate client session was made
        self.server_pki: PKI | None = None  # the endpoints' certificate setup
        self.server_psk: PSK | None = None  # the endpoints' PSK setup
        self.keep: list[Any] = []  # C buffers the context's DTLS setup points into

    def refuse_mix(self, kind: str, *, server: bool) -> None:
        """Raise NotSupportedError if a ``kind`` ("PSK" or "PKI") setup, for a client
        session or (``server``) an endpoint, would meet a setup of the other kind in this
        Context that the TLS backend cannot keep apart (see capabilities.py). A server
        offering both is no mix: its clients pick one."""
        if kind == "PSK":
            client_other, server_other = self.client_pki_used, self.server_pki is not None
        else:
            client_other, server_other = self.had_psk, self.server_psk is not None
        if not BACKEND.keeps_psk_and_pki_apart and (client_other or (server_other and not server)):
            other = "certificate (PKI)" if kind == "PSK" else "PSK"
            mine = "PSK" if kind == "PSK" else "certificate (PKI)"
            what = "endpoint" if server else "client session"
            raise NotSupportedError(
                f"this Context already has a {other} setup, and libcoap's {BACKEND.name} "
                f"code ({BACKEND.package}) offers every setup of a Context in every client "
                f"handshake: a {mine} {what} here could authenticate with the {other} "
                "credentials instead. Use a separate Context for PSK and for certificates."
            )
        if BACKEND.pki_client_beside_psk:
            return
        if kind == "PKI" and not server and (client_other or server_other):
            raise NotSupportedError(
                "this Context already has a PSK setup; libcoap's "
                f"{BACKEND.name} code ({BACKEND.package}) then offers only PSK in every new "
                "client handshake, so a certificate session would fail. Make certificate "
                "sessions first (PSK client sessions may follow), or use a separate Context."
            )
        if kind == "PSK" and server and self.client_pki_used:
            raise NotSupportedError(
                "this Context has made certificate client sessions; with libcoap's "
                f"{BACKEND.name} code ({BACKEND.package}) a PSK endpoint beside them fails "
                "every handshake. Use a separate Context for the server."
            )

    def set_root_cas(self, ctx: Any, path: str) -> None:
        """Load the root CAs of a PKI into the context ``ctx`` (a file or a folder)."""
        is_dir = os.path.isdir(path)
        ok = lib.coap_context_set_pki_root_cas(
            ctx,
            ffi.NULL if is_dir else path.encode(),
            path.encode() if is_dir else ffi.NULL,
        )
        check(ok, f"libcoap could not load the root CAs from {path}")
