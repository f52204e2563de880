"""``libcoap-py get|post|put|delete|fetch|patch|ipatch URI`` and ``libcoap-py URI -m METHOD``:
a CoAP client with libcoap's ``coap-client`` flags."""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from ._coapargs import (
    block_size,
    code_text,
    content_format,
    describe_options,
    describe_response,
    hexdump,
    is_text,
    option_argument,
    percent_decode,
    token_argument,
)
from ._common import CliError

if TYPE_CHECKING:
    from ..client.session import Session
    from ..context import Context
    from ..dtls import PKI, PSK
    from ..pdu import Response

__all__ = ["METHODS", "Progress", "build_client_parser", "direct_parser", "register", "run"]

PROG = "libcoap-py"
METHODS = ("get", "post", "put", "delete", "fetch", "patch", "ipatch")

#: Exit statuses besides 0 (2.xx) and 2 (usage).
EXIT_LOCAL = 1  # could not start: unreadable file, unsupported feature
EXIT_NO_RESPONSE = 3  # timeout, NACK (unreachable, RST), DTLS failure, unknown host
EXIT_CLIENT_ERROR = 4  # the server answered 4.xx
EXIT_SERVER_ERROR = 5  # the server answered 5.xx

#: libcoap log level the client runs with unless -v says otherwise (coap-client's).
DEFAULT_VERBOSITY = 3
#: From this -v level on, the response's code and options go to stderr.
SHOW_RESPONSE_AT = 4
#: coap-client's default for -B.
DEFAULT_WAIT_S = 90.0

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_TOP_LEVEL_FLAGS = {"-h", "--help", "--version"}

DESCRIPTION = """\
Send one CoAP request to URI and write the response payload to standard output,
with libcoap (retransmission, block-wise transfer, observe, DTLS) doing the work.
The flags are those of libcoap's coap-client."""

EPILOG = """\
URI
  coap://host[:port]/path?query, coaps:// (DTLS), coap+tcp://, coaps+tcp:// (TLS).
  host is a name, an IPv4 address or [IPv6]; default ports 5683 and 5684.
  coaps:// needs credentials: -u/-k (PSK) or -c (certificate).

content formats for -t and -A
  a number, or: text/plain (plain) 0, application/link-format (link) 40,
  application/xml (xml) 41, application/octet-stream (binary) 42,
  application/exi (exi) 47, application/json (json) 50, application/cbor (cbor) 60,
  application/senml+json 110, application/senml+cbor 112 (an unambiguous prefix will do)

output
  A 2.xx response's payload goes to standard output (or -o file) as it came.
  On a terminal, text is shown as text and binary payloads as a hex dump.
  Anything else is a one-line reason on standard error, e.g.
  "libcoap-py: 4.04 Not Found". -v 4 also shows the response code and options.
  While a request runs, standard error shows its progress when it is a terminal:
  a bar of bytes done (of the total when the peer says it), else a spinner.

exit status
  0 a 2.xx response (with -s: the last one was 2.xx)
  1 the request could not be made: unreadable file, unsupported feature
  2 wrong flags or URI
  3 no response: timeout (-B), unreachable, RST, DTLS handshake failure
  4 the server answered 4.xx
  5 the server answered 5.xx

not available from coap-client
  -G -H -K -l -L -M -P -U -X -J -S, and -h match_hint_file (-h is help here).

examples
  libcoap-py get coap://[::1]/.well-known/core
  libcoap-py coap://127.0.0.1/hello -m put -e 'hello world' -t text/plain
  libcoap-py put coap://device/firmware -f image.bin -b 1024
  libcoap-py get coap://device/time -s 60 -w
  libcoap-py post coaps://host/data -c cert.crt -j key.pem -C ca.crt -e hello
  libcoap-py get coaps://host/secret -u device-1 -k secret
  libcoap-py get coap://host/res -O 65000,0x00ff -A json -T 0xcafe"""


# -- the parsers --------------------------------------------------------------------------


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=26)


def _add_client_arguments(parser: argparse.ArgumentParser, method: str | None) -> None:
    """coap-client's flags, grouped as its help groups them."""
    parser.add_argument("uri", metavar="URI", help="the resource, e.g. coap://[::1]/time")
    general = parser.add_argument_group("general options")
    if method is None:
        general.add_argument(
            "-m",
            dest="method",
            metavar="method",
            type=str.lower,
            choices=METHODS,
            default="get",
            help="request method: get, post, put, delete, fetch, patch or ipatch (default: get)",
        )
    else:
        parser.set_defaults(method=method)
    payload = general.add_mutually_exclusive_group()
    payload.add_argument(
        "-e",
        dest="text",
        metavar="text",
        help="include text as the payload; %%XX escapes are decoded (e.g. %%00 for a NUL)",
    )
    payload.add_argument(
        "-f",
        dest="file",
        metavar="file",
        help="send the contents of file as the payload ('-' reads standard input)",
    )
    general.add_argument(
        "-o",
        dest="output",
        metavar="file",
        help="write the response payload to file ('-': standard output, the default)",
    )
    general.add_argument(
        "-w", dest="newline", action="store_true", help="append a newline to each payload written"
    )
    general.add_argument(
        "-s",
        dest="observe",
        metavar="seconds",
        type=_positive_seconds,
        help="observe the resource (RFC 7641) for this long: write the response, then "
        "every notification; deregister at the end (GET only)",
    )
    general.add_argument(
        "-b",
        dest="block",
        metavar="[num,]size",
        help="block size for block-wise transfers (RFC 7959): 16, 32, 64, 128, 256, 512 "
        "or 1024; num, the first block, must be 0",
    )
    general.add_argument(
        "-t",
        dest="content_format",
        metavar="type",
        help="Content-Format of the payload: a number or a name (see below)",
    )
    general.add_argument(
        "-A",
        dest="accept",
        metavar="type",
        help="Accept: the content format wanted in the response (as for -t)",
    )
    general.add_argument(
        "-O",
        dest="options",
        metavar="num,text",
        action="append",
        default=[],
        help="add option num (a number, or a name like uri-query) with text as its value; "
        "num,0xHEX gives the value as hex bytes (as with coap-client), uint options also "
        "take a decimal number (-O 14,60: Max-Age 60); repeatable, sent in the order given",
    )
    general.add_argument(
        "-T",
        dest="token",
        metavar="token",
        help="the token, as text (coap-client's form) or 0xHEX, 1 to 8 bytes; as with "
        "coap-client, libcoap 4.3 counts up from it, so the request carries token+1, "
        "and libcoap 4.2 sends it as given",
    )
    general.add_argument(
        "-N", dest="non", action="store_true", help="send a NON-confirmable request (default: CON)"
    )
    general.add_argument(
        "-B",
        dest="wait",
        metavar="seconds",
        type=_positive_seconds,
        default=DEFAULT_WAIT_S,
        help="give up when no response has come after this many seconds (default: "
        f"{DEFAULT_WAIT_S:g}); with -s, the observation lasts -s seconds instead",
    )
    general.add_argument(
        "-v",
        dest="verbosity",
        metavar="num",
        type=_verbosity,
        default=DEFAULT_VERBOSITY,
        help=f"libcoap's log level 0..9 (default {DEFAULT_VERBOSITY}: errors); from "
        f"{SHOW_RESPONSE_AT} (warnings) on, also the response code and options; 7 logs "
        "every PDU; 8 and 9 add DTLS detail",
    )
    general.add_argument("-a", dest="local_addr", metavar="addr", help="local address to use")
    general.add_argument(
        "-p", dest="local_port", metavar="port", type=_port, help="local port to use"
    )
    general.add_argument(
        "-r",
        dest="reliable",
        action="store_true",
        help="use CoAP over TCP: coap:// becomes coap+tcp://, coaps:// coaps+tcp:// (TLS)",
    )
    psk = parser.add_argument_group("PSK options (coaps://)")
    psk.add_argument("-u", dest="identity", metavar="identity", help="PSK identity to send")
    psk.add_argument("-k", dest="psk_key", metavar="key", help="pre-shared key for the identity")
    pki = parser.add_argument_group("PKI options (coaps://, PEM files)")
    pki.add_argument(
        "-c",
        dest="cert",
        metavar="certfile",
        help="the client certificate; the file may also hold its private key "
        "(without -c, -C or -R alone check the server and show it no certificate)",
    )
    pki.add_argument(
        "-j",
        dest="key",
        metavar="keyfile",
        help="the private key of the certificate in -c, if not in that file",
    )
    pki.add_argument(
        "-C",
        dest="ca",
        metavar="cafile",
        help="the CA that signed the server's certificate (ideally the client's too); "
        "the server's certificate is verified against it",
    )
    pki.add_argument(
        "-R",
        dest="root_cas",
        metavar="trust_casfile",
        help="trusted root CAs (a PEM file or a folder of them) to verify the server's "
        "certificate with, instead of -C's common CA",
    )
    pki.add_argument(
        "-n",
        dest="no_verify",
        action="store_true",
        help="do not verify the server's certificate (with -C or -R), nor its name",
    )
    pki.add_argument(
        "--no-check-hostname",
        dest="no_check_hostname",
        action="store_true",
        help="verify the server's certificate but not that it is for the URI's host "
        "(by default it must name that host, or --server-name)",
    )
    pki.add_argument(
        "--server-name",
        dest="server_name",
        metavar="name",
        help="the name the server's certificate must carry, instead of the URI's host "
        "(for a URI that holds an address); also sent as SNI",
    )
    parser.set_defaults(run=run)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < 1e7:
        raise argparse.ArgumentTypeError(f"seconds must be positive: {text!r}")
    return value


def _verbosity(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 9:
        raise argparse.ArgumentTypeError(f"the log level is 0..9, not {text!r}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}")
    return int(text)


def build_client_parser(prog: str = PROG, method: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``libcoap-py URI [flags]`` (``method=None``: with ``-m``)."""
    usage = f"{prog} [-m method] URI [flags]" if method is None else f"{prog} URI [flags]"
    parser = argparse.ArgumentParser(
        prog=prog,
        usage=usage,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_formatter,
    )
    _add_client_arguments(parser, method)
    return parser


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """One command per method: ``libcoap-py get URI``, ``libcoap-py put URI -e ...``."""
    for name in METHODS:
        extra: dict[str, Any] = {}
        if name == METHODS[0]:
            extra["help"] = (
                "get|post|put|delete|fetch|patch|ipatch URI: send a CoAP request "
                "(coap-client's flags; also 'libcoap-py URI -m METHOD')"
            )
        parser = commands.add_parser(
            name,
            usage=f"{PROG} {name} URI [flags]",
            description=DESCRIPTION.replace("one CoAP request", f"a {name.upper()} request"),
            epilog=EPILOG,
            formatter_class=_formatter,
            **extra,
        )
        _add_client_arguments(parser, name)


def direct_parser(argv: Sequence[str]) -> argparse.ArgumentParser | None:
    """The client parser when ``argv`` is coap-client style (a URI, no command); else None."""
    if not argv:
        return None
    first = argv[0]
    if _URI.match(first) or (
        first.startswith("-")
        and first not in _TOP_LEVEL_FLAGS
        and any(_URI.match(arg) for arg in argv)
    ):
        return build_client_parser()
    return None


# -- what the flags ask for ---------------------------------------------------------------


@dataclass
class Plan:
    """The request the flags describe, checked before anything is sent."""

    method: str
    uri: str
    payload: bytes = b""
    options: list[tuple[int, bytes]] = field(default_factory=list)
    content_format: int | None = None
    accept: int | None = None
    block_size: int | None = None
    token: bytes | None = None
    confirmable: bool = True
    wait: float = DEFAULT_WAIT_S
    observe: float | None = None
    local: str | None = None
    dtls: PKI | PSK | None = None
    server_name: str | None = None
    verbosity: int = DEFAULT_VERBOSITY
    output: str | None = None
    newline: bool = False


def make_plan(args: argparse.Namespace) -> Plan:
    """Check and convert the flags (CliError naming the flag for what is wrong)."""

    plan = Plan(method=args.method.upper(), uri=_scheme(args.uri, args.reliable))
    if args.text is not None:
        plan.payload = percent_decode(args.text)
    elif args.file is not None:
        plan.payload = _read_payload(args.file)
    plan.options = [option_argument(o) for o in args.options]
    if args.content_format is not None:
        plan.content_format = content_format(args.content_format, "-t")
    if args.accept is not None:
        plan.accept = content_format(args.accept, "-A")
    if args.block is not None:
        plan.block_size = block_size(args.block)
    if args.token is not None:
        plan.token = token_argument(args.token)
    plan.confirmable = not args.non
    plan.wait = args.wait
    if args.observe is not None:
        if plan.method != "GET":
            raise CliError(f"-s observes with GET, not {plan.method}", 2)
        if plan.payload:
            raise CliError("-s: an observe request (GET) has no payload (-e/-f)", 2)
        plan.observe = args.observe
    plan.local = _local(args.local_addr, args.local_port, plan.uri)
    plan.dtls = _credentials(args, plan.uri)
    if args.server_name is not None:
        from ..dtls import PKI

        if not isinstance(plan.dtls, PKI) or not plan.dtls.verify_peer_cert:
            raise CliError(
                "--server-name is the name checked in the server's certificate: it needs "
                "a coaps URI and -C or -R (and no -n)",
                2,
            )
        if not plan.dtls.check_hostname:
            raise CliError("--server-name and --no-check-hostname contradict each other", 2)
        plan.server_name = args.server_name
    plan.verbosity = args.verbosity
    plan.output = None if args.output in (None, "-") else args.output
    plan.newline = args.newline
    return plan


def _scheme(uri: str, reliable: bool) -> str:
    if not _URI.match(uri):
        raise CliError(f"not a CoAP URI: {uri!r} (expected e.g. coap://host/path)", 2)
    if reliable:
        scheme, sep, rest = uri.partition("://")
        if scheme.lower() in ("coap", "coaps"):
            return f"{scheme}+tcp{sep}{rest}"
    return uri


def _read_payload(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        with open(name, "rb") as source:
            return source.read()
    except OSError as exc:
        raise CliError(f"-f: cannot read {name}: {exc.strerror or exc}") from None


def _local(addr: str | None, port: int | None, uri: str) -> str | None:
    if addr is None and port is None:
        return None
    if addr is None:
        addr = "::" if "[" in uri.partition("://")[2].split("/", 1)[0] else "0.0.0.0"
    host = f"[{addr}]" if ":" in addr and not addr.startswith("[") else addr
    return f"{host}:{port}" if port is not None else host


def _credentials(args: argparse.Namespace, uri: str) -> PKI | PSK | None:
    """coap-client's choice: certificates if -c/-C/-R, else PSK if -u/-k; only for coaps."""
    import libcoap_py as coap

    secure = uri.lower().startswith("coaps")
    pki_flags = args.cert or args.key or args.ca or args.root_cas
    psk_flags = args.identity is not None or args.psk_key is not None
    if not secure:
        if pki_flags or psk_flags:
            _say("warning: -u/-k/-c/-j/-C/-R are for coaps:// and coaps+tcp://; ignored")
        return None
    try:
        if pki_flags:
            if args.key and not args.cert:
                raise CliError("-j keyfile needs -c certfile (the certificate it belongs to)", 2)
            verify = bool(args.ca or args.root_cas) and not args.no_verify
            # Without -c the client shows no certificate and only checks the server's.
            # The server's name is checked whenever its certificate is verified.
            return coap.PKI(
                args.cert or None,
                (args.key or args.cert) or None,
                args.ca,
                verify_peer_cert=verify,
                require_peer_cert=bool(args.ca) and not args.root_cas,
                allow_self_signed=True,
                root_cas=args.root_cas,
                check_hostname=verify and not args.no_check_hostname,
            )
        if psk_flags:
            if args.psk_key is None:
                raise CliError("-u needs -k key (the pre-shared key)", 2)
            identity = (args.identity or "").encode("utf-8", "surrogateescape")
            return coap.PSK(identity, args.psk_key.encode("utf-8", "surrogateescape"))
    except OSError as exc:  # a PEM file that is missing or unreadable
        raise CliError(exc.strerror or str(exc)) from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    raise CliError(
        f"{uri} needs credentials: -u identity -k key (PSK) or -c certfile [-j keyfile] "
        "[-C cafile] (certificate)",
        2,
    )


# -- running it ---------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Send the request the flags describe; write the payload; return the exit status."""
    plan = make_plan(args)
    _setup_logging(plan.verbosity)
    import libcoap_py as coap

    output = Output(plan.output, plan.newline)
    try:
        with coap.Context() as ctx:
            session = _open_session(ctx, plan)
            token = plan.token  # for each request, where libcoap keeps no sequence (4.2)
            if token is not None:
                try:
                    session.set_token_base(token)  # what coap-client's -T does
                    token = None
                except coap.NotSupportedError:
                    pass
            if plan.observe is not None:
                return _observe(session, plan, output, token)
            return _request(session, plan, output, token)
    except coap.NackError as exc:
        hint = ""
        if isinstance(exc, coap.DTLSError) and plan.verbosity < 7:
            hint = " (-v 7 shows libcoap's log)"
        return _fail(f"{exc}{hint}", EXIT_NO_RESPONSE)
    except coap.CoapError as exc:  # NotSupportedError, PayloadTooLargeError, ...
        raise CliError(str(exc)) from None
    finally:
        output.close()


def _open_session(ctx: Context, plan: Plan) -> Session:
    try:
        return ctx.client_session(
            plan.uri, dtls=plan.dtls, local=plan.local, server_name=plan.server_name
        )
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    except OSError as exc:  # unknown host, local address not usable
        raise CliError(str(exc), EXIT_NO_RESPONSE) from None


def _request(session: Session, plan: Plan, output: Output, token: bytes | None = None) -> int:
    label = f"{plan.method} {plan.uri}"
    if plan.payload:
        label += f" ({len(plan.payload)} bytes)"
    with Progress(label, enabled=plan.verbosity <= SHOW_RESPONSE_AT) as progress:
        response = session.request(
            plan.method,
            "",
            plan.payload,
            options=plan.options,
            content_format=plan.content_format,
            accept=plan.accept,
            confirmable=plan.confirmable,
            timeout=plan.wait,
            block_size=plan.block_size,
            token=token,
            progress=progress.update,
        )
    return _handle(response, plan, output)


def _observe(session: Session, plan: Plan, output: Output, token: bytes | None = None) -> int:
    from ..client.session import block_szx
    from ..codes import OptionNumber
    from ..options import encode_option

    options = list(plan.options)
    if plan.content_format is not None:
        options.append(encode_option(OptionNumber.CONTENT_FORMAT, plan.content_format))
    if plan.accept is not None:
        options.append(encode_option(OptionNumber.ACCEPT, plan.accept))
    if plan.block_size is not None:
        options.append(encode_option(OptionNumber.BLOCK2, block_szx(plan.block_size)))
    assert plan.observe is not None
    observation = session.observe(
        "",
        options=options,
        timeout=plan.observe,
        confirmable=plan.confirmable,
        token=token,
    )
    status, count = 0, 0
    try:
        for response in observation:
            count += 1
            status = _handle(response, plan, output)
            if status:
                break
            if count == 1 and response.option(OptionNumber.OBSERVE) is None:
                if plan.verbosity >= SHOW_RESPONSE_AT:
                    _say("the server does not offer observation of this resource")
                break
    finally:
        observation.cancel()
    if count == 0:
        return _fail(f"no response from {session.uri} within {plan.observe:g} s", EXIT_NO_RESPONSE)
    return status


def _handle(response: Response, plan: Plan, output: Output) -> int:
    """Show one response: payload out for 2.xx, one line on stderr for the rest."""
    code = int(response.code)
    if plan.verbosity >= SHOW_RESPONSE_AT:
        lines = [describe_response(response.code, response.type, response.token)]
        lines += ["  " + line for line in describe_options(response.options)]
        if response.payload:
            lines.append(f"  payload: {len(response.payload)} bytes")
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()
    if code >> 5 == 2:
        output.write(response.payload)
        return 0
    reason = code_text(response.code)
    if response.payload:  # a diagnostic message (RFC 7252, 5.5.2), unless just the phrase
        diagnostic = response.payload.decode("utf-8", "replace")
        diagnostic = "".join(c if c.isprintable() else "." for c in diagnostic)
        if len(diagnostic) > 200:
            diagnostic = diagnostic[:200] + "..."
        if diagnostic.lower() != reason.partition(" ")[2].lower():
            reason += f": {diagnostic}"
    return _fail(reason, {4: EXIT_CLIENT_ERROR, 5: EXIT_SERVER_ERROR}.get(code >> 5, EXIT_LOCAL))


def _say(message: str) -> None:
    print(f"{PROG}: {' '.join(message.split())}", file=sys.stderr, flush=True)


def _fail(message: str, status: int) -> int:
    _say(message)
    return status


_log_handler: logging.Handler | None = None


def _setup_logging(verbosity: int) -> None:
    """libcoap's log at level ``verbosity`` to stderr (8 is debug with more DTLS detail)."""
    import libcoap_py as coap

    global _log_handler
    log = logging.getLogger("libcoap")
    if _log_handler is None:  # once per process (main() may run more than once)
        _log_handler = logging.StreamHandler(sys.stderr)
        _log_handler.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
        log.addHandler(_log_handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    if verbosity == 8:
        coap.set_log_level(coap.LogLevel.DEBUG, dtls=coap.LogLevel.CIPHERS)
    else:
        coap.set_log_level(coap.LogLevel(verbosity))


# -- output -------------------------------------------------------------------------------

#: Largest binary payload shown as a hex dump on a terminal.
HEXDUMP_LIMIT = 4096


class Output:
    """Where payloads go: a file (``-o``), else standard output.

    Files and pipes get the bytes as they came. A terminal gets text as text
    (with a final newline) and binary payloads as a hex dump.
    """

    def __init__(self, path: str | None, newline: bool) -> None:
        self.path = path
        self.newline = newline
        self._file: IO[bytes] | None = None

    def write(self, payload: bytes) -> None:
        """One response's payload (an empty one only makes sure the ``-o`` file exists)."""
        if self.path is not None:
            if self._file is None:
                try:
                    self._file = open(self.path, "wb")  # kept open for -s
                except OSError as exc:
                    raise CliError(f"-o: cannot write {self.path}: {exc.strerror or exc}") from None
            if payload:
                self._file.write(payload + (b"\n" if self.newline else b""))
                self._file.flush()
            return
        if not payload:
            return
        try:
            self._write_stdout(payload)
        except BrokenPipeError:
            # The reader went away (``| head``): end quietly, as a SIGPIPE would.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            raise SystemExit(128 + 13) from None

    def _write_stdout(self, payload: bytes) -> None:
        stdout = sys.stdout
        if stdout.isatty():
            if is_text(payload):
                text = payload.decode("utf-8")
                if self.newline or not text.endswith("\n"):
                    text += "\n"
                stdout.write(text)
            elif len(payload) <= HEXDUMP_LIMIT:
                stdout.write(hexdump(payload))
            else:
                _say(
                    f"binary payload of {len(payload)} bytes not shown on a terminal; "
                    "use -o file or a pipe"
                )
            stdout.flush()
            return
        stdout.flush()
        stdout.buffer.write(payload + (b"\n" if self.newline else b""))
        stdout.buffer.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Progress:
    """The progress of a request on stderr while it runs, only on a terminal.

    ``update(done, total)`` is the request's progress callback: with a total (the
    body size, or the Size2 the server announced) a bar of bytes done of it, else
    a byte counter. Until the first block is reported (libcoap 4.3 reassembles
    blocks itself and reports only the end) a spinner with the elapsed time shows
    that the request is still going. It appears after ``delay`` seconds and is
    erased when the request ends.
    """

    FRAMES = "|/-\\"
    BAR = 24

    def __init__(
        self,
        label: str,
        *,
        stream: IO[str] | None = None,
        enabled: bool = True,
        delay: float = 0.5,
        interval: float = 0.1,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and _isatty(self.stream)
        self.delay = delay
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._width = 0
        self._state: tuple[int, int | None] | None = None
        self._columns = _columns(self.stream) if self.enabled else 0

    def update(self, done: int, total: int | None) -> None:
        """Bytes done so far and the total if known (the request's ``progress=``)."""
        self._state = (done, total)

    def __enter__(self) -> Progress:
        if self.enabled:
            self._thread = threading.Thread(target=self._spin, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()

    def line(self, elapsed: float, frame: int = 0) -> str:
        """What is shown after ``elapsed`` seconds (cut to the terminal's width)."""
        state = self._state
        spinner = self.FRAMES[frame % len(self.FRAMES)]
        if state is None:
            status = spinner
        else:
            done, total = state
            if total:
                share = min(1.0, done / total)
                filled = int(share * self.BAR)
                bar = "#" * filled + "." * (self.BAR - filled)
                status = f"[{bar}] {int(share * 100):3d}% {done}/{total} bytes"
            else:
                status = f"{spinner} {done} bytes"
        text = f"{status}  {elapsed:.1f} s  {self.label}"
        return text[: self._columns - 1] if self._columns > 1 else text

    def _spin(self) -> None:
        start = time.monotonic()
        if self._stop.wait(self.delay):
            return
        frame = 0
        while not self._stop.is_set():
            line = self.line(time.monotonic() - start, frame)
            self._width = max(self._width, len(line))
            self.stream.write("\r" + line.ljust(self._width))
            self.stream.flush()
            frame += 1
            self._stop.wait(self.interval)


def _columns(stream: IO[str]) -> int:
    """The width of the terminal behind ``stream`` (0 if unknown)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return 0


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
