"""``libcoap-py cert init DIR``: a demo PKI like the one the data service hands out."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import CliError

__all__ = ["register"]

#: What each file of ``certs.init_dir`` is, for the listing.
ROLES = {
    "ca": "root CA certificate (the service's CA file)",
    "ca_key": "root CA private key",
    "server_cert": "server certificate (localhost, 127.0.0.1, ::1)",
    "server_key": "server private key",
    "cert": "device certificate followed by the CA (the sample's cert.crt)",
    "key": "device private key (the sample's key.pem)",
}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cert = commands.add_parser("cert", help="make certificates for the service and a device")
    actions = cert.add_subparsers(title="actions", metavar="ACTION", dest="cert_action")
    init = actions.add_parser(
        "init",
        help="make a root CA, a server certificate and a device certificate in DIR",
        description="Make a root CA (ca.crt, ca.key), a server certificate for localhost "
        "(server.crt, server.key) and a device certificate whose common name is the "
        "device id (cert.crt = device certificate + CA, key.pem), as the C DTLS sample "
        "expects them. For tests and demos, not for production.",
    )
    init.add_argument("dir", type=Path, metavar="DIR", help="folder for the files (made if needed)")
    init.add_argument(
        "--device-id",
        default="device-1",
        metavar="ID",
        help="the device certificate's common name: the device id (default: %(default)s)",
    )
    init.add_argument("--force", action="store_true", help="replace existing files and keys")
    init.set_defaults(run=run_init)

    def no_action(args: argparse.Namespace) -> int:
        cert.print_help()
        return 2

    cert.set_defaults(run=no_action)


def run_init(args: argparse.Namespace) -> int:
    try:
        from .. import certs
    except ImportError as exc:
        raise CliError(str(exc)) from None
    device_id: str = args.device_id
    if not device_id or len(device_id) > 64:
        raise CliError("--device-id must be 1 to 64 characters (a certificate common name)")
    try:
        files = certs.init_dir(args.dir, device_id=device_id, overwrite=args.force)
    except FileExistsError as exc:
        if exc.filename is not None:  # from the file system, e.g. DIR is a file
            raise CliError(f"cannot make certificates in {args.dir}: {exc}") from None
        first = str(exc).split(";")[0]
        raise CliError(
            f"{first}; not overwriting existing certificates and keys (--force replaces them)"
        ) from None
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot make certificates in {args.dir}: {exc}") from None
    print(f"Made certificates in {args.dir} for device {device_id!r}:")
    width = max(len(str(path)) for path in files.values())
    for role, path in files.items():
        print(f"  {str(path).ljust(width)}  {ROLES.get(role, role)}")
    return 0
