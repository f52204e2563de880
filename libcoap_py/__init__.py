"""libcoap-py: Python binding of libcoap (CoAP, RFC 7252) with certificate and PSK DTLS.

>>> import libcoap_py as coap
>>> with coap.Context() as ctx:
...     s = ctx.client_session("coap://127.0.0.1")
...     r = s.request("GET", ".well-known/core")
"""

from __future__ import annotations

from ._binding import callbacks as _callbacks  # noqa: F401  (registers the trampolines)
from ._binding import ffi, lib
from .capabilities import Backend, backend
from .client.observe import Observation
from .client.session import Session
from .codes import (
    Code,
    ContentFormat,
    Event,
    LogLevel,
    MessageType,
    NackReason,
    OptionNumber,
    Proto,
)
from .context import Context
from .dtls import PKI, PSK
from .errors import (
    BlockwiseError,
    CoapError,
    DTLSError,
    NackError,
    NotSupportedError,
    PayloadTooLargeError,
    RequestTimeout,
    ResetError,
    WrongThreadError,
)
from .library import (
    dtls_is_supported,
    libcoap_version,
    package_name,
    tcp_is_supported,
    tls_is_supported,
    tls_library,
)
from .linkformat import Link, format_link_format, parse_link_format
from .log import (
    flush_log_summaries,
    get_log_level,
    get_log_rate_limit,
    set_log_level,
    set_log_rate_limit,
)
from .options import (
    CriticalOptionError,
    OptionFormat,
    OptionSpec,
    RawValue,
    decode_option,
    encode_option,
)
from .pdu import PDU, Response
from .server.request import Request, ServerResponse
from .server.serving import Endpoint, RequestHandler, Resource
from .server.session import ServerSession

__version__ = "0.1.0"

lib.coap_startup()

__all__ = [
    "PDU",
    "PKI",
    "PSK",
    "Backend",
    "BlockwiseError",
    "CoapError",
    "Code",
    "ContentFormat",
    "Context",
    "CriticalOptionError",
    "DTLSError",
    "Endpoint",
    "Event",
    "Link",
    "LogLevel",
    "MessageType",
    "NackError",
    "NackReason",
    "NotSupportedError",
    "Observation",
    "OptionFormat",
    "OptionNumber",
    "OptionSpec",
    "PayloadTooLargeError",
    "Proto",
    "RawValue",
    "Request",
    "RequestHandler",
    "RequestTimeout",
    "ResetError",
    "Resource",
    "Response",
    "ServerResponse",
    "ServerSession",
    "Session",
    "WrongThreadError",
    "backend",
    "decode_option",
    "dtls_is_supported",
    "encode_option",
    "ffi",
    "flush_log_summaries",
    "format_link_format",
    "get_log_level",
    "get_log_rate_limit",
    "lib",
    "libcoap_version",
    "package_name",
    "parse_link_format",
    "set_log_level",
    "set_log_rate_limit",
    "tcp_is_supported",
    "tls_is_supported",
    "tls_library",
]
