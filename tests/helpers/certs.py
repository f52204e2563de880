"""The test PKIs: PEM files made with ``libcoap_py.certs`` (needs ``cryptography``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CertFiles:
    """PEM files for the tests.

    ``ca``/``server_cert``/``server_key`` are what the server uses;
    ``cert`` (device + CA) and ``key`` are the device files of the C sample.
    ``other_*`` belong to an unrelated CA the server does not trust.
    """

    directory: Path
    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    cert: Path
    key: Path
    other_ca: Path
    other_cert: Path
    other_key: Path


@dataclass(frozen=True)
class ChainFiles:
    """root -> intermediate -> leaves. ``cas`` holds intermediate + root."""

    root: Path
    cas: Path
    server_chain: Path
    server_key: Path
    device_chain: Path
    device_key: Path


def make_cert_files(directory: Path) -> CertFiles:
    """A test PKI from ``certs.init_dir`` in ``directory``, plus an unrelated CA and
    device leaf."""
    from libcoap_py import certs as certmod

    files = certmod.init_dir(directory)
    other_ca, other_ca_key = certmod.make_ca("unrelated test CA")
    other_leaf, other_leaf_key = certmod.make_leaf(other_ca, other_ca_key, "intruder", server=False)
    return CertFiles(
        directory=directory,
        ca=files["ca"],
        ca_key=files["ca_key"],
        server_cert=files["server_cert"],
        server_key=files["server_key"],
        cert=files["cert"],
        key=files["key"],
        other_ca=certmod.write_pem(directory / "other-ca.crt", other_ca),
        other_cert=certmod.write_pem(directory / "other-cert.crt", other_leaf, other_ca),
        other_key=certmod.write_pem(directory / "other-key.pem", other_leaf_key),
    )


def make_chain_files(directory: Path) -> ChainFiles:
    """A two-level PKI in ``directory``: server and device leaves are issued by an
    intermediate CA."""
    from libcoap_py import certs as certmod

    root, root_key = certmod.make_ca("chain test root")
    inter, inter_key = certmod.make_intermediate(root, root_key, "chain test intermediate")
    server, server_key = certmod.make_leaf(inter, inter_key, "localhost", server=True)
    device, device_key = certmod.make_leaf(inter, inter_key, "chain-device", server=False)
    return ChainFiles(
        root=certmod.write_pem(directory / "root.crt", root),
        cas=certmod.write_pem(directory / "cas.crt", inter, root),
        server_chain=certmod.write_pem(directory / "server-chain.crt", server, inter),
        server_key=certmod.write_pem(directory / "server.key", server_key),
        device_chain=certmod.write_pem(directory / "device-chain.crt", device, inter),
        device_key=certmod.write_pem(directory / "device.key", device_key),
    )
