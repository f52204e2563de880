"""A server on the package's server API, the fuzzer's second target.

Run as a child process: ``python -I fuzz/api_server.py --certs DIR
[--listen URI]...``; prints ``listening on URI`` per endpoint (like
``libcoap-py serve``), serves until SIGTERM. Its handlers read every field of
every request and answer bodies across block boundaries:

- ``probe`` (POST): ``<peer_cn or ->|<request payload>``: the liveness probe.
- ``echo`` (every method): the request body back, with its Content-Format.
- ``obs`` (observable; GET, FETCH; POST/PUT notify): ``obs N`` padded to the
  size in ``s=SIZE`` of the query.
- anything else (every method): ``size/N`` answers N bytes; other paths a
  summary of the request's fields, followed by the request body.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import libcoap_py as coap

METHODS = ("GET", "POST", "PUT", "DELETE", "FETCH", "PATCH", "IPATCH")
#: A body larger than this is not rendered (a fuzzed size/N could ask for gigabytes).
MAX_BODY = 65536


def read_everything(request: Any) -> bytes:
    """Touch every field the API offers, as a handler might; a short summary of them."""
    fields: list[object] = [
        request.method,
        int(request.code),
        int(request.type),
        request.mid,
        request.token.hex(),
        request.path,
        request.query,
        request.peer,
        request.proto,
        request.peer_cn,
        request.psk_identity,
        request.content_format,
        request.accept,
        request.uri_path,
        request.uri_query,
        request.location_path,
        request.location_query,
        request.etag,
        request.max_age,
        request.observe,
        len(request.payload),
    ]
    try:
        fields.append(len(request.text))
    except UnicodeDecodeError:
        fields.append("not utf-8")
    for number, value in request.options:
        fields.append((number, request.option(number) is not None, len(value)))
        request.option_values(number)
    fields.append(len(request.typed_options))
    fields.append(request.unknown_critical_options())
    repr(request)
    return repr(fields).encode()


def pattern(size: int) -> bytes:
    """``size`` bytes whose every 8 bytes name their offset."""
    size = max(0, min(size, MAX_BODY))
    return b"".join(b"%07d|" % i for i in range(0, size, 8))[:size]


def query_size(request: Any) -> int | None:
    for item in request.query:
        if item.startswith("s="):
            try:
                return int(item[2:])
            except ValueError:
                return None
    return None


def serve(certs: Path | None, listen: list[str]) -> None:
    with coap.Context() as ctx:
        pki = None
        if certs is not None:
            pki = coap.PKI(
                str(certs / "server.crt"), str(certs / "server.key"), str(certs / "ca.crt")
            )
        uris = []
        for uri in listen:
            dtls = pki if uri.startswith("coaps:") else None
            uris.append(ctx.add_endpoint(uri, dtls=dtls).uri)

        @ctx.resource("probe", methods=("POST",))
        def probe(request: Any, response: Any) -> None:
            read_everything(request)
            response.payload = (request.peer_cn or "-").encode() + b"|" + request.payload

        @ctx.resource("echo", methods=METHODS)
        def echo(request: Any, response: Any) -> None:
            read_everything(request)
            response.payload = request.payload
            response.content_format = request.content_format

        counter = {"n": 0}
        obs = ctx.add_resource("obs")
        obs.observable = True

        @obs.handler(("GET", "FETCH"))
        def obs_get(request: Any, response: Any) -> None:
            read_everything(request)
            body = b"obs %d " % counter["n"]
            size = query_size(request)
            if size is not None:
                body = (body + pattern(size))[: max(0, min(size, MAX_BODY))]
            response.payload = body

        @obs.handler(("POST", "PUT"))
        def obs_change(request: Any, response: Any) -> None:
            read_everything(request)
            counter["n"] += 1
            obs.notify()

        @ctx.unknown_resource(methods=METHODS)
        def anything(request: Any, response: Any) -> None:
            summary = read_everything(request)
            segments = request.uri_path
            if len(segments) == 2 and segments[0] == "size" and segments[1].isdigit():
                response.payload = pattern(int(segments[1]))
            else:
                response.payload = summary + b"\n" + request.payload

        for uri in uris:
            print(f"listening on {uri}", flush=True)
        ctx.run(handle_signals=True)
    print("stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--certs", type=Path, help="server.crt, server.key, ca.crt")
    parser.add_argument("--listen", action="append", required=True, metavar="URI")
    args = parser.parse_args(argv)
    serve(args.certs, args.listen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
