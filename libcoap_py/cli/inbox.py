"""``libcoap-py inbox list``: what devices sent to the data service."""

from __future__ import annotations

import argparse

from ._common import add_db_argument, format_table, open_store, show_payload

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    inbox = commands.add_parser("inbox", help="messages devices sent to the service")
    actions = inbox.add_subparsers(title="actions", metavar="ACTION", dest="inbox_action")
    listing = actions.add_parser(
        "list", help="list the inbox, oldest first (payloads in hex unless --decode)"
    )
    add_db_argument(listing)
    listing.add_argument("--device", metavar="ID", help="only this device's messages")
    listing.add_argument(
        "--decode", action="store_true", help="show payloads as text (UTF-8) instead of hex"
    )
    listing.set_defaults(run=run_list)

    def no_action(args: argparse.Namespace) -> int:
        inbox.print_help()
        return 2

    inbox.set_defaults(run=no_action)


def run_list(args: argparse.Namespace) -> int:
    with open_store(args.db, create=False) as store:
        messages = store.list_inbox(args.device)
        known = args.device is None or args.device in store.devices()
    if not messages:
        if known:
            print("The inbox is empty.")
        else:
            print(f"No messages from device {args.device!r} (a device the service has not seen).")
        return 0
    rows = [
        [
            str(m.id),
            m.received_at,
            m.device,
            "/" + m.path,
            "-" if m.content_format is None else str(m.content_format),
            show_payload(m.payload, "text" if args.decode else "hex"),
        ]
        for m in messages
    ]
    print(format_table(["ID", "RECEIVED (UTC)", "DEVICE", "PATH", "CF", "PAYLOAD"], rows))
    return 0
