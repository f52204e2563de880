"""``libcoap-py outbox add|list``: downstream messages waiting for devices."""

from __future__ import annotations

import argparse

from ..service.store import OUTBOX_FORMATS
from ._common import (
    CliError,
    add_db_argument,
    decode_message,
    format_table,
    open_store,
    show_payload,
)

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    outbox = commands.add_parser("outbox", help="downstream messages for devices")
    actions = outbox.add_subparsers(title="actions", metavar="ACTION", dest="outbox_action")

    add = actions.add_parser(
        "add",
        help="queue a downstream message for a device",
        description="Queue MESSAGE (the words joined with spaces) for a device. The service "
        "returns it as the payload of its 2.04 response to the device's next POST or PUT "
        "(with its id as ETag), and marks it sent (or delivered, once acknowledged, for "
        "devices served with --confirm-downstream).",
    )
    add_db_argument(add)
    add.add_argument("--device", required=True, metavar="ID", help="the device id (its CN)")
    add.add_argument(
        "--format",
        choices=OUTBOX_FORMATS,
        default="text",
        help="how MESSAGE is written (default: %(default)s)",
    )
    add.add_argument("message", nargs="+", metavar="MESSAGE", help="the message")
    add.set_defaults(run=run_add)

    listing = actions.add_parser(
        "list",
        help="list downstream messages and their states",
        description="States: pending (waiting for the device), in_flight (taken for an "
        "answer not yet handed to the socket, or awaiting the device's ACK), sent (handed "
        "to the socket in a piggybacked answer), delivered (acknowledged by the device). "
        "ATTEMPTS counts the answers that carried it.",
    )
    add_db_argument(listing)
    listing.add_argument("--device", metavar="ID", help="only this device's messages")
    listing.add_argument("--pending", action="store_true", help="only messages not delivered yet")
    listing.set_defaults(run=run_list)

    def no_action(args: argparse.Namespace) -> int:
        outbox.print_help()
        return 2

    outbox.set_defaults(run=no_action)


def run_add(args: argparse.Namespace) -> int:
    device: str = args.device.strip()
    if not device:
        raise CliError("--device must not be empty")
    payload = decode_message(args.message, args.format)
    with open_store(args.db, create=True) as store:
        seen = device in store.devices()
        message_id = store.add_outbox(device, payload, args.format)
    print(f"Queued message {message_id} for {device} ({len(payload)} bytes)")
    if not seen:
        print(f"Note: device {device!r} has not been seen yet; the message waits for it.")
    return 0


def run_list(args: argparse.Namespace) -> int:
    with open_store(args.db, create=False) as store:
        messages = store.list_outbox(args.device)
    if args.pending:
        messages = [m for m in messages if m.state == "pending"]
    if not messages:
        print("The outbox is empty." if not args.pending else "No pending messages.")
        return 0
    rows = [
        [
            str(m.id),
            m.created_at,
            m.device,
            m.state,
            str(m.attempts),
            m.sent_at or "-",
            m.format,
            show_payload(m.payload, m.format),
        ]
        for m in messages
    ]
    print(
        format_table(
            [
                "ID",
                "CREATED (UTC)",
                "DEVICE",
                "STATE",
                "ATTEMPTS",
                "SENT (UTC)",
                "FORMAT",
                "PAYLOAD",
            ],
            rows,
        )
    )
    return 0
