"""CoAP protocol numbers as IntEnums: message types, codes, options, formats, libcoap events.

The values are libcoap's own constants, read from the compiled module: what the
library the binding is built against says. A literal stands only where that
libcoap generation has no name for the number (each says so); a ``LCP_HAS_*``
flag beside the declaration (``cdef/``) tells which.
"""

from __future__ import annotations

import enum

# The compiled module only: no cycle (libcoap_py/__init__.py imports it before this).
from ._binding import lib

__all__ = [
    "Code",
    "ContentFormat",
    "Event",
    "LogLevel",
    "MessageType",
    "NackReason",
    "OptionNumber",
    "Proto",
]


class MessageType(enum.IntEnum):
    """The message type in the CoAP header (RFC 7252, 3)."""

    CON = lib.COAP_MESSAGE_CON
    NON = lib.COAP_MESSAGE_NON
    ACK = lib.COAP_MESSAGE_ACK
    RST = lib.COAP_MESSAGE_RST


def _code(class_: int, detail: int) -> int:
    return class_ << 5 | detail


_response = lib.COAP_RESPONSE_CODE  # COAP_RESPONSE_CODE(404): 4.04, i.e. 4 << 5 | 4

# What an unnamed code is called (Code.phrase), by its class.
_UNNAMED_PHRASES = {
    0: "Unknown Method",
    2: "Unknown Success",
    4: "Unknown Client Error",
    5: "Unknown Server Error",
    7: "Unknown Signal",
}
# The pseudo-members made for codes without a name (Code._missing_), by value.
_UNNAMED: dict[int, Code] = {}


class Code(enum.IntEnum):
    """Request methods and response codes; the value is the header byte (class << 5 | detail).

    Every code byte is a ``Code``: one without a name here (say 2.06) gets a
    pseudo-member, named ``CODE_2_06``, whose ``dotted``, ``class_``, ``phrase``
    etc. work as a member's do (``is_known`` is False). ``Code(0x46) is
    Code(0x46)``; values outside 0..255 raise ``ValueError``.
    """

    # 0.00: libcoap 4.2 has no name for it.
    EMPTY = lib.COAP_EMPTY_CODE if lib.LCP_HAS_EMPTY_CODE else 0
    GET = lib.COAP_REQUEST_GET
    POST = lib.COAP_REQUEST_POST
    PUT = lib.COAP_REQUEST_PUT
    DELETE = lib.COAP_REQUEST_DELETE
    FETCH = lib.COAP_REQUEST_FETCH
    PATCH = lib.COAP_REQUEST_PATCH
    IPATCH = lib.COAP_REQUEST_IPATCH

    CREATED = _response(201)
    DELETED = _response(202)
    VALID = _response(203)
    CHANGED = _response(204)
    CONTENT = _response(205)
    CONTINUE = _response(231)

    BAD_REQUEST = _response(400)
    UNAUTHORIZED = _response(401)
    BAD_OPTION = _response(402)
    FORBIDDEN = _response(403)
    NOT_FOUND = _response(404)
    METHOD_NOT_ALLOWED = _response(405)
    NOT_ACCEPTABLE = _response(406)
    REQUEST_ENTITY_INCOMPLETE = _response(408)
    CONFLICT = _response(409)
    PRECONDITION_FAILED = _response(412)
    REQUEST_ENTITY_TOO_LARGE = _response(413)
    UNSUPPORTED_CONTENT_FORMAT = _response(415)
    UNPROCESSABLE_ENTITY = _response(422)
    TOO_MANY_REQUESTS = _response(429)

    INTERNAL_SERVER_ERROR = _response(500)
    NOT_IMPLEMENTED = _response(501)
    BAD_GATEWAY = _response(502)
    SERVICE_UNAVAILABLE = _response(503)
    GATEWAY_TIMEOUT = _response(504)
    PROXYING_NOT_SUPPORTED = _response(505)
    HOP_LIMIT_REACHED = _response(508)

    CSM = lib.COAP_SIGNALING_CSM
    PING = lib.COAP_SIGNALING_PING
    PONG = lib.COAP_SIGNALING_PONG
    RELEASE = lib.COAP_SIGNALING_RELEASE
    ABORT = lib.COAP_SIGNALING_ABORT

    @classmethod
    def _missing_(cls, value: object) -> Code | None:
        """The pseudo-member of a code byte (0..255) that has no name; None for others."""
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
            return None
        number = int(value)
        member = _UNNAMED.get(number)
        if member is None:
            made = int.__new__(cls, number)
            made._name_ = f"CODE_{number >> 5}_{number & 0x1F:02d}"
            made._value_ = number
            member = _UNNAMED.setdefault(number, made)
        return member

    @property
    def class_(self) -> int:
        """The code class: 0 request, 2 success, 4 client error, 5 server error."""
        return self >> 5  # an int: IntEnum's shift is int's

    @property
    def detail(self) -> int:
        """The code detail, the part after the dot."""
        return self & 0x1F

    @property
    def dotted(self) -> str:
        """The code as written in RFC 7252, e.g. ``"2.05"``."""
        return f"{self.class_}.{self.detail:02d}"

    @property
    def is_known(self) -> bool:
        """True for the codes named here; False for a pseudo-member (``CODE_2_06``)."""
        return int(self) not in _UNNAMED

    @property
    def is_request(self) -> bool:
        """True for a request method code (0.01 to 0.31), named or not."""
        return 1 <= self <= 31

    @property
    def is_success(self) -> bool:
        """True for a 2.xx code."""
        return self.class_ == 2

    @property
    def is_error(self) -> bool:
        """True for a 4.xx or 5.xx code."""
        return self.class_ in (4, 5)

    @property
    def phrase(self) -> str:
        """A human name, e.g. ``"Not Found"``; ``"Unknown Client Error"`` for an
        unnamed 4.xx code (``"Reserved"`` in the classes 1, 3 and 6)."""
        if not self.is_known:
            return _UNNAMED_PHRASES.get(self.class_, "Reserved")
        words = self.name.split("_")
        return " ".join(w if w in ("CSM",) else w.capitalize() for w in words)

    @classmethod
    def from_dotted(cls, text: str) -> Code:
        """``Code.from_dotted("4.04") is Code.NOT_FOUND``; a code without a name gives
        its pseudo-member (``"2.06"``: ``CODE_2_06``)."""
        try:
            major, minor = text.split(".")
            class_, detail = int(major), int(minor)
        except ValueError:
            raise ValueError(f"not a dotted CoAP code: {text!r} (expected e.g. '2.05')") from None
        if not (0 <= class_ <= 7 and 0 <= detail <= 31):
            raise ValueError(f"not a dotted CoAP code: {text!r} (class 0-7, detail 0-31)")
        return cls(_code(class_, detail))

    @classmethod
    def method(cls, name: str | int) -> Code:
        """A request method from ``"GET"``/``"post"``/``Code.PUT``/``3``."""
        code: Code | None
        if isinstance(name, str):
            code = cls.__members__.get(name.upper())
        else:
            try:
                code = cls(name)
            except ValueError:
                code = None
        if code is None or not code.is_known or not code.is_request:
            raise ValueError(
                f"unknown request method {name!r} "
                "(expected GET, POST, PUT, DELETE, FETCH, PATCH or IPATCH)"
            )
        return code

    def __str__(self) -> str:
        return f"{self.dotted} {self.phrase}"

    def __reduce_ex__(self, proto: object) -> tuple[type[Code], tuple[int]]:
        # By value, so that a pseudo-member pickles too (some Pythons, e.g. 3.11.2,
        # pickle enum members by name).
        return Code, (int(self),)


#: Every code byte's Code, by value (0..255): a lookup without the Enum machinery
#: (pdu.py and request.py use it on the per-message path).
CODE_BY_BYTE: tuple[Code, ...] = tuple(Code(byte) for byte in range(256))


class OptionNumber(enum.IntEnum):
    """Option numbers from the IANA CoAP registry."""

    IF_MATCH = lib.COAP_OPTION_IF_MATCH
    URI_HOST = lib.COAP_OPTION_URI_HOST
    ETAG = lib.COAP_OPTION_ETAG
    IF_NONE_MATCH = lib.COAP_OPTION_IF_NONE_MATCH
    OBSERVE = lib.COAP_OPTION_OBSERVE
    URI_PORT = lib.COAP_OPTION_URI_PORT
    LOCATION_PATH = lib.COAP_OPTION_LOCATION_PATH
    OSCORE = lib.COAP_OPTION_OSCORE if lib.LCP_HAS_OPTION_NAMES_43 else 9  # not named in 4.2
    URI_PATH = lib.COAP_OPTION_URI_PATH
    CONTENT_FORMAT = lib.COAP_OPTION_CONTENT_FORMAT
    MAX_AGE = lib.COAP_OPTION_MAXAGE
    URI_QUERY = lib.COAP_OPTION_URI_QUERY
    HOP_LIMIT = lib.COAP_OPTION_HOP_LIMIT if lib.LCP_HAS_OPTION_NAMES_43 else 16  # not in 4.2
    ACCEPT = lib.COAP_OPTION_ACCEPT
    # Q-Block1 and Q-Block2 (RFC 9177): named from libcoap 4.3.2 on.
    Q_BLOCK1 = lib.COAP_OPTION_Q_BLOCK1 if lib.LCP_HAS_Q_BLOCK_OPTIONS else 19
    LOCATION_QUERY = lib.COAP_OPTION_LOCATION_QUERY
    EDHOC = 21  # RFC 9668: no libcoap release names it
    BLOCK2 = lib.COAP_OPTION_BLOCK2
    BLOCK1 = lib.COAP_OPTION_BLOCK1
    SIZE2 = lib.COAP_OPTION_SIZE2
    Q_BLOCK2 = lib.COAP_OPTION_Q_BLOCK2 if lib.LCP_HAS_Q_BLOCK_OPTIONS else 31
    PROXY_URI = lib.COAP_OPTION_PROXY_URI
    PROXY_SCHEME = lib.COAP_OPTION_PROXY_SCHEME
    SIZE1 = lib.COAP_OPTION_SIZE1
    ECHO = lib.COAP_OPTION_ECHO if lib.LCP_HAS_OPTION_NAMES_43 else 252  # not named in 4.2
    NO_RESPONSE = lib.COAP_OPTION_NORESPONSE
    REQUEST_TAG = lib.COAP_OPTION_RTAG if lib.LCP_HAS_OPTION_NAMES_43 else 292  # not in 4.2

    @property
    def critical(self) -> bool:
        """True for a critical option (an odd number, RFC 7252, 5.4.1)."""
        return bool(self & 1)


class ContentFormat(enum.IntEnum):
    """Content-Format numbers from the IANA registry (the common ones).

    ``media_type`` gives a format's media type, ``from_media_type()`` the format
    of one.
    """

    TEXT_PLAIN = lib.COAP_MEDIATYPE_TEXT_PLAIN
    LINK_FORMAT = lib.COAP_MEDIATYPE_APPLICATION_LINK_FORMAT
    XML = lib.COAP_MEDIATYPE_APPLICATION_XML
    OCTET_STREAM = lib.COAP_MEDIATYPE_APPLICATION_OCTET_STREAM
    EXI = lib.COAP_MEDIATYPE_APPLICATION_EXI
    JSON = lib.COAP_MEDIATYPE_APPLICATION_JSON
    JSON_PATCH = 51  # RFC 6902: libcoap has no name for it
    MERGE_PATCH = 52  # RFC 7396: libcoap has no name for it
    CBOR = lib.COAP_MEDIATYPE_APPLICATION_CBOR
    CWT = lib.COAP_MEDIATYPE_APPLICATION_CWT if lib.LCP_HAS_MEDIATYPE_CWT else 61  # not in 4.2
    SENML_JSON = lib.COAP_MEDIATYPE_APPLICATION_SENML_JSON
    SENSML_JSON = lib.COAP_MEDIATYPE_APPLICATION_SENSML_JSON
    SENML_CBOR = lib.COAP_MEDIATYPE_APPLICATION_SENML_CBOR
    SENSML_CBOR = lib.COAP_MEDIATYPE_APPLICATION_SENSML_CBOR

    @property
    def media_type(self) -> str:
        """The IANA media type, e.g. ``"application/json"`` (``"text/plain"`` for
        TEXT_PLAIN, whose registered content type adds ``charset=utf-8``)."""
        return _MEDIA_TYPES[self]

    @classmethod
    def from_media_type(cls, text: str) -> ContentFormat:
        """The format of a media type: ``"application/json"`` is ``JSON``.

        Case and spaces around ``;`` and ``=`` do not matter; the only parameter
        accepted is ``charset=utf-8`` of ``text/plain``. ``ValueError`` for any
        other media type or parameter.
        """
        if not isinstance(text, str):
            raise TypeError(f"a media type is a str, not {type(text).__name__}")
        kind, *parameters = (part.strip() for part in text.lower().split(";"))
        wanted = [p.replace(" ", "") for p in parameters]
        format_ = _BY_MEDIA_TYPE.get(kind)
        if format_ is None:
            known = ", ".join(_MEDIA_TYPES.values())
            raise ValueError(f"no content format for the media type {text!r} (known: {known})")
        if wanted and not (format_ is cls.TEXT_PLAIN and wanted == ["charset=utf-8"]):
            raise ValueError(
                f"no content format for the media type {text!r}: parameters other than "
                "text/plain's charset=utf-8 are not registered"
            )
        return format_


_MEDIA_TYPES: dict[ContentFormat, str] = {
    ContentFormat.TEXT_PLAIN: "text/plain",
    ContentFormat.LINK_FORMAT: "application/link-format",
    ContentFormat.XML: "application/xml",
    ContentFormat.OCTET_STREAM: "application/octet-stream",
    ContentFormat.EXI: "application/exi",
    ContentFormat.JSON: "application/json",
    ContentFormat.JSON_PATCH: "application/json-patch+json",
    ContentFormat.MERGE_PATCH: "application/merge-patch+json",
    ContentFormat.CBOR: "application/cbor",
    ContentFormat.CWT: "application/cwt",
    ContentFormat.SENML_JSON: "application/senml+json",
    ContentFormat.SENSML_JSON: "application/sensml+json",
    ContentFormat.SENML_CBOR: "application/senml+cbor",
    ContentFormat.SENSML_CBOR: "application/sensml+cbor",
}
_BY_MEDIA_TYPE: dict[str, ContentFormat] = {text: cf for cf, text in _MEDIA_TYPES.items()}


class NackReason(enum.IntEnum):
    """Why libcoap gave up on a message (``coap_nack_reason_t``)."""

    TOO_MANY_RETRIES = lib.COAP_NACK_TOO_MANY_RETRIES
    NOT_DELIVERABLE = lib.COAP_NACK_NOT_DELIVERABLE
    RST = lib.COAP_NACK_RST
    TLS_FAILED = lib.COAP_NACK_TLS_FAILED
    ICMP_ISSUE = lib.COAP_NACK_ICMP_ISSUE


class Event(enum.IntEnum):
    """Session events libcoap reports (``coap_event_t``)."""

    DTLS_CLOSED = lib.COAP_EVENT_DTLS_CLOSED
    DTLS_CONNECTED = lib.COAP_EVENT_DTLS_CONNECTED
    DTLS_RENEGOTIATE = lib.COAP_EVENT_DTLS_RENEGOTIATE
    DTLS_ERROR = lib.COAP_EVENT_DTLS_ERROR
    TCP_CONNECTED = lib.COAP_EVENT_TCP_CONNECTED
    TCP_CLOSED = lib.COAP_EVENT_TCP_CLOSED
    TCP_FAILED = lib.COAP_EVENT_TCP_FAILED
    SESSION_CONNECTED = lib.COAP_EVENT_SESSION_CONNECTED
    SESSION_CLOSED = lib.COAP_EVENT_SESSION_CLOSED
    SESSION_FAILED = lib.COAP_EVENT_SESSION_FAILED
    # libcoap 4.2 has none of the following (nor raises them): 4.3's numbers there.
    PARTIAL_BLOCK = lib.COAP_EVENT_PARTIAL_BLOCK if lib.LCP_HAS_BLOCK_EVENTS else 0x3001
    XMIT_BLOCK_FAIL = lib.COAP_EVENT_XMIT_BLOCK_FAIL if lib.LCP_HAS_BLOCK_EVENTS else 0x3002
    SERVER_SESSION_NEW = (
        lib.COAP_EVENT_SERVER_SESSION_NEW if lib.LCP_HAS_SERVER_SESSION_EVENTS else 0x4001
    )
    SERVER_SESSION_DEL = (
        lib.COAP_EVENT_SERVER_SESSION_DEL if lib.LCP_HAS_SERVER_SESSION_EVENTS else 0x4002
    )


class Proto(enum.IntEnum):
    """Transport of a session (``coap_proto_t``)."""

    NONE = lib.COAP_PROTO_NONE
    UDP = lib.COAP_PROTO_UDP
    DTLS = lib.COAP_PROTO_DTLS
    TCP = lib.COAP_PROTO_TCP
    TLS = lib.COAP_PROTO_TLS


class LogLevel(enum.IntEnum):
    """libcoap log levels (syslog's)."""

    EMERG = lib.LOG_EMERG
    ALERT = lib.LOG_ALERT
    CRIT = lib.LOG_CRIT
    ERR = lib.LOG_ERR
    WARNING = lib.LOG_WARNING
    NOTICE = lib.LOG_NOTICE
    INFO = lib.LOG_INFO
    DEBUG = lib.LOG_DEBUG
    CIPHERS = lib.COAP_LOG_CIPHERS
