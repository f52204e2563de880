"""The error when the compiled module cannot load names what to install."""

from __future__ import annotations

import pytest

from libcoap_py._binding.load import load_error

# What the dynamic loader says, as CPython passes it on.
LOADER = "{lib}: cannot open shared object file: No such file or directory"


@pytest.mark.parametrize(
    ("library", "package"),
    [
        ("libcoap-3-openssl.so.3", "libcoap3"),
        ("libcoap-3-gnutls.so.3", "libcoap3"),
        ("libcoap-2-openssl.so.2", "libcoap2"),
        ("libssl.so.1.1", "libssl1.1"),
    ],
)
def test_a_missing_shared_library_names_it_and_its_package(library: str, package: str) -> None:
    error = load_error(ImportError(LOADER.format(lib=library)))
    message = str(error)
    assert f"shared library {library}" in message
    assert f"sudo apt install {package}" in message
    assert "install the package with pip" not in message


def test_an_unknown_library_is_still_named() -> None:
    message = str(load_error(ImportError(LOADER.format(lib="libfoo.so.7"))))
    assert "shared library libfoo.so.7" in message
    assert "install the package that provides it" in message


def test_a_missing_module_in_an_installation_says_to_pip_install() -> None:
    # The installed package has its compiled module: any other failure keeps the
    # generic advice.
    message = str(load_error(ImportError("No module named 'libcoap_py._binding._libcoap'")))
    assert "install the package with pip" in message
