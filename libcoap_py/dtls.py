"""DTLS credentials: certificates (PKI) and pre-shared keys (PSK)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ._binding import ffi, lib
from .capabilities import BACKEND
from .errors import NotSupportedError
from .peername import ServerName, name_problem

__all__ = ["PKI", "PSK", "KeySource", "PemSource"]


def _check_revocation_supported() -> None:
    """Refuse check_cert_revocation where the TLS library under libcoap loads no CRLs."""
    if not BACKEND.checks_revocation:
        raise NotSupportedError(
            f"check_cert_revocation=True: libcoap's {BACKEND.name} code ({BACKEND.package}) "
            "loads no CRLs, so a revoked certificate would be accepted; this build "
            "cannot check revocation (libcoap built with OpenSSL can)"
        )


PemSource = Union[str, "os.PathLike[str]", bytes]
"""A PEM file path, or the PEM text itself as bytes."""


def _is_pem_bytes(value: PemSource) -> bool:
    return isinstance(value, (bytes, bytearray, memoryview))


def _check_file(what: str, value: PemSource) -> str:
    path = os.fspath(value)
    if not isinstance(path, str):
        raise TypeError(f"{what} must be a path or PEM bytes, not {type(value).__name__}")
    if not os.path.exists(path):
        raise FileNotFoundError(2, f"{what} file not found: {path}", path)
    if not os.path.isfile(path):
        raise IsADirectoryError(21, f"{what} is not a file: {path}", path)
    if not os.access(path, os.R_OK):
        raise PermissionError(13, f"{what} file is not readable: {path}", path)
    return path


def _check_pem(what: str, data: bytes) -> bytes:
    if b"-----BEGIN " not in data:
        raise ValueError(f"{what} is bytes but not PEM text (no '-----BEGIN' line)")
    return data


class PKI:
    """Certificate-based DTLS credentials, the ``coap_dtls_pki_t`` of the C sample.

    ``cert``, ``key`` and ``ca`` are PEM file paths or PEM bytes in memory.
    Every file is checked when the PKI is made, so a missing file raises
    ``FileNotFoundError`` naming it before any packet is sent. A client may
    leave out ``cert`` and ``key`` (both) to authenticate only the server, as
    ``coap-client -C ca.pem`` does; a server always needs them.

    ``require_peer_cert`` asks that the peer's certificate be signed by
    ``ca`` (libcoap 4.3 calls this ``check_common_ca``); with it off, only
    ``root_cas`` (a file or directory of trusted roots) or
    ``allow_self_signed`` can make an unknown peer pass verification.

    **Which flag wins (as in libcoap, so that a port of the C sample means
    the same).** ``verify_peer_cert`` turns verification of the peer's chain
    on; with it off, an unknown CA is accepted. ``require_peer_cert`` (4.3's
    ``check_common_ca``) demands that ``ca`` signed the peer, and while it is
    on, libcoap ignores ``allow_self_signed``: a self-signed peer is refused.
    The C sample sets both, so its "allow self-signed" never takes effect.
    To really accept a self-signed server (pinning it by another means, such
    as ``validate_cn``), turn the common-CA check off::

        coap.PKI(cert, key, ca, require_peer_cert=False, allow_self_signed=True)

    (libcoap 4.3. On 4.2, ``allow_self_signed`` passes only a self-signed root
    at the top of a chain, never a self-signed peer certificate; there only
    ``verify_peer_cert=False, check_hostname=False`` gets past one.)
    ``allow_expired_certs`` accepts certificates outside their validity dates.

    **The server's name (clients).** With ``check_hostname`` (the default),
    a client checks inside the handshake that the server's certificate is
    for the host in the URI, or for ``Context.client_session(...,
    server_name=...)``: its subjectAltName DNS names (``*.`` wildcards in
    the left-most label) and IP addresses, and its common name only when it
    has no such subjectAltName (RFC 6125). A certificate for another name
    aborts the handshake before any request is sent, and the request raises
    ``DTLSError`` naming both names. DNS names are also sent as SNI unless
    ``client_sni`` says otherwise. ``check_hostname=False`` turns the check
    off; ``verify_peer_cert=False`` needs it off too (an unverified chain
    makes a name meaningless). Servers do not check names: they identify
    devices by certificate.

    ``validate_cn(common_name, depth)`` may refuse a peer whose certificate
    passed those checks (depth 0 is the peer's own certificate). The peer's
    common name is available as ``Session.peer_cn`` / ``Request.peer_cn``.

    ``check_cert_revocation`` checks the peer's chain against CRLs (OpenSSL
    finds them next to the trusted roots of ``root_cas``); ``allow_no_crl``
    lets a certificate pass when no CRL is there for it, ``allow_expired_crl``
    when its CRL is out of date. Where the TLS library under libcoap loads no
    CRLs (GnuTLS, Mbed TLS), asking for the check raises ``NotSupportedError``
    rather than accepting revoked certificates unseen.
    """

    def __init__(
        self,
        cert: PemSource | None = None,
        key: PemSource | None = None,
        ca: PemSource | None = None,
        *,
        verify_peer_cert: bool = True,
        require_peer_cert: bool = True,
        allow_self_signed: bool = False,
        allow_expired_certs: bool = False,
        cert_chain_validation: bool = True,
        cert_chain_verify_depth: int = 2,
        check_cert_revocation: bool = False,
        allow_no_crl: bool = False,
        allow_expired_crl: bool = False,
        client_sni: str | None = None,
        root_cas: str | os.PathLike[str] | None = None,
        validate_cn: Callable[[str, int], bool] | None = None,
        check_hostname: bool = True,
    ) -> None:
        if check_cert_revocation and BACKEND.dtls:
            _check_revocation_supported()
        if (cert is None) != (key is None):
            missing = "key" if key is None else "cert"
            raise ValueError(
                f"PKI: {missing} is missing; give a certificate and its private key "
                "together, or neither (a client that only checks the server)"
            )
        sources: dict[str, PemSource] = {}
        if cert is not None and key is not None:
            sources = {"certificate": cert, "private key": key}
        if ca is not None:
            sources["CA certificate"] = ca
        if not any(_is_pem_bytes(v) for v in sources.values()):
            self.use_buffers = False
            self.files = {what: _check_file(what, v) for what, v in sources.items()}
            self.buffers: dict[str, bytes] = {}
        else:
            # libcoap takes either three paths or three buffers: read the files.
            self.use_buffers = True
            self.files = {}
            self.buffers = {}
            for what, value in sources.items():
                if _is_pem_bytes(value):
                    data = bytes(value)  # type: ignore[arg-type]
                else:
                    data = Path(_check_file(what, value)).read_bytes()
                self.buffers[what] = _check_pem(what, data)
        if not 0 <= cert_chain_verify_depth <= 255:
            raise ValueError("cert_chain_verify_depth must be 0..255")
        self.verify_peer_cert = verify_peer_cert
        self.require_peer_cert = require_peer_cert
        self.allow_self_signed = allow_self_signed
        self.allow_expired_certs = allow_expired_certs
        self.cert_chain_validation = cert_chain_validation
        self.cert_chain_verify_depth = cert_chain_verify_depth
        self.check_cert_revocation = check_cert_revocation
        self.allow_no_crl = allow_no_crl
        self.allow_expired_crl = allow_expired_crl
        self.client_sni = client_sni
        self.validate_cn = validate_cn
        self.check_hostname = check_hostname
        self.root_cas = None if root_cas is None else os.fspath(root_cas)
        if self.root_cas is not None and not os.path.exists(self.root_cas):
            raise FileNotFoundError(2, f"root CAs not found: {self.root_cas}", self.root_cas)

    def peer_check(self, host: str | None, server_name: str | None = None) -> PeerCheck:
        """What a client session to ``host`` checks of the server (its certificate's name,
        ``server_name`` instead of ``host`` if given); ``host=None``: a server's endpoint.
        Raises ValueError for a name that cannot be checked."""
        if host is None:
            return PeerCheck(self, None)
        if not self.check_hostname:
            if server_name is not None:
                raise ValueError(
                    "server_name= names what check_hostname checks, and this PKI has "
                    "check_hostname=False"
                )
            return PeerCheck(self, None)
        if not self.verify_peer_cert:
            raise ValueError(
                "verify_peer_cert=False accepts a server certificate from any CA, so the "
                "name in it proves nothing: pass check_hostname=False as well (both are "
                "explicit opt-outs)"
            )
        return PeerCheck(self, ServerName.parse(host if server_name is None else server_name))

    def _setup(self, check: PeerCheck | None = None) -> tuple[Any, list[Any]]:
        """An ``lcp_pki_t`` for the glue, and the C buffers it points into (keep them
        alive). ``check``: what the certificate callback checks (default: nothing but
        ``validate_cn``, as on a server)."""
        if check is None:
            check = PeerCheck(self, None)
        if self.check_cert_revocation:
            _check_revocation_supported()  # (again: the attribute may have changed)
        keep: list[Any] = []
        setup = ffi.new("lcp_pki_t *")
        keep.append(setup)
        setup.verify_peer_cert = int(self.verify_peer_cert)
        setup.require_peer_cert = int(self.require_peer_cert)
        setup.allow_self_signed = int(self.allow_self_signed)
        setup.allow_expired_certs = int(self.allow_expired_certs)
        setup.cert_chain_validation = int(self.cert_chain_validation)
        setup.cert_chain_verify_depth = self.cert_chain_verify_depth
        setup.check_cert_revocation = int(self.check_cert_revocation)
        setup.allow_no_crl = int(self.allow_no_crl)
        setup.allow_expired_crl = int(self.allow_expired_crl)
        setup.use_buffers = int(self.use_buffers)

        def c_string(text: str | bytes) -> Any:
            data = text.encode() if isinstance(text, str) else text
            buf = ffi.new("char[]", data)
            keep.append(buf)
            return buf

        files = self.files
        if self.use_buffers and not lib.LCP_HAS_PEM_BUF:
            # This libcoap (4.2) reads PEM from files only: hand it private copies.
            spool = tempfile.TemporaryDirectory(prefix="libcoap-py-pem-")
            keep.append(spool)
            files = {}
            for what, pem in self.buffers.items():
                path = os.path.join(spool.name, what.replace(" ", "-") + ".pem")
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(pem)
                files[what] = path
        elif self.use_buffers:
            for what, field in (
                ("certificate", "cert"),
                ("private key", "key"),
                ("CA certificate", "ca"),
            ):
                if what not in self.buffers:
                    continue
                data = self.buffers[what]
                # NUL-terminated for the TLS libraries that parse C strings; the
                # length counts the NUL, as libcoap's PEM_BUF readers expect.
                buf = ffi.new("uint8_t[]", data + b"\0")
                keep.append(buf)
                setattr(setup, f"{field}_buf", buf)
                setattr(setup, f"{field}_len", len(data) + 1)
        if not setup.use_buffers or not lib.LCP_HAS_PEM_BUF:
            setup.use_buffers = 0
            if "certificate" in files:
                setup.cert_file = c_string(files["certificate"])
                setup.key_file = c_string(files["private key"])
            if "CA certificate" in files:
                setup.ca_file = c_string(files["CA certificate"])
        sni = self.client_sni
        if sni is None and check.server_name is not None:
            sni = check.server_name.sni
        if sni:
            setup.client_sni = c_string(sni)
        handle = ffi.new_handle(check)
        keep.append(handle)
        setup.cn_arg = handle
        return setup, keep

    @property
    def has_certificate(self) -> bool:
        """True if this PKI carries its own certificate and key (a server needs them)."""
        return "certificate" in self.files or "certificate" in self.buffers

    def __repr__(self) -> str:
        where = "in memory" if self.use_buffers else self.files.get("certificate")
        return f"<PKI cert={where} verify_peer_cert={self.verify_peer_cert}>"


class PeerCheck:
    """What one session checks of its peer's certificate in libcoap's certificate
    callback: the PKI's ``validate_cn``, and for a client with ``check_hostname``, the
    server's name (``server_name``; None: no name check)."""

    __slots__ = ("pki", "server_name")

    def __init__(self, pki: PKI, server_name: ServerName | None) -> None:
        self.pki = pki
        self.server_name = server_name

    def name_problem(self, der: bytes) -> str | None:
        """None if the peer's DER certificate is for the expected name, else why not."""
        if self.server_name is None:
            return None
        return name_problem(der, self.server_name)


KeySource = Union[Mapping[bytes, bytes], Callable[[bytes], Optional[bytes]]]
"""Server side PSK keys: a mapping identity -> key, or a function identity -> key or None."""


def _as_bytes(what: str, value: bytes | str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes or str, not {type(value).__name__}")


class PSK:
    """Pre-shared key DTLS credentials.

    Client: ``PSK(identity, key)``. Server: ``PSK(hint=b"...", keys={identity: key})``
    or ``keys=function(identity) -> key or None``; ``key`` is the key for
    identities that ``keys`` does not know (none given: they are refused).
    """

    def __init__(
        self,
        identity: bytes | str | None = None,
        key: bytes | str | None = None,
        *,
        hint: bytes | str | None = None,
        keys: KeySource | None = None,
        client_sni: str | None = None,
    ) -> None:
        self.identity = None if identity is None else _as_bytes("PSK identity", identity)
        self.key = None if key is None else _as_bytes("PSK key", key)
        self.hint = None if hint is None else _as_bytes("PSK hint", hint)
        if self.key is not None and not self.key:
            raise ValueError("PSK key must not be empty")
        if self.key is not None and len(self.key) > 64:
            raise ValueError("a PSK key is at most 64 bytes")
        if self.identity is not None and len(self.identity) > 128:
            raise ValueError("a PSK identity is at most 128 bytes")
        if keys is not None and not (callable(keys) or isinstance(keys, Mapping)):
            raise TypeError("keys must be a mapping identity -> key or a function")
        if isinstance(keys, Mapping):
            keys = {_as_bytes("PSK identity", k): _as_bytes("PSK key", v) for k, v in keys.items()}
        self.keys = keys
        self.client_sni = client_sni
        self._cache: dict[bytes, tuple[Any, Any]] = {}

    def _client_credentials(self) -> tuple[bytes, bytes]:
        if self.identity is None or self.key is None:
            raise ValueError("a client PSK needs an identity and a key: coap.PSK(identity, key)")
        return self.identity, self.key

    def key_for(self, identity: bytes) -> bytes | None:
        """The key for a client identity (server side), or None to refuse it."""
        found: bytes | None = None
        if callable(self.keys):
            value = self.keys(identity)
            found = None if value is None else _as_bytes("PSK key", value)
        elif self.keys is not None:
            found = self.keys.get(identity)
        return self.key if found is None else found

    def _key_cdata(self, identity: bytes) -> Any:
        """A ``coap_bin_const_t *`` holding the key for libcoap (cached, kept alive)."""
        key = self.key_for(identity)
        if key is None:
            return ffi.NULL
        cached = self._cache.get(identity)
        if cached is None or ffi.buffer(cached[1])[:] != key:
            if len(self._cache) > 1024:
                self._cache.clear()  # libcoap copied older keys already
            buf = ffi.new("uint8_t[]", key)
            bin_const = ffi.new("lcp_bin_t *")
            bin_const.s = buf
            bin_const.length = len(key)
            cached = (bin_const, buf)
            self._cache[identity] = cached
        return cached[0]

    def __repr__(self) -> str:
        if self.identity is not None:
            return f"<PSK identity={self.identity!r}>"
        return f"<PSK hint={self.hint!r} server keys>"
