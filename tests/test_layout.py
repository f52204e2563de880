"""The declared structures have the layout of the libcoap the module was built against.

cffi takes a fully declared struct's layout from the declarations; a libcoap
release that grows a struct (4.3.5's ``coap_dtls_key_t``) would otherwise
make ``ffi.new()`` of it fail, or worse, write past it.
"""

from __future__ import annotations

import pytest

from libcoap_py import ffi, lib

# Every struct or union type the declarations name in full, per generation.
SHARED = [
    "coap_string_t",
    "coap_str_const_t",
    "coap_binary_t",
    "coap_fixed_point_t",
    "coap_tls_version_t",
    "coap_pki_key_pem_t",
    "coap_pki_key_asn1_t",
    "coap_dtls_key_t",
    "coap_dtls_pki_t",
    "coap_address_t",
    "lcp_bin_t",
    "lcp_pdu_info_t",
    "lcp_pki_t",
    "lcp_serve_info_t",
    "lcp_claim_t",
]


def _is_opaque(name: str) -> bool:
    try:
        ffi.sizeof(name)
    except ffi.error as exc:  # a layout cffi refuses is not opaque: the test says why
        return "don't know the size" in str(exc)
    return False


def _declared_structs() -> list[str]:
    """The struct and union typedefs with a body (opaque handles have none)."""
    typedefs, _structs, _unions = ffi.list_types()
    names = [
        name
        for name in typedefs
        if ffi.typeof(name).kind in ("struct", "union") and not _is_opaque(name)
    ]
    return sorted(set(names))


@pytest.mark.parametrize("name", _declared_structs())
def test_declared_size_matches_the_c_compiler(name: str) -> None:
    c_size = lib.lcp_sizeof(name.encode())
    assert c_size != 0, f"{name} is declared but lcp_sizeof() in glue.c does not list it"
    assert ffi.sizeof(name) == c_size


def test_the_shared_structs_are_all_declared() -> None:
    declared = set(_declared_structs())
    assert set(SHARED) <= declared


def test_a_pki_setup_struct_can_be_made_and_filled() -> None:
    setup = ffi.new("coap_dtls_pki_t *")
    setup.verify_peer_cert = 1
    setup.pki_key.key.pem.public_cert = ffi.NULL
    assert ffi.sizeof(setup[0]) == lib.lcp_sizeof(b"coap_dtls_pki_t")
