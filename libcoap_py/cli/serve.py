"""``libcoap-py serve``: the local data service, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ._common import CliError, add_db_argument, default_db, open_store

if TYPE_CHECKING:
    from ..dtls import PKI

__all__ = ["load_psk_keys", "register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the local data service",
        description="Serve devices over coaps://: every POST or PUT is filed in the inbox "
        "of the device (certificate common name or PSK identity), and the answer, 2.04 "
        "Changed once the message is stored, carries the device's oldest pending outbox "
        "message (its outbox id as ETag). Runs until Ctrl-C or SIGTERM.",
    )
    add_db_argument(serve)
    creds = serve.add_argument_group("certificates (clients must have one issued by the CA)")
    creds.add_argument(
        "--certs",
        type=Path,
        metavar="DIR",
        help="folder made by 'libcoap-py cert init': server.crt, server.key, ca.crt",
    )
    creds.add_argument("--cert", type=Path, metavar="FILE", help="server certificate (PEM)")
    creds.add_argument("--key", type=Path, metavar="FILE", help="server private key (PEM)")
    creds.add_argument(
        "--ca", type=Path, metavar="FILE", help="CA that issues device certificates (PEM)"
    )
    psk = serve.add_argument_group("pre-shared keys (devices without certificates)")
    psk.add_argument("--psk-identity", metavar="ID", help="a device's PSK identity")
    psk.add_argument("--psk-key", metavar="KEY", help="the key for --psk-identity")
    psk.add_argument(
        "--psk-keys",
        type=Path,
        metavar="FILE",
        help="identities and keys, one 'IDENTITY KEY' per line ('#' starts a comment)",
    )
    psk.add_argument(
        "--psk-hint", default="libcoap-py", help="identity hint (default: %(default)s)"
    )
    serve.add_argument(
        "--listen",
        action="append",
        metavar="URI",
        help="endpoint, repeatable (default: coaps://127.0.0.1:5684); a plain coap:// "
        "endpoint has no device identity and answers 4.01; port 0 picks a free port",
    )
    serve.add_argument(
        "--confirm-downstream",
        action="append",
        nargs="?",
        const="*",
        metavar="DEVICE",
        help="answer as a separate confirmable response, so a downstream message counts "
        "as delivered only when the device's CoAP stack acknowledges it; for clients that "
        "wait for their response (not the C sample's coap_can_exit loop). Without DEVICE: "
        "every device; repeatable with DEVICE ids",
    )
    serve.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v: a line per request; -vv: libcoap's log too; -vvv: libcoap debug",
    )
    serve.set_defaults(run=run)


def load_psk_keys(path: Path) -> dict[bytes, bytes]:
    """Read ``IDENTITY KEY`` lines; CliError for a line that is not that."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read PSK keys file {path}: {exc.strerror or exc}") from None
    keys: dict[bytes, bytes] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise CliError(f"{path}:{number}: expected 'IDENTITY KEY'")
        keys[parts[0].encode()] = parts[1].strip().encode()
    if not keys:
        raise CliError(f"{path}: no 'IDENTITY KEY' lines")
    return keys


def _setup_logging(verbose: int) -> None:
    import libcoap_py as coap

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    service_log = logging.getLogger("libcoap_py.service")
    service_log.addHandler(handler)
    service_log.setLevel(logging.INFO if verbose >= 1 else logging.WARNING)
    # Handler errors (5.00 answers) are logged there by the binding: always show them.
    server_log = logging.getLogger("libcoap_py.server")
    server_log.addHandler(handler)
    libcoap_log = logging.getLogger("libcoap")
    libcoap_log.addHandler(handler)
    if verbose >= 2:
        libcoap_log.setLevel(logging.DEBUG)
        coap.set_log_level(coap.LogLevel.DEBUG if verbose >= 3 else coap.LogLevel.INFO)
    else:
        libcoap_log.setLevel(logging.WARNING)


def _pki(args: argparse.Namespace) -> PKI | None:
    import libcoap_py as coap

    files: dict[str, Path | None] = {"cert": args.cert, "key": args.key, "ca": args.ca}
    if args.certs is not None:
        defaults = {"cert": "server.crt", "key": "server.key", "ca": "ca.crt"}
        for name, default in defaults.items():
            if files[name] is None:
                files[name] = args.certs / default
    given = [name for name, path in files.items() if path is not None]
    if not given:
        return None
    if len(given) != 3:
        missing = ", ".join(f"--{n}" for n in files if files[n] is None)
        raise CliError(
            f"certificates need --cert, --key and --ca (or --certs DIR); missing {missing}"
        )
    for name, path in files.items():
        assert path is not None
        if not path.is_file():
            raise CliError(f"--{name}: no such file: {path}")
    try:
        return coap.PKI(
            str(files["cert"]),
            str(files["key"]),
            str(files["ca"]),
            verify_peer_cert=True,
            require_peer_cert=True,
        )
    except (OSError, ValueError, coap.CoapError) as exc:
        raise CliError(f"cannot use the certificates: {exc}") from None


def _psk_keys(args: argparse.Namespace) -> dict[bytes, bytes]:
    keys: dict[bytes, bytes] = {}
    if args.psk_keys is not None:
        keys.update(load_psk_keys(args.psk_keys))
    if (args.psk_identity is None) != (args.psk_key is None):
        raise CliError("--psk-identity and --psk-key go together")
    if args.psk_identity is not None:
        if not args.psk_identity or not args.psk_key:
            raise CliError("--psk-identity and --psk-key must not be empty")
        keys[args.psk_identity.encode()] = args.psk_key.encode()
    for identity, key in keys.items():
        if len(identity) > 128 or len(key) > 64:
            raise CliError(f"PSK identity {identity!r}: identities are at most 128 bytes, keys 64")
    return keys


def _confirm(values: list[str] | None) -> bool | frozenset[str]:
    if not values:
        return False
    if "*" in values:
        return True
    devices = frozenset(v.strip() for v in values)
    if "" in devices:
        raise CliError("--confirm-downstream: an empty device id")
    return devices


def run(args: argparse.Namespace) -> int:
    import libcoap_py as coap

    from ..service import DEFAULT_LISTEN, DataService

    pki = _pki(args)
    psk_keys = _psk_keys(args)
    listen = args.listen or list(DEFAULT_LISTEN)
    needs_dtls = any(uri.lower().startswith("coaps:") for uri in listen)
    if needs_dtls and pki is None and not psk_keys:
        raise CliError(
            "coaps:// needs credentials: --certs DIR (see 'libcoap-py cert init'), "
            "--cert/--key/--ca, or --psk-identity/--psk-key"
        )
    _setup_logging(args.verbose)
    db = args.db if args.db is not None else default_db()
    store = open_store(db, create=True)
    try:
        service = DataService(
            store,
            pki=pki,
            psk_keys=psk_keys,
            psk_hint=args.psk_hint.encode(),
            listen=listen,
            confirm_downstream=_confirm(args.confirm_downstream),
        )
        try:
            uris = service.open()
        except (OSError, ValueError, coap.CoapError) as exc:
            raise CliError(f"cannot listen: {exc}") from None
        # A SIGINT or SIGTERM that comes once "listening on" is out, before run() has
        # taken the signals over, stops the service the same way.
        previous = {
            sig: signal.signal(sig, lambda signum, frame: service.stop())
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            auth = []
            if pki is not None:
                auth.append("client certificates")
            if psk_keys:
                auth.append(f"PSK ({len(psk_keys)} identities)")
            print(f"data service: database {db}; devices by {' and '.join(auth) or 'nothing'}")
            mode = service.confirm_downstream
            if mode:
                who = "every device" if mode is True else ", ".join(sorted(mode))
                print(f"confirmed downstream (separate CON responses) for {who}")
            for uri in uris:
                print(f"listening on {uri}", flush=True)
            service.run(handle_signals=True)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            service.close()
    finally:
        store.close()
    print("stopped", flush=True)
    return 0
