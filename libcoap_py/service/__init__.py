"""A local stand-in for a device data service, on the binding's server API.

:class:`Store` keeps each device's inbox and outbox in an SQLite file;
:class:`DataService` serves devices over ``coaps://`` (``libcoap-py serve``),
writing through a storage process (``writer``).
"""

from __future__ import annotations

from .server import DEFAULT_LISTEN, DataService, device_of, etag_of
from .store import (
    OUTBOX_FORMATS,
    OUTBOX_STATES,
    SCHEMA_VERSION,
    InboxMessage,
    OutboxMessage,
    Store,
)

__all__ = [
    "DEFAULT_LISTEN",
    "OUTBOX_FORMATS",
    "OUTBOX_STATES",
    "SCHEMA_VERSION",
    "DataService",
    "InboxMessage",
    "OutboxMessage",
    "Store",
    "device_of",
    "etag_of",
]
