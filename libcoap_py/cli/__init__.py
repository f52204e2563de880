"""The ``libcoap-py`` command: ``libcoap-py COMMAND [options]``.

Each command lives in its own module here, named in :data:`COMMAND_MODULES`.
A command module has ``register(commands)``, which adds its parser to the
subparsers ``commands`` and sets ``run``: a function taking the parsed
arguments and returning the exit status. Adding a command is adding a module
and its name to the list.

A module may also have ``direct_parser(argv)``, returning a parser for a
command line without a command word (``libcoap-py coap://host/path -m put``,
coap-client style), or None when the command line is not its kind.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ._common import CliError

__all__ = ["COMMAND_MODULES", "CliError", "build_parser", "main"]

#: Modules of this package that each register one command (or a group of them).
COMMAND_MODULES: list[str] = ["client", "cert", "serve", "inbox", "outbox", "demo"]

PROG = "libcoap-py"


def build_parser() -> argparse.ArgumentParser:
    """The parser with every command in :data:`COMMAND_MODULES` registered."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} [--version] COMMAND [options]\n"
        f"       {PROG} [-m METHOD] URI [coap-client flags]",
        description="libcoap-py: CoAP with libcoap from Python: a coap-client style "
        "client, and a local data service for devices that POST over coaps:// with "
        "certificates or PSK.",
        epilog=f"'{PROG} get --help' lists the client's flags.",
    )
    parser.add_argument("--version", action="store_true", help="show versions and exit")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(commands)
    return parser


def _direct_parser(argv: Sequence[str]) -> argparse.ArgumentParser | None:
    """The parser of a command module that claims a command line without a command word."""
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        claim = getattr(module, "direct_parser", None)
        parser = claim(argv) if claim is not None else None
        if parser is not None:
            return parser  # type: ignore[no-any-return]
    return None


def _versions() -> str:
    import libcoap_py as coap

    return (
        f"libcoap-py {coap.__version__}, libcoap {coap.libcoap_version()}, TLS {coap.tls_library()}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    words = sys.argv[1:] if argv is None else list(argv)
    parser = _direct_parser(words) or build_parser()
    args = parser.parse_args(words)
    if getattr(args, "version", False):
        print(_versions())
        return 0
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        status = run(args)
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return int(status)
