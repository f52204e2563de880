"""What the command modules share: the error type, the database option, tables, payloads."""

from __future__ import annotations

import argparse
import base64
import binascii
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..service.store import Store

__all__ = [
    "DB_ENV",
    "DEFAULT_DB",
    "CliError",
    "add_db_argument",
    "decode_message",
    "default_db",
    "format_table",
    "open_store",
    "show_payload",
]

#: The environment variable that names the database when ``--db`` is not given.
DB_ENV = "LIBCOAP_PY_DB"
#: The database in the current folder, when neither ``--db`` nor ``$LIBCOAP_PY_DB`` say.
DEFAULT_DB = "libcoap-py.db"


class CliError(Exception):
    """A failure to report in one line, without a traceback; ``status`` is the exit code."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def default_db() -> Path:
    """``$LIBCOAP_PY_DB`` if set, else ``./libcoap-py.db``."""
    return Path(os.environ.get(DB_ENV) or DEFAULT_DB)


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"SQLite database (default: ${DB_ENV} or ./{DEFAULT_DB})",
    )


def open_store(db: Path | None, *, create: bool) -> Store:
    """Open the database the ``--db`` option names; CliError if that fails."""
    import sqlite3

    from ..service.store import Store

    path = db if db is not None else default_db()
    try:
        return Store(path, create=create)
    except FileNotFoundError:
        raise CliError(
            f"no database at {path} (it is made by 'libcoap-py serve' or 'libcoap-py outbox add';"
            f" pass --db or set ${DB_ENV})"
        ) from None
    except (sqlite3.Error, OSError, ValueError) as exc:
        raise CliError(f"cannot open the database {path}: {exc}") from None


def decode_message(words: Sequence[str], format: str) -> bytes:
    """The message given on the command line as bytes: words joined with spaces.

    ``text`` is UTF-8; ``hex`` may have spaces between bytes; ``base64``
    ignores whitespace. CliError for what does not decode.
    """
    text = " ".join(words)
    if format == "text":
        return text.encode("utf-8", "surrogateescape")
    if format == "hex":
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise CliError(f"not valid hex: {text!r} (two hex digits per byte)") from None
    if format == "base64":
        compact = "".join(text.split())
        try:
            return base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise CliError(f"not valid base64: {text!r}") from None
    raise CliError(f"unknown format {format!r}")


def show_payload(payload: bytes, format: str) -> str:
    """Payload as a table cell: ``text`` decoded (escapes for what is not printable),
    ``hex`` as hex digits, ``base64`` as base64."""
    if format == "text":
        text = payload.decode("utf-8", "backslashreplace")
        return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if format == "base64":
        return base64.b64encode(payload).decode("ascii")
    return payload.hex()


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in (headers, *rows):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)
