"""A local stand-in for a device data service, on the binding's server API.

:class:`Store` keeps each device's inbox and outbox in an SQLite file;
:class:`DataService` serves devices over ``coaps://`` (``libcoap-py serve``).
"""

from __future__ import annotations

from .server import DEFAULT_LISTEN, DataService, device_of
from .store import OUTBOX_FORMATS, InboxMessage, OutboxMessage, Store

__all__ = [
    "DEFAULT_LISTEN",
    "OUTBOX_FORMATS",
    "DataService",
    "InboxMessage",
    "OutboxMessage",
    "Store",
    "device_of",
]
