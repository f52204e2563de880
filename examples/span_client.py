#!/usr/bin/env python3
"""The DTLS sample's job in a dozen lines: POST a payload over coaps:// with a
client certificate, print the downstream message. Same flags as dtls_sample.py."""

import argparse
import sys

import libcoap_py as coap

p = argparse.ArgumentParser(description=__doc__)
for name, default in [("host", "data.lab5e.com"), ("port", "5684"), ("path", "path-for-data")]:
    p.add_argument(f"--{name}", default=default)
for name, default in [("cert", "cert.crt"), ("key", "key.pem"), ("ca", "cert.crt")]:
    p.add_argument(f"--{name}", default=default)
p.add_argument("--payload", default="this is the payload")
a = p.parse_args()

# The sample's flags are PKI's defaults: verify the peer's certificate against the
# CA, validate the chain to depth 2, no expired certificates. The server's
# certificate must also be for --host.
pki = coap.PKI(a.cert, a.key, a.ca)
with coap.Context() as ctx:
    session = ctx.client_session(f"coaps://{a.host}:{a.port}", dtls=pki)
    try:
        r = session.request("POST", a.path, payload=a.payload.encode(), timeout=30)
    except coap.NackError as exc:  # RequestTimeout, DTLSError, ResetError
        sys.exit(f"Failed: {type(exc).__name__}: {exc}")
print(f"Response {r.code.dotted} {r.code.name.replace('_', ' ').title()}")
print(f"Downstream message: {r.payload.decode('utf-8', 'replace')}")
sys.exit(0 if r.code.class_ == 2 else 1)
