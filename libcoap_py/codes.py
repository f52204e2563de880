"""CoAP protocol numbers as IntEnums: message types, codes, options, formats, libcoap events."""

from __future__ import annotations

import enum

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

    CON = 0
    NON = 1
    ACK = 2
    RST = 3


def _code(class_: int, detail: int) -> int:
    return class_ << 5 | detail


class Code(enum.IntEnum):
    """Request methods and response codes; the value is the header byte (class << 5 | detail)."""

    EMPTY = 0
    GET = 1
    POST = 2
    PUT = 3
    DELETE = 4
    FETCH = 5
    PATCH = 6
    IPATCH = 7

    CREATED = _code(2, 1)
    DELETED = _code(2, 2)
    VALID = _code(2, 3)
    CHANGED = _code(2, 4)
    CONTENT = _code(2, 5)
    CONTINUE = _code(2, 31)

    BAD_REQUEST = _code(4, 0)
    UNAUTHORIZED = _code(4, 1)
    BAD_OPTION = _code(4, 2)
    FORBIDDEN = _code(4, 3)
    NOT_FOUND = _code(4, 4)
    METHOD_NOT_ALLOWED = _code(4, 5)
    NOT_ACCEPTABLE = _code(4, 6)
    REQUEST_ENTITY_INCOMPLETE = _code(4, 8)
    CONFLICT = _code(4, 9)
    PRECONDITION_FAILED = _code(4, 12)
    REQUEST_ENTITY_TOO_LARGE = _code(4, 13)
    UNSUPPORTED_CONTENT_FORMAT = _code(4, 15)
    UNPROCESSABLE_ENTITY = _code(4, 22)
    TOO_MANY_REQUESTS = _code(4, 29)

    INTERNAL_SERVER_ERROR = _code(5, 0)
    NOT_IMPLEMENTED = _code(5, 1)
    BAD_GATEWAY = _code(5, 2)
    SERVICE_UNAVAILABLE = _code(5, 3)
    GATEWAY_TIMEOUT = _code(5, 4)
    PROXYING_NOT_SUPPORTED = _code(5, 5)
    HOP_LIMIT_REACHED = _code(5, 8)

    CSM = _code(7, 1)
    PING = _code(7, 2)
    PONG = _code(7, 3)
    RELEASE = _code(7, 4)
    ABORT = _code(7, 5)

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
    def is_request(self) -> bool:
        return 1 <= self.value <= 31

    @property
    def is_success(self) -> bool:
        return self.class_ == 2

    @property
    def is_error(self) -> bool:
        return self.class_ in (4, 5)

    @property
    def phrase(self) -> str:
        """A human name, e.g. ``"Not Found"``."""
        words = self.name.split("_")
        return " ".join(w if w in ("CSM",) else w.capitalize() for w in words)

    @classmethod
    def from_dotted(cls, text: str) -> Code:
        """``Code.from_dotted("4.04") is Code.NOT_FOUND``."""
        try:
            major, minor = text.split(".")
            class_, detail = int(major), int(minor)
        except ValueError:
            raise ValueError(f"not a dotted CoAP code: {text!r} (expected e.g. '2.05')") from None
        if not (0 <= class_ <= 7 and 0 <= detail <= 31):
            raise ValueError(f"not a dotted CoAP code: {text!r} (class 0-7, detail 0-31)")
        try:
            return cls(_code(class_, detail))
        except ValueError:
            raise ValueError(f"unknown CoAP code {text!r}") from None

    @classmethod
    def method(cls, name: str | int) -> Code:
        """A request method from ``"GET"``/``"post"``/``Code.PUT``/``3``."""
        if isinstance(name, str):
            try:
                code = cls[name.upper()]
            except KeyError:
                code = None
        else:
            code = cls(name) if name in cls._value2member_map_ else None
        if code is None or not code.is_request:
            raise ValueError(
                f"unknown request method {name!r} "
                "(expected GET, POST, PUT, DELETE, FETCH, PATCH or IPATCH)"
            )
        return code

    def __str__(self) -> str:
        return f"{self.dotted} {self.phrase}"


class OptionNumber(enum.IntEnum):
    """Option numbers from the IANA CoAP registry."""

    IF_MATCH = 1
    URI_HOST = 3
    ETAG = 4
    IF_NONE_MATCH = 5
    OBSERVE = 6
    URI_PORT = 7
    LOCATION_PATH = 8
    OSCORE = 9
    URI_PATH = 11
    CONTENT_FORMAT = 12
    MAX_AGE = 14
    URI_QUERY = 15
    HOP_LIMIT = 16
    ACCEPT = 17
    Q_BLOCK1 = 19
    LOCATION_QUERY = 20
    EDHOC = 21
    BLOCK2 = 23
    BLOCK1 = 27
    SIZE2 = 28
    Q_BLOCK2 = 31
    PROXY_URI = 35
    PROXY_SCHEME = 39
    SIZE1 = 60
    ECHO = 252
    NO_RESPONSE = 258
    REQUEST_TAG = 292

    @property
    def critical(self) -> bool:
        return bool(self.value & 1)


class ContentFormat(enum.IntEnum):
    """Content-Format numbers from the IANA registry (the common ones)."""

    TEXT_PLAIN = 0
    LINK_FORMAT = 40
    XML = 41
    OCTET_STREAM = 42
    EXI = 47
    JSON = 50
    JSON_PATCH = 51
    MERGE_PATCH = 52
    CBOR = 60
    CWT = 61
    SENML_JSON = 110
    SENSML_JSON = 111
    SENML_CBOR = 112
    SENSML_CBOR = 113


class NackReason(enum.IntEnum):
    """Why libcoap gave up on a message (``coap_nack_reason_t``)."""

    TOO_MANY_RETRIES = 0
    NOT_DELIVERABLE = 1
    RST = 2
    TLS_FAILED = 3
    ICMP_ISSUE = 4


class Event(enum.IntEnum):
    """Session events libcoap reports (``coap_event_t``)."""

    DTLS_CLOSED = 0x0000
    DTLS_CONNECTED = 0x01DE
    DTLS_RENEGOTIATE = 0x01DF
    DTLS_ERROR = 0x0200
    TCP_CONNECTED = 0x1001
    TCP_CLOSED = 0x1002
    TCP_FAILED = 0x1003
    SESSION_CONNECTED = 0x2001
    SESSION_CLOSED = 0x2002
    SESSION_FAILED = 0x2003
    PARTIAL_BLOCK = 0x3001
    XMIT_BLOCK_FAIL = 0x3002
    SERVER_SESSION_NEW = 0x4001
    SERVER_SESSION_DEL = 0x4002


class Proto(enum.IntEnum):
    """Transport of a session (``coap_proto_t``)."""

    NONE = 0
    UDP = 1
    DTLS = 2
    TCP = 3
    TLS = 4


class LogLevel(enum.IntEnum):
    """libcoap log levels (syslog's)."""

    EMERG = 0
    ALERT = 1
    CRIT = 2
    ERR = 3
    WARNING = 4
    NOTICE = 5
    INFO = 6
    DEBUG = 7
    CIPHERS = 9
