"""The project's server under test: GET /bench answers 64 bytes.

    python -I benchmarks/own_server.py PORT

Serves coap://127.0.0.1:PORT until SIGTERM/SIGINT.
"""

from __future__ import annotations

import sys

import libcoap_py as coap

PAYLOAD = b"x" * 64


def main() -> None:
    port = int(sys.argv[1])
    with coap.Context() as ctx:
        ctx.add_endpoint(f"coap://127.0.0.1:{port}")

        @ctx.resource("bench")
        def bench(request: coap.Request, response: coap.ServerResponse) -> None:
            response.payload = PAYLOAD

        ctx.run(handle_signals=True)


if __name__ == "__main__":
    main()
