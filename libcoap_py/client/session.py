"""Session: one peer, reached over coap:// or coaps://; requests and raw PDUs go through it."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .._binding import ffi, lib
from .._exchange import SESSION_ENDED, SESSION_RENEWED, Claim, Exchange, Exchanges
from ..codes import Code, ContentFormat, Event, MessageType, NackReason, OptionNumber, Proto
from ..errors import (
    NO_PDU,
    REFUSED_PAYLOAD,
    CoapError,
    DTLSError,
    NackError,
    NotSupportedError,
    RequestTimeout,
    ResetError,
    check,
)
from ..pdu import (
    PDU,
    Option,
    OptionValue,
    Response,
    check_code,
    check_fits,
    encode_option,
    encoded_options_size,
    pack_options,
    pdu_room,
    write_options,
)
from ..uri import URI, split_path, split_query
from . import blockwise
from .blockwise import BLOCK_SIZES as BLOCK_SIZES
from .blockwise import ProgressCallback
from .blockwise import block_szx as block_szx
from .observe import NotificationCallback, Observation
from .observe import check_supported as check_observe_supported

if TYPE_CHECKING:
    from .._loop import Loop
    from ..context import Context

__all__ = [
    "Session",
    "Steps",
    "Waiting",
    "nack_error",
    "plain_waiting",
    "request_steps",
    "send_plain",
    "transmit_wait",
]

_URI_PATH = int(OptionNumber.URI_PATH)
_URI_QUERY = int(OptionNumber.URI_QUERY)
_BLOCK1 = int(OptionNumber.BLOCK1)

_STATE_ESTABLISHED = lib.COAP_SESSION_STATE_ESTABLISHED
_STATE_NONE = lib.COAP_SESSION_STATE_NONE
_RELIABLE = (int(Proto.TCP), int(Proto.TLS))
_SERVER_SESSION_EVENTS = bool(lib.LCP_HAS_SERVER_SESSION_EVENTS)
_LIBCOAP_BLOCKS = blockwise.LIBCOAP_BLOCKS
_CON = int(MessageType.CON)
_NON = int(MessageType.NON)
_TLS_FAILED = int(NackReason.TLS_FAILED)
_DTLS_CONNECTED = int(Event.DTLS_CONNECTED)
_DTLS_ERROR = int(Event.DTLS_ERROR)
_DTLS_FAILURES = frozenset({int(Event.DTLS_ERROR), int(Event.SESSION_FAILED)})
# Events after which a client session may be disconnected (libcoap 4.3.2 and later
# also close its socket): the Session checks, and renews it, before its next use.
_SESSION_ENDINGS = frozenset(
    {
        int(Event.DTLS_ERROR),
        int(Event.DTLS_CLOSED),
        int(Event.TCP_CLOSED),
        int(Event.TCP_FAILED),
        int(Event.SESSION_CLOSED),
        int(Event.SESSION_FAILED),
    }
)
# Longest single wait in C of a request: Python sees signals (Ctrl-C) in between.
WAIT_SLICE_MS = 200
_WAIT_SLICE_S = WAIT_SLICE_MS / 1000
# What lcp_request_claimed() returns when it sent nothing (else: coap_send's failure).
_NOT_SENT = {
    lib.LCP_NO_PDU: NO_PDU,
    lib.LCP_NO_ROOM_OPTION: "the request's options do not fit in one PDU of this session",
    lib.LCP_NO_ROOM_PAYLOAD: REFUSED_PAYLOAD,
}
_IN_HANDLER = (
    "request() waits for its response and cannot run inside a handler; use session.send(pdu) there"
)
_PREPARED_MAX = 64  # (method, path) pairs cached per session
_monotonic = time.monotonic
_log = logging.getLogger("libcoap_py")
# A new handshake needs at least this long left of the request's timeout (DTLS's first
# retransmission timer is 1 s).
_MIN_HANDSHAKE_S = 1.0
_get_ident = threading.get_ident
_max_pdu_size = lib.coap_session_max_pdu_size
_new_request = lib.lcp_new_request
_coap_send = lib.coap_send
_gc = ffi.gc
_owned_new = PDU._owned_new
_unbuilt = PDU._unbuilt
_ceil = math.ceil
_request_claimed = lib.lcp_request_claimed
_session_state = lib.lcp_session_state
_MID_MAX = 0xFFFF  # above: lcp_request_claimed's LCP_QUIET was added
assert lib.LCP_QUIET == _MID_MAX + 1
_any = any


def _option_number(item: tuple[int, bytes]) -> int:
    return item[0]


def nack_error(reason: int, session: Session | None) -> NackError:
    """The exception for a NACK reason."""
    peer = f" ({session.uri})" if session is not None else ""
    if reason == NackReason.TOO_MANY_RETRIES:
        return RequestTimeout(f"no response{peer}: gave up after the last retransmission")
    if reason == NackReason.RST:
        return ResetError(f"the peer{peer} answered with RST (it rejected the message)")
    if reason == NackReason.TLS_FAILED:
        if session is not None and session.refusal is not None:
            return DTLSError(f"DTLS handshake with {session.uri} refused: {session.refusal}")
        return DTLSError(f"DTLS handshake or record failure{peer}; see the libcoap log")
    if reason == NackReason.NOT_DELIVERABLE:
        return NackError(reason, f"message not deliverable{peer}")
    if reason == NackReason.ICMP_ISSUE:
        return NackError(
            reason, f"the peer is unreachable{peer}: ICMP error (no server on that port?)"
        )
    try:
        return NackError(reason, f"request failed{peer}: {NackReason(reason).name}")
    except ValueError:
        return NackError(NackReason.NOT_DELIVERABLE, f"request failed{peer}: reason {reason}")


T = TypeVar("T")
#: What a request's steps yield (see Session._drive) and finally return.
Steps = Generator["Waiting", None, T]
#: request()'s arguments after ``self``, in order.
RequestArgs = tuple[Any, ...]


class Waiting:
    """One wait of a request's steps: an exchange (or, with none, a TCP session's CSM)
    and its time. Its driver runs the loop and calls ``poll()`` after every pass,
    until it returns None (done: the steps read the answer) or raises (thrown into
    the steps). An internal interface: ``libcoap_py.aio`` drives the same steps."""

    __slots__ = ("deadline", "exchange", "session", "wait")

    def __init__(
        self, session: Session, exchange: Exchange | None, wait: float, deadline: float
    ) -> None:
        self.session = session
        self.exchange = exchange
        self.wait = wait
        self.deadline = deadline

    @property
    def claim(self) -> Any:
        """The ``lcp_claim_t *`` its answer is taken into, or None."""
        exchange = self.exchange
        claim = None if exchange is None else exchange.claim
        return None if claim is None else claim.ptr

    def poll(self) -> float | None:
        """None when done; else the monotonic time by which to call again. Raises on
        timeout, and when the session or its Context closed."""
        exchange = self.exchange
        session = self.session
        if exchange is not None:
            return session._poll(exchange, self.wait, self.deadline)
        ptr = session._ptr
        if ptr is None or lib.lcp_session_state(ptr) in (_STATE_ESTABLISHED, _STATE_NONE):
            return None
        return None if self.deadline <= _monotonic() else min(self.deadline, _monotonic() + 0.1)


class Session:
    """A client session with one peer. Made by ``Context.client_session()``.

    The Context owns its sessions: ``close()`` (or closing the Context)
    releases it. Sessions are also context managers.
    """

    def __init__(
        self,
        context: Context,
        loop: Loop,
        exchanges: Exchanges,
        ptr: Any,
        uri: URI,
        keep: list[Any],
        connect: Callable[[], Any] | None = None,
        registered: Callable[[list[Option]], None] | None = None,
        gone: Callable[[Session], None] | None = None,
    ) -> None:
        self._context = context
        self._loop = loop
        self._exchanges = exchanges
        # Registers the unknown critical option numbers a request carries (the Context).
        self._register_options = registered
        self._gone = gone  # told when the session is closed (the Context's set of sessions)
        self._ptr = ptr
        # Makes a new C session to the same peer with the same credentials (client
        # sessions): see _renew().
        self._connect = connect
        self._renew_due = False
        self.uri = uri
        self._send_failure = f"libcoap could not send the message to {uri}"
        self._keep = keep  # C buffers libcoap may still point into (PSK, PKI)
        self._token = ffi.new("uint8_t[8]")
        self._token_len = ffi.new("size_t *")
        self._handle = ffi.new_handle(self)
        # (method, path) -> (code, options, their encoded size) of plain requests.
        self._prepared: dict[tuple[object, str], tuple[int, bytes, int, int]] = {}
        proto = int(lib.lcp_session_proto(ptr))
        self._reliable = proto in _RELIABLE
        self._proto_dtls = proto == int(Proto.DTLS)
        # Whether _live() has more to check than the owner thread and the pointer.
        self._check_alive = False  # (True for 4.2's server sessions: see _alive())
        self._dtls_failed = False
        # This C session's handshake: completed, or refused by a DTLS alert (either
        # side). Neither, and a DTLSError: libcoap abandoned it (request() retries).
        self._handshake_done = False
        self._handshake_error = False
        self._born = _monotonic()  # when this C session (and its handshake) began
        # While request() waits on a handshake: when to end it and start anew (_await).
        self._handshake_deadline: float | None = None
        # transmit_wait()'s, for libcoap_py.aio (None: ask libcoap; reset with the
        # parameters it depends on, and with a new C session).
        self._transmit_wait: float | None = None
        self.closed = False
        #: How often a failed C session (a DTLS failure, a restarted peer) was replaced
        #: by a new one behind this Session.
        self.renewals = 0
        #: The common name of the peer's certificate (certificate DTLS), once known.
        self.peer_cn: str | None = None
        #: Why this client refused the server in the last handshake (its certificate is
        #: for another name), or None.
        self.refusal: str | None = None
        lib.coap_session_set_app_data(ptr, self._handle)

    # -- state ------------------------------------------------------------------------------

    def _live(self) -> Any:
        """The C session, or raise (another thread, a closed Context or session)."""
        ptr = self._ptr
        if self._loop.owner != _get_ident() or ptr is None or self._check_alive:
            return self._checked()
        return ptr

    def _checked(self, renew: bool = True) -> Any:
        """_live() in full, for when its quick test did not pass: raises what is wrong,
        and replaces a C session that libcoap disconnected (with ``renew``)."""
        self._loop.enter()
        if self._ptr is None:
            raise CoapError(f"the session to {self.uri} is closed")
        if renew and self._renew_due:
            self._renew_due = False
            self._check_alive = False
            if lib.lcp_session_state(self._ptr) == _STATE_NONE:
                self._renew()
        return self._ptr

    def _refuse_peer(self, reason: str) -> None:
        """The certificate callback refused the server (``reason``): the handshake ends,
        and the requests waiting on it raise DTLSError with the reason."""
        self.refusal = reason
        self._dtls_failed = True
        self._failed()

    def _note_event(self, event: int) -> None:
        """What a session event (libcoap's, or DTLS_CONNECTED raised by the Context
        where libcoap does not) means for this session: a handshake done or refused,
        a C session that may be disconnected (renewed before the next use)."""
        if self.uri.secure:
            if event == _DTLS_CONNECTED:
                self._handshake_done = True
            elif event == _DTLS_ERROR:
                self._handshake_error = True
        if event in _SESSION_ENDINGS:
            if event in _DTLS_FAILURES and self.uri.secure:
                self._dtls_failed = True
            self._failed()

    def _note_tls_failure(self) -> None:
        """libcoap NACKed a message of this session with TLS_FAILED."""
        self._dtls_failed = True
        self._failed()

    def _failed(self) -> None:
        """libcoap reported a failure (DTLS, TLS or TCP) after which the C session may
        be disconnected: the next use checks it, and replaces it if so (_renew)."""
        if self._connect is not None and self._ptr is not None:
            self._renew_due = True
            self._check_alive = True

    def _renew(self) -> None:
        """Put a new C session to the same peer, with the same credentials, behind this
        Session, and release the disconnected one.

        Since libcoap 4.3.2 a disconnected client session has closed its socket and
        cannot send again; before, it handshook anew. Either way the Session object
        stays the one the user holds and handlers receive; a raw ``coap_session_t *``
        taken from the old one is invalid afterwards. Active observations register
        again over the new session (its local port is new, so the server must learn it).
        """
        assert self._connect is not None
        old = self._ptr
        new = self._connect()
        if new == ffi.NULL:
            raise CoapError(
                f"libcoap could not make a new session to {self.uri} after the last one "
                "failed (see the 'libcoap' logger for why)"
            )
        lib.coap_session_set_app_data(old, ffi.NULL)
        self._ptr = new
        self._transmit_wait = None
        lib.coap_session_set_app_data(new, self._handle)
        self._dtls_failed = False
        self._handshake_done = False
        self._handshake_error = False
        self._born = _monotonic()
        self.peer_cn = None
        self.refusal = None
        self.renewals += 1
        # Exchanges of the old C session end with it: a new session numbers its
        # tokens anew, so an answer on it must not match one of them.
        replaced = CoapError(f"the session to {self.uri} failed and was replaced")
        self._loop.release_session(old)
        # Observations register again over the new C session (SESSION_RENEWED).
        self._exchanges.fail_session(self, replaced, SESSION_RENEWED)

    @property
    def context(self) -> Context:
        return self._context

    @property
    def proto(self) -> Proto:
        return Proto(lib.lcp_session_proto(self._live()))

    @property
    def established(self) -> bool:
        """True once the session is usable (for coaps://: the DTLS handshake is done)."""
        return bool(lib.lcp_session_state(self._live()) == _STATE_ESTABLISHED)

    @property
    def ack_timeout(self) -> float:
        """Seconds before the first retransmission of a CON message (RFC 7252 ACK_TIMEOUT)."""
        return float(lib.lcp_session_get_ack_timeout_ms(self._live())) / 1000.0

    @ack_timeout.setter
    def ack_timeout(self, seconds: float) -> None:
        ptr = self._live()
        wanted = round(seconds * 1000)
        if not 1 <= wanted < 65536000:
            raise ValueError("ack_timeout must be between 0.001 and 65535 seconds")
        lib.lcp_session_set_ack_timeout_ms(ptr, wanted)
        self._transmit_wait = None
        if lib.lcp_session_get_ack_timeout_ms(ptr) != wanted:
            # libcoap 4.3 ignores values below 1 s without saying so.
            raise ValueError(
                f"libcoap refused ack_timeout={seconds:g} s (this libcoap accepts 1 s and more)"
            )

    def set_token_base(self, token: bytes) -> None:
        """Make every token this session generates from now on derive from ``token``
        (1-8 bytes), as libcoap's ``coap-client -T`` does; requests that pass
        ``token=`` keep theirs. ``NotSupportedError`` on libcoap 4.2, which keeps no
        token sequence: pass ``token=`` to each request there."""
        token = bytes(token)
        if not 1 <= len(token) <= 8:
            raise ValueError(f"a token base has 1 to 8 bytes, not {len(token)}")
        if not lib.lcp_session_init_token(self._live(), len(token), token):
            raise NotSupportedError("this libcoap (4.2) keeps no token sequence to start")

    @property
    def max_retransmit(self) -> int:
        """How often a CON message is retransmitted before libcoap gives up."""
        return int(lib.lcp_session_get_max_retransmit(self._live()))

    @max_retransmit.setter
    def max_retransmit(self, count: int) -> None:
        if not 0 <= count <= 0xFFFF:
            raise ValueError("max_retransmit must be between 0 and 65535")
        lib.coap_session_set_max_retransmit(self._live(), count)
        self._transmit_wait = None

    @property
    def max_pdu_size(self) -> int:
        """The largest PDU (header, token, options, payload) this session sends."""
        return int(lib.coap_session_max_pdu_size(self._live()))

    @property
    def max_payload(self) -> int:
        """The largest payload a request with an 8-byte token and no options can carry."""
        return max(0, self.max_pdu_size - 4 - 8 - 1)

    @property
    def psk_identity(self) -> bytes | None:
        """The PSK identity of the session (on a server: the one the client sent)."""
        data = ffi.new("const uint8_t **")
        length = ffi.new("size_t *")
        if not lib.lcp_session_psk_identity(self._live(), data, length):
            return None
        return bytes(ffi.buffer(data[0], length[0]))

    @property
    def remote_address(self) -> tuple[str, int]:
        return self._address(remote=True)

    @property
    def local_address(self) -> tuple[str, int]:
        return self._address(remote=False)

    def _address(self, remote: bool) -> tuple[str, int]:
        ip = ffi.new("char[]", 64)
        port = ffi.new("uint16_t *")
        if not lib.lcp_session_address(self._live(), int(remote), ip, 64, port):
            raise CoapError("the session has no address yet")
        return ffi.string(ip).decode(), int(port[0])

    def max_transmit_wait(self) -> float:
        """Seconds libcoap keeps retransmitting a CON before it gives up (MAX_TRANSMIT_WAIT)."""
        return float(lib.lcp_session_max_transmit_wait(self._live()))

    # -- requests ---------------------------------------------------------------------------

    def request(
        self,
        method: str | Code | int,
        path: str = "",
        payload: bytes | bytearray | memoryview | str = b"",
        *,
        query: str | Iterable[str] | None = None,
        options: Iterable[tuple[int, OptionValue]] = (),
        content_format: ContentFormat | int | None = None,
        accept: ContentFormat | int | None = None,
        confirmable: bool = True,
        timeout: float | None = None,
        block_size: int | None = None,
        token: bytes | None = None,
        progress: ProgressCallback | None = None,
    ) -> Response:
        """Send a request and drive the Context until its response arrives.

        ``path`` is relative to the server root (``"a/b"`` sends Uri-Path
        ``a`` and ``b``; ``"a?x=1"`` also Uri-Query ``x=1``); empty uses the
        path of the session URI. ``timeout`` is in seconds, for the whole
        request (all its blocks); None waits as long as libcoap retransmits
        (``max_transmit_wait()`` plus one second; where the binding does the
        blocks, libcoap 4.2, that much for each block).

        Bodies larger than one PDU, both ways, go block-wise (RFC 7959):
        ``block_size`` (16, 32, ..., 1024) picks the block size (the server
        may ask for smaller blocks). ``progress(done, total)`` is called as
        blocks go: for the request body, bytes acknowledged of its size; for
        the response body, bytes received of the size the server announced
        (Size2), or None; a last call ``(n, n)`` reports the whole response
        body. (libcoap 4.3 reassembles the blocks itself: there only the last
        call is made.)

        ``token`` (0 to 8 bytes) sends this token instead of a fresh one; it must
        not be in use by another request of this session that is still waiting.

        Over ``coaps://``, when libcoap abandons a handshake after its own
        retransmissions (a lossy link) while ``timeout`` allows more, a new
        handshake starts (``renewals`` counts them), until ``timeout``: the
        request cannot have reached the server before a handshake completed.
        A refused handshake (an untrusted certificate, a wrong name or key)
        fails at once.

        Raises ``RequestTimeout``, ``DTLSError``, ``ResetError`` or another
        ``NackError`` when the exchange fails, ``BlockwiseError`` when a
        block-wise transfer breaks off midway (never a truncated body), and
        re-raises what a handler raised meanwhile.
        """
        if (
            path.__class__ is str
            and query is None
            and not options
            and content_format is None
            and accept is None
            and token is None
            and block_size is None
            and _LIBCOAP_BLOCKS
            and (not payload or (payload.__class__ is bytes and not self._reliable))
            and (
                not self._proto_dtls
                or (  # (_established(), inline)
                    not self._renew_due
                    and self._ptr is not None
                    and _session_state(self._ptr) == _STATE_ESTABLISHED
                )
            )
        ):
            # The common case: no extra options, a body (if any) that fits one PDU, no
            # handshake to watch. Built, sent and given its first pass in one C call.
            response = self._request_plain(method, path, payload, confirmable, timeout)
            if response is not None:
                if progress is not None:
                    progress(len(response.payload), len(response.payload))
                return response
        args = (
            method, path, payload, query, options, content_format, accept, confirmable,
            timeout, block_size, token, progress,
        )  # fmt: skip
        if self._proto_dtls:
            return self._drive(self._request_steps(args, WAIT_SLICE_MS))
        return self._drive(self._once_steps(args, WAIT_SLICE_MS))

    def _established(self) -> bool:
        """Whether the C session is established, with no renewal due (request()'s quick
        test: no handshake to watch)."""
        ptr = self._ptr
        return (
            ptr is not None
            and not self._renew_due
            and lib.lcp_session_state(ptr) == _STATE_ESTABLISHED
        )

    # -- how a request waits: steps, driven by a blocking loop or an event loop ------------
    #
    # Every wait of a request is a step: a generator yields a ``Waiting`` (an exchange
    # and its time), its driver runs the loop until ``Waiting.poll()`` says it is
    # done (or raises: it is thrown into the generator), then resumes the generator,
    # which reads the answer. ``_drive`` is the blocking driver; ``libcoap_py.aio``
    # drives the same steps from an asyncio event loop. Only the blocking common
    # case (``_request_plain``, answered in the send's own first pass) takes no step.

    def _drive(self, steps: Steps[T]) -> T:
        """Run ``steps`` on this thread: the loop runs while each Waiting waits."""
        loop = self._loop
        try:
            waiting = next(steps)
            while True:
                try:
                    until = waiting.poll()
                    while until is not None:
                        # Never 0 ms (a poll); at most a slice, so that Python sees signals.
                        left = until - _monotonic()
                        ms = min(WAIT_SLICE_MS, _ceil(left * 1000)) if left > 0 else 1
                        claim = waiting.claim
                        if claim is None:
                            loop.io(ms)
                        else:
                            loop.wait(claim, ms)
                        until = waiting.poll()
                except BaseException as error:
                    waiting = steps.throw(error)
                else:
                    waiting = steps.send(None)
        except StopIteration as stop:
            result: T = stop.value
            return result

    def _request_steps(self, args: RequestArgs, first_ms: int) -> Steps[Response]:
        """request(), over DTLS: one handshake per try, a new one when libcoap abandoned
        the last (see request()). ``first_ms``: the send's own first pass (< 0: none)."""
        timeout = args[8]
        started = _monotonic()
        limit = self.max_transmit_wait() + 1.0 if timeout is None else timeout
        handshakes = 1
        while True:
            self._handshake_deadline = None
            ptr = self._ptr
            if ptr is not None and lib.lcp_session_state(ptr) != _STATE_ESTABLISHED:
                # A handshake still going after as long as libcoap's own retransmissions
                # of it may take (DTLS timers from 1 s, doubling), or after half the time
                # left, is ended and started anew (see Waiting.poll): a new one
                # retransmits on fresh 1 s timers, an old one on timers doubled meanwhile.
                budget = 2.0 ** min(lib.lcp_session_get_max_retransmit(ptr) + 1, 12) - 1
                left = started + limit - _monotonic()
                budget = min(budget, max(left / 2, 2 * _MIN_HANDSHAKE_S))
                self._handshake_deadline = _monotonic() + budget
            try:
                return (yield from self._once_steps((*args[:8], timeout, *args[9:]), first_ms))
            except DTLSError as error:
                remaining = started + limit - _monotonic()
                if not self._handshake_abandoned():
                    raise
                if remaining < _MIN_HANDSHAKE_S:
                    if handshakes == 1:
                        raise
                    raise DTLSError(
                        f"the DTLS handshake with {self.uri} did not complete within "
                        f"{limit:g} s ({handshakes} handshakes tried: the server's "
                        "answers did not come through)"
                    ) from error
                handshakes += 1
                _log.info(
                    "libcoap abandoned the DTLS handshake with %s; starting handshake %d "
                    "(%.1f s left)", self.uri, handshakes, remaining,
                )  # fmt: skip
                timeout = remaining
                self._checked()  # the new C session: its handshake starts with the send
            finally:
                self._handshake_deadline = None

    def _handshake_abandoned(self) -> bool:
        """Whether the last DTLSError came from libcoap giving up on a handshake after
        its retransmissions (no answer), not from a refusal by either side: no DTLS
        alert, no refusal of ours, and time for at least one DTLS retransmission timer
        (libcoap's GnuTLS code raises no event for an alert it received, and a refused
        handshake fails within milliseconds)."""
        return (
            self.uri.secure
            and not self._handshake_done
            and not self._handshake_error
            and self.refusal is None
            and self._ptr is not None
            and _monotonic() - self._born >= _MIN_HANDSHAKE_S
        )

    def _request_plain(
        self,
        method: str | Code | int,
        path: str,
        payload: bytes | bytearray | memoryview | str,
        confirmable: bool,
        timeout: float | None,
    ) -> Response | None:
        """request()'s common case (the caller checked it), blocking: answered in the
        send's own first pass it takes no step (see _drive). None when the body does
        not fit one PDU (nothing was sent)."""
        ptr = self._live()
        loop = self._loop
        if loop.dispatching:
            raise CoapError(_IN_HANDLER)
        if (timeout is None or timeout >= _WAIT_SLICE_S) and self._handshake_deadline is None:
            first = WAIT_SLICE_MS
        else:
            first = self._first_pass_ms(timeout, None)
        sent = self._send_plain(ptr, method, path, payload, confirmable, first)
        if sent is None:
            return None
        claim, mid = sent
        if mid > _MID_MAX and not _any(loop.watched):
            # Answered in the first pass, which made no call into Python, and nothing
            # else waits for after_io(): the whole request was one C call.
            exchanges = self._exchanges
            if exchanges.reject is None:  # (take(), inline: the claim came from idle)
                exchanges.idle.append(claim)
                return claim.answer()
            return exchanges.take(claim)
        if claim.ptr.state == 1:  # answered in the first pass
            try:
                return self._exchanges.take(claim)
            finally:
                loop.after_io()
        started = claim.ptr.sent_at
        try:
            return self._drive(self._answer_steps(ptr, claim, mid, timeout, None, started, True))
        except DTLSError:
            # The session was replaced meanwhile, and libcoap abandoned the new one's
            # handshake: request()'s steps try again in the time left.
            limit = self.max_transmit_wait() + 1.0 if timeout is None else timeout
            left = started + limit - _monotonic()
            if not self._proto_dtls or not self._handshake_abandoned() or left < _MIN_HANDSHAKE_S:
                raise
            args = (
                method, path, payload, None, (), None, None, confirmable, left, None, None,
                None,
            )  # fmt: skip
            return self._drive(self._request_steps(args, WAIT_SLICE_MS))

    def _send_plain(
        self,
        ptr: Any,
        method: str | Code | int,
        path: str,
        payload: bytes | bytearray | memoryview | str,
        confirmable: bool,
        first_ms: int,
    ) -> tuple[Claim, int] | None:
        """request()'s common case (no extra options, a body, if any, that fits one PDU;
        the caller checked the rest): built, sent and given a first pass of up to
        ``first_ms`` (< 0: none) in one C call (lcp_request_claimed). Returns the claim
        and the message ID, plus LCP_QUIET when the pass answered and called no Python
        (the claim holds when it was sent: ``sent_at``); None when the body does not
        fit."""
        # Code and options depend only on (method, path): prepared once per session.
        prepared = self._prepared.get((method, path))
        if prepared is None:
            prepared = self._prepare(method, path)
        code, blob, blob_len, room = prepared
        body = payload if payload.__class__ is bytes else b""  # else: an empty one
        if body and len(body) > _max_pdu_size(ptr) - room:
            return None
        exchanges = self._exchanges
        idle = exchanges.idle
        claim = idle.pop() if idle else exchanges.claim()
        loop = self._loop
        outer = loop.in_io  # (inside a handler, an awaited request starts in a pass)
        loop.in_io = True  # (as Loop.send does, inline: request()'s common case)
        mid = _request_claimed(
            loop.ptr, ptr, claim.ptr, _CON if confirmable else _NON, code, blob,
            blob_len, body, len(body), first_ms,
        )  # fmt: skip
        loop.in_io = outer
        if mid < 0:
            exchanges.retire(claim)
            check(mid, _NOT_SENT.get(mid) or self._send_failure, zero_ok=True)
        return claim, mid

    def _once_steps(self, args: RequestArgs, first_ms: int) -> Steps[Response]:
        """request() with one handshake at most, as steps. ``first_ms``: how long the
        send's own first pass may wait (< 0: none, for an event loop's driver)."""
        (
            method, path, payload, query, options, content_format, accept, confirmable,
            timeout, block_size, token, progress,
        ) = args  # fmt: skip
        ptr = self._live()
        if first_ms >= 0 and self._loop.dispatching:
            raise CoapError(_IN_HANDLER)
        if first_ms >= 0:
            if (timeout is None or timeout >= _WAIT_SLICE_S) and self._handshake_deadline is None:
                first_ms = WAIT_SLICE_MS
            else:
                first_ms = self._first_pass_ms(timeout, None)
        if (
            path.__class__ is str
            and query is None
            and not options
            and content_format is None
            and accept is None
            and token is None
            and block_size is None
            and _LIBCOAP_BLOCKS
            and (not payload or (payload.__class__ is bytes and not self._reliable))
        ):
            sent = self._send_plain(ptr, method, path, payload, confirmable, first_ms)
            if sent is not None:
                claim, mid = sent
                if claim.ptr.state == 1:  # answered in the first pass
                    try:
                        response = self._exchanges.take(claim)
                    finally:
                        self._loop.after_io()
                else:
                    response = yield from self._answer_steps(
                        ptr, claim, mid, timeout, None, claim.ptr.sent_at, first_ms >= 0
                    )
                if progress is not None:
                    progress(len(response.payload), len(response.payload))
                return response
        if token is not None:
            token = self._check_token(token)
        if payload:
            yield from self._csm_steps(timeout)
        if block_size is not None:
            block_szx(block_size)  # ValueError before anything is sent
        if not _LIBCOAP_BLOCKS:
            # libcoap leaves block-wise transfers to us (4.2): blockwise.py does them.
            code, opts = self._request_options(
                method, path, query, options, content_format, accept, ()
            )
            body = payload.encode() if isinstance(payload, str) else bytes(payload)

            def ask(
                code: int,
                options: list[Option],
                payload: bytes,
                confirmable: bool,
                token: bytes | None,
                timeout: float | None,
                deadline: float | None,
            ) -> Steps[Response]:
                return self._ask_steps(
                    code, options, payload, confirmable, token, timeout, deadline, first_ms
                )

            return (
                yield from blockwise.request(
                    self,
                    ask,
                    code,
                    opts,
                    body,
                    confirmable=confirmable,
                    block_size=block_size,
                    timeout=timeout,
                    progress=progress,
                    token=token,
                )
            )
        ptr = self._live()  # (the CSM wait ran the loop)
        pdu, _ = self._build_request(
            ptr, method, path, payload, query, options, content_format, accept, confirmable,
            block_size, (), token,
        )  # fmt: skip
        response = yield from self._exchange_steps(ptr, pdu, timeout, None, first_ms)
        if progress is not None:
            progress(len(response.payload), len(response.payload))
        return response

    def _prepare(self, method: str | Code | int, path: str) -> tuple[int, bytes, int, int]:
        """(code, options packed for lcp_request_claimed, their length, PDU bytes besides
        the payload) of a request without extra options: request()'s common case."""
        code, opts = self._request_options(method, path, None, (), None, None, ())
        room = 4 + 8 + encoded_options_size(opts) + 1  # header, longest token, marker
        if len(self._prepared) >= _PREPARED_MAX:
            self._prepared.clear()
        blob = pack_options(opts)
        prepared = self._prepared[(method, path)] = (int(code), blob, len(blob), room)
        return prepared

    def _ask_steps(
        self,
        code: int,
        options: list[Option],
        payload: bytes,
        confirmable: bool,
        token: bytes | None,
        timeout: float | None,
        deadline: float | None,
        first_ms: int,
    ) -> Steps[Response]:
        """Send one request PDU whose payload fits and wait for its answer (a block of a
        block-wise transfer: see blockwise.Ask)."""
        ptr = self._live()
        pdu = self._build_pdu(ptr, code, options, payload, confirmable, token)
        return (yield from self._exchange_steps(ptr, pdu, timeout, deadline, first_ms))

    def _exchange_steps(
        self, ptr: Any, pdu: Any, timeout: float | None, deadline: float | None, first_ms: int
    ) -> Steps[Response]:
        """Hand a built request PDU to libcoap and wait for its one answer: the way every
        one-shot request goes (see _exchange.py, claims). The PDU is consumed.

        ``deadline`` (monotonic) ends the wait earlier than ``timeout`` would, for a
        request of several exchanges whose ``timeout`` covers them all. ``first_ms``:
        the send's own first pass (< 0: none).
        """
        started = _monotonic()
        claim = self._exchanges.claim()
        if first_ms >= 0:
            first_ms = self._first_pass_ms(timeout, deadline)
        mid = self._loop.send(ptr, pdu, claim.ptr, first_ms)
        if mid < 0:
            self._exchanges.retire(claim)
            check(mid, self._send_failure, zero_ok=True)
        if claim.ptr.state == 1:  # answered in the first pass
            try:
                return self._exchanges.take(claim)
            finally:
                self._loop.after_io()
        passed = first_ms >= 0
        return (yield from self._answer_steps(ptr, claim, mid, timeout, deadline, started, passed))

    def _first_pass_ms(self, timeout: float | None, deadline: float | None) -> int:
        """How long the first pass (in the send's own C call) may wait: -1 (none) while
        a handshake is watched (Waiting.poll's handshake deadline)."""
        if self._handshake_deadline is not None:
            return -1
        if deadline is not None:
            left = deadline - _monotonic()
            return min(WAIT_SLICE_MS, _ceil(left * 1000)) if left > 0 else 0
        if timeout is None or timeout >= _WAIT_SLICE_S:
            return WAIT_SLICE_MS
        return _ceil(timeout * 1000) if timeout > 0 else 0

    def _answer_steps(
        self,
        ptr: Any,
        claim: Claim,
        mid: int,
        timeout: float | None,
        deadline: float | None,
        started: float,
        passed: bool,
    ) -> Steps[Response]:
        """The wait of a request sent with ``claim`` (message ``mid``) whose answer did not
        come in the first pass (``passed``: one ran): its exchange is opened, and
        the driver runs the loop until it is done."""
        exchanges = self._exchanges
        exchange = exchanges.adopt(self, mid, claim)
        # (From ptr: a handler may have closed the session; after_io releases it.)
        wait = timeout if timeout is not None else lib.lcp_session_max_transmit_wait(ptr) + 1.0
        if passed:
            try:
                self._loop.after_io()
            except BaseException:
                exchanges.finish(exchange)
                raise
        end = started + wait if deadline is None else deadline
        waiting = Waiting(self, exchange, wait, end)
        try:
            yield waiting
        finally:
            exchanges.finish(exchange)
        if exchange.error is not None:
            raise exchange.error
        assert exchange.response is not None
        return exchange.response

    def _poll(self, exchange: Exchange, wait: float, deadline: float) -> float | None:
        """After a pass: None once ``exchange`` is complete; else the monotonic time by
        which the loop must look again. Raises when ``deadline`` passed (``wait`` is the
        time the message was given), and when the session or its Context closed."""
        claim = exchange.claim
        if claim is not None and claim.ptr.state:
            self._settle(exchange, claim)  # answered in the last pass
        if exchange.response is not None or exchange.error is not None:
            return None
        # A handler may have closed the session or the Context. (No renewal here: the
        # exchange is of this C session.)
        if self._ptr is None or self._check_alive or self._loop.owner != _get_ident():
            self._checked(renew=False)
        now = _monotonic()
        if deadline <= now:
            error = self._timeout_error(wait)
            self._exchanges.abandon(exchange)
            if isinstance(error, DTLSError):
                self._abort_handshake()
            elif self._proto_dtls:
                # Silence on an established DTLS session: the peer may have restarted
                # and forgotten the association (a server killed without close_notify).
                # The next request handshakes anew.
                self._forget_dtls()
            raise error
        stall = self._handshake_deadline
        if stall is not None:
            if stall <= now:
                # The handshake outlived what libcoap's own retransmissions take
                # (OpenSSL retransmits by itself when stale records come in, unseen by
                # libcoap's count, on doubled timers): end it. libcoap NACKs the
                # request, and request() starts a new one.
                self._handshake_deadline = None
                if lib.lcp_session_state(self._ptr) != _STATE_ESTABLISHED:
                    self._abort_handshake()
                return self._poll(exchange, wait, deadline)
            return min(deadline, stall)
        return deadline

    def _settle(self, exchange: Exchange, claim: Claim) -> None:
        """Complete ``exchange`` from its filled claim: a response, or a NACK."""
        if claim.ptr.state == 1:
            self._exchanges.settle(exchange)
            return
        reason = int(claim.ptr.nack_reason)
        if reason == _TLS_FAILED:
            self._note_tls_failure()
        self._exchanges.fail(exchange, reason, lambda: nack_error(reason, self))

    def _check_token(self, token: bytes) -> bytes:
        if not isinstance(token, (bytes, bytearray, memoryview)):
            raise TypeError(f"token must be bytes, not {type(token).__name__}")
        token = bytes(token)
        if len(token) > 8:
            raise ValueError(f"a CoAP token has at most 8 bytes, got {len(token)}")
        if self._exchanges.in_use(self, token):
            raise ValueError(f"token {token.hex() or '(empty)'} is in use by a waiting request")
        return token

    def _csm_steps(self, timeout: float | None) -> Steps[None]:
        """Over TCP/TLS, wait until the peer's CSM has set the session's message size.

        Until then RFC 8323 allows only 1152 bytes (libcoap 4.2 applies that), so a
        larger body sent on a fresh session would be cut into blocks or refused
        although the peer would take it whole. Bounded by ``timeout``; a session
        that does not get there fails on the request itself.
        """
        ptr = self._ptr
        if ptr is None or lib.lcp_session_proto(ptr) not in _RELIABLE:
            return
        wait = timeout if timeout is not None else self.max_transmit_wait() + 1.0
        yield Waiting(self, None, wait, time.monotonic() + wait)

    def observe(
        self,
        path: str = "",
        callback: NotificationCallback | None = None,
        *,
        query: str | Iterable[str] | None = None,
        options: Iterable[tuple[int, OptionValue]] = (),
        accept: ContentFormat | int | None = None,
        timeout: float | None = None,
        confirmable: bool = True,
        token: bytes | None = None,
    ) -> Observation:
        """Observe a resource (RFC 7641): a GET with Observe 0, then its notifications.

        Iterate the returned Observation, or pass ``callback(response)``, which runs
        inside ``run_once()``/``run()``. ``timeout`` (seconds) ends the iteration and
        deregisters. ``Observation.cancel()`` deregisters at any time. ``token``
        (0 to 8 bytes) registers with this token instead of a fresh one.
        """
        check_observe_supported()
        self._live()
        option_list = list(options)
        chosen = None if token is None else self._check_token(token)

        def register(again: bytes | None) -> tuple[bytes, int]:
            # again: re-register with the registration's own token (RFC 7641, 3.3.1)
            token = again if again is not None else chosen
            extra = [encode_option(OptionNumber.OBSERVE, 0)]
            return self._send_request(
                "GET", path, query, option_list, accept, confirmable, extra, token
            )

        def deregister(token: bytes) -> None:
            if lib.LCP_HAS_CANCEL_OBSERVE:  # libcoap deregisters itself
                ptr = self._ptr
                if ptr is not None:
                    lib.lcp_cancel_observe(ptr, token, len(token), int(confirmable))
                return
            # The same request with Observe 1 and the registration's token (RFC 7641, 3.6).
            extra = [encode_option(OptionNumber.OBSERVE, 1)]
            self._send_request("GET", path, query, option_list, accept, confirmable, extra, token)

        return Observation(
            self, self._loop, self._exchanges, register, deregister, self._live,
            self._forget_dtls, callback, timeout, confirmable,
        )  # fmt: skip

    def _send_request(
        self,
        method: str | Code | int,
        path: str,
        query: str | Iterable[str] | None,
        options: Iterable[tuple[int, OptionValue]],
        accept: ContentFormat | int | None,
        confirmable: bool,
        extra: Iterable[Option],
        token: bytes | None,
    ) -> tuple[bytes, int]:
        """Build a request PDU with no body and hand it to libcoap, for an answer that goes
        to a lasting exchange (an observation's registrations and deregistration);
        returns (token, message ID). ``token`` is sent instead of a fresh one."""
        ptr = self._live()
        pdu, token_len = self._build_request(
            ptr, method, path, b"", query, options, None, accept, confirmable, None, extra,
            token,
        )  # fmt: skip
        return self._hand_over(ptr, pdu, token, token_len)

    def _build_request(
        self,
        ptr: Any,
        method: str | Code | int,
        path: str,
        payload: bytes | bytearray | memoryview | str,
        query: str | Iterable[str] | None,
        options: Iterable[tuple[int, OptionValue]],
        content_format: ContentFormat | int | None,
        accept: ContentFormat | int | None,
        confirmable: bool,
        block_size: int | None,
        extra: Iterable[Option],
        token: bytes | None,
    ) -> tuple[Any, int]:
        """A request PDU for ``ptr`` (owned by the caller until sent), and its token's
        length. ``token`` is sent instead of a fresh one."""
        code, opts = self._request_options(
            method, path, query, options, content_format, accept, extra
        )
        body = payload.encode() if isinstance(payload, str) else payload
        if block_size is not None:
            szx = block_szx(block_size)
            # Block2 (num 0) asks the server for blocks of this size; Block1 sets
            # the size libcoap cuts a large request body into.
            opts.append(encode_option(OptionNumber.BLOCK2, szx))
            if body:
                opts.append(encode_option(OptionNumber.BLOCK1, szx))
            opts.sort(key=_option_number)
        kind = _CON if confirmable else _NON
        pdu, token_len = self._new_request_pdu(ptr, kind, code, token)
        try:
            data = bytes(body)
            max_pdu = lib.coap_session_max_pdu_size(ptr)
            single = not data or (
                block_size is None and len(data) <= pdu_room(max_pdu, token_len, opts)
            )
            if not single and lib.LCP_HAS_BLOCK:
                # libcoap cuts the body into blocks (of Block1's size, if given).
                write_options(pdu, opts)
                check(
                    lib.lcp_add_data_large_request(ptr, pdu, data, len(data)),
                    "libcoap refused the block-wise request body",
                )
            else:
                if block_size is not None:
                    opts = [o for o in opts if o[0] != _BLOCK1]
                write_options(pdu, opts)
                if data:
                    if not single:
                        check_fits(max_pdu, token_len, opts, len(data))  # raises, naming sizes
                    check(lib.coap_add_data(pdu, len(data), data), REFUSED_PAYLOAD)
        except BaseException:
            lib.coap_delete_pdu(pdu)
            raise
        return pdu, token_len

    def _request_options(
        self,
        method: str | Code | int,
        path: str,
        query: str | Iterable[str] | None,
        options: Iterable[tuple[int, OptionValue]],
        content_format: ContentFormat | int | None,
        accept: ContentFormat | int | None,
        extra: Iterable[Option],
    ) -> tuple[Code, list[Option]]:
        """The method's code and the request's options, sorted by number."""
        code = Code.method(method)
        if "?" in path:
            path, _, inline_query = path.partition("?")
            if query is None:
                query = inline_query
        segments = split_path(path) if path else self.uri.path
        # The path and query come first: the sort below is stable, so Uri-Path and
        # Uri-Query given in options= follow them.
        opts: list[Option] = [encode_option(_URI_PATH, s) for s in segments]
        if query is not None:
            args = split_query(query) if isinstance(query, str) else tuple(query)
        else:
            args = self.uri.query
        opts.extend(encode_option(_URI_QUERY, a) for a in args)
        opts.extend(encode_option(n, v) for n, v in options)
        opts.extend(extra)
        if content_format is not None:
            opts.append(encode_option(OptionNumber.CONTENT_FORMAT, int(content_format)))
        if accept is not None:
            opts.append(encode_option(OptionNumber.ACCEPT, int(accept)))
        opts.sort(key=_option_number)
        if self._register_options is not None:
            self._register_options(opts)

        return code, opts

    def _new_request_pdu(
        self, ptr: Any, kind: int, code: int, token: bytes | None
    ) -> tuple[Any, int]:
        """A request PDU (owned by the caller until coap_send) with a fresh or the given token."""
        if token is None:
            pdu = lib.lcp_new_request(ptr, kind, code, self._token, self._token_len)
            token_len = int(self._token_len[0])
        else:
            pdu = lib.lcp_new_request_with_token(ptr, kind, code, token, len(token))
            token_len = len(token)
        check(pdu, NO_PDU)
        return pdu, token_len

    def _build_pdu(
        self,
        ptr: Any,
        code: int,
        opts: list[Option],
        data: bytes,
        confirmable: bool,
        token: bytes | None,
    ) -> Any:
        """One request PDU whose payload must fit (owned by the caller until sent)."""
        pdu, token_len = self._new_request_pdu(ptr, _CON if confirmable else _NON, code, token)
        try:
            if opts:
                write_options(pdu, opts)
            if data:
                check_fits(lib.coap_session_max_pdu_size(ptr), token_len, opts, len(data))
                check(lib.coap_add_data(pdu, len(data), data), REFUSED_PAYLOAD)
        except BaseException:
            lib.coap_delete_pdu(pdu)
            raise
        return pdu

    def _hand_over(
        self, ptr: Any, pdu: Any, token: bytes | None, token_len: int
    ) -> tuple[bytes, int]:
        """Give a built request PDU to libcoap; returns (token, message ID)."""
        if token is None:
            token = ffi.buffer(self._token, token_len)[:]
        mid: int = _coap_send(ptr, pdu)  # consumes pdu, also on failure
        check(mid, self._send_failure, zero_ok=True)
        return token, mid

    def _timeout_error(self, waited: float) -> NackError:
        ptr = self._ptr
        secure = self.uri.secure
        if (
            ptr is not None
            and secure
            and (self._dtls_failed or lib.lcp_session_state(ptr) != _STATE_ESTABLISHED)
        ):
            if self.refusal is not None:
                return DTLSError(f"DTLS handshake with {self.uri} refused: {self.refusal}")
            return DTLSError(
                f"the DTLS handshake with {self.uri} did not complete within {waited:g} s "
                "(a wrong PSK or an untrusted certificate often looks like silence)"
            )
        return RequestTimeout(f"no response from {self.uri} within {waited:g} s")

    def new_pdu(
        self,
        type: MessageType | int = MessageType.CON,
        code: Code | int = Code.GET,
        *,
        mid: int | None = None,
        token: bytes | None = None,
    ) -> PDU:
        """A new PDU with a fresh message ID and token, owned by you until ``send()``.

        libcoap makes the PDU, and gives it its ID and token, when it is first
        needed: when a field (``mid``, ``token``, ``type``, ``code``) is read, when
        it is sent with a payload, or in ``send()`` itself (one call into libcoap
        for a request with options only: the handler loop's common case).

        ``mid`` and ``token`` give them instead: to send a message again, as it
        was, over a new session (a server that recognises retransmissions, such as
        the data service, then answers it as the first copy).
        """
        ptr = self._ptr
        if self._loop.owner != _get_ident() or ptr is None or self._check_alive:
            ptr = self._checked()  # (_live(), inline: every PDU a handler loop sends)
        kind = type if type.__class__ is MessageType else MessageType(type)
        method = code if code.__class__ is Code else check_code(code)
        if mid is not None and not 0 <= mid <= 0xFFFF:
            raise ValueError(f"a message ID is 0..65535, not {mid!r}")
        if token is None:
            if mid is None:
                # libcoap makes it when it is needed (see PDU._unbuilt).
                return _unbuilt(self, self._context, self._make_pdu, kind, method)
            pdu_ptr, length = self._make_pdu(kind, method)
        else:
            token = bytes(token)
            if len(token) > 8:
                raise ValueError(f"a token has at most 8 bytes, not {len(token)}")
            pdu_ptr = lib.lcp_new_request_with_token(ptr, kind, method, token, len(token))
            length = len(token)
        if not pdu_ptr:
            check(pdu_ptr, NO_PDU)
        if mid is not None:
            lib.lcp_pdu_set_mid(pdu_ptr, mid)
        return _owned_new(pdu_ptr, self, self._context, length)

    def _make_pdu(self, kind: int, code: int) -> tuple[Any, int]:
        """A request PDU with a fresh message ID and token (an unbuilt PDU's builder)."""
        ptr = self._live()
        token_len = self._token_len
        pdu_ptr = _new_request(ptr, kind, code, self._token, token_len)
        if not pdu_ptr:
            check(pdu_ptr, NO_PDU)
        return pdu_ptr, token_len[0]

    def send(self, pdu: PDU) -> int:
        """Hand a PDU to libcoap (which sends it from ``run_once()``); returns its message ID.

        The PDU is consumed: using it afterwards raises ``CoapError``.
        Responses arrive at the Context's response handler.
        """
        ptr = self._ptr
        if self._loop.owner != _get_ident() or ptr is None or self._check_alive:
            ptr = self._checked()  # (_live(), inline)
        if not isinstance(pdu, PDU):
            raise TypeError("send() takes a PDU made by Session.new_pdu()")
        return pdu._send(self, ptr, self._send_failure)

    # -- callbacks from the Context ---------------------------------------------------------

    def _forget_dtls(self) -> None:
        """Drop an established DTLS association the peer may no longer have (it
        restarted): the next message starts a new handshake. Messages still queued on
        the session fail with NACK TLS_FAILED."""
        ptr = self._ptr
        if ptr is not None and self.uri.secure:
            self._loop.guarded(lib.coap_session_disconnected, ptr, lib.COAP_NACK_TLS_FAILED)
            self._failed()

    def _abort_handshake(self) -> None:
        """Give up a DTLS handshake that never completes (a wrong PSK gets no alert).

        libcoap drops the session's queued messages (NACK TLS_FAILED to the
        nack handler for PDUs sent with ``send()``); the next request starts
        a new handshake.
        """
        ptr = self._ptr
        if ptr is not None and lib.lcp_session_state(ptr) != _STATE_ESTABLISHED:
            self._loop.guarded(lib.coap_session_disconnected, ptr, lib.COAP_NACK_TLS_FAILED)
            self._failed()

    def _fail_all(self, error: BaseException) -> None:
        """The session ended: its waiting requests and its observations fail."""
        self._exchanges.fail_session(self, error, SESSION_ENDED)

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release the session. Requests still waiting fail with ``CoapError``."""
        if self._ptr is None:
            return
        self._loop.enter_for_close()
        self._detach(CoapError(f"the session to {self.uri} was closed"))

    def _detach(self, error: BaseException) -> None:
        """Drop our reference to the C session (possibly deferred until libcoap is idle)."""
        ptr, self._ptr = self._ptr, None
        self.closed = True
        self._fail_all(error)
        if ptr is None:
            return
        # Callbacks for this session from now on (queued messages, events) find no Session.
        lib.coap_session_set_app_data(ptr, ffi.NULL)
        if self._gone is not None:
            self._gone(self)
        self._loop.release_session(ptr)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._ptr is None else "open"
        return f"<Session {self.uri} {state}>"


def request_steps(session: Session, args: RequestArgs) -> Steps[Response]:
    """``request()``'s steps for an event loop's driver (``libcoap_py.aio``): the send
    runs no pass of its own (the event loop runs them), and the request may start
    inside a handler (it waits in the event loop, not in the handler). ``args``:
    request()'s arguments after ``self``, in order, all given."""
    if session._proto_dtls:
        return session._request_steps(args, -1)
    return session._once_steps(args, -1)


def send_plain(
    session: Session,
    method: str | Code | int,
    path: str,
    payload: bytes | bytearray | memoryview | str,
    confirmable: bool,
) -> tuple[Claim, int, float] | None:
    """An awaited request's common case (no extra options given; the caller checked):
    built and sent in one C call with no pass, as request()'s own (``_send_plain``).
    Returns the claim, the message ID and when it was sent; None when this request
    is not the common case here (a body that does not fit, a handshake to watch,
    libcoap 4.2's block-wise, a reliable transport with a body): its steps then go
    the general way (``request_steps``)."""
    if session._handshake_deadline is not None or (
        session._proto_dtls and not session._established()
    ):
        return None
    if not (
        path.__class__ is str
        and _LIBCOAP_BLOCKS
        and (not payload or (payload.__class__ is bytes and not session._reliable))
    ):
        return None
    ptr = session._live()
    sent = session._send_plain(ptr, method, path, payload, confirmable, -1)
    if sent is None:
        return None
    claim, mid = sent  # (no pass: never LCP_QUIET)
    return claim, mid, claim.ptr.sent_at


def plain_waiting(session: Session, claim: Claim, mid: int, wait: float, started: float) -> Waiting:
    """The wait of a request ``send_plain`` sent, once it is not a plain answer (a
    NACK, its deadline, a cancellation): its exchange is opened with the claim, as
    request()'s own (``_answer_steps``); the caller finishes it (``Exchanges.finish``).
    ``wait``: the time it was given (``transmit_wait()`` when no timeout was)."""
    exchange = session._exchanges.adopt(session, mid, claim)
    return Waiting(session, exchange, wait, started + wait)


def transmit_wait(session: Session) -> float:
    """How long a request without a timeout waits: libcoap's MAX_TRANSMIT_WAIT plus
    one second, as request() does (kept until the session's parameters change)."""
    wait = session._transmit_wait
    if wait is None:
        ptr = session._live()
        wait = session._transmit_wait = float(lib.lcp_session_max_transmit_wait(ptr)) + 1.0
    return wait
