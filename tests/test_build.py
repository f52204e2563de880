"""The build script: package selection with pkg-config and the no-libcoap message."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build_ffi.py"

pytestmark = [
    pytest.mark.skipif(not BUILD.exists(), reason="needs a source checkout"),
    pytest.mark.skipif(shutil.which("pkg-config") is None, reason="needs pkg-config"),
]


def run_build_script(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Import build_ffi (which selects the package and assembles the cdef, no compile)."""
    env = {**os.environ, **env_extra}
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import build_ffi"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def pkg_config_has(name: str) -> bool:
    return subprocess.run(["pkg-config", "--exists", name], check=False).returncode == 0


def test_default_prefers_openssl() -> None:
    if not pkg_config_has("libcoap-3-openssl"):
        pytest.skip("libcoap-3-openssl is not installed")
    out = run_build_script({"LIBCOAP_PY_PKG": ""})
    assert out.returncode == 0, out.stderr
    assert "building against libcoap-3-openssl" in out.stderr


def test_explicit_package_is_used() -> None:
    if not pkg_config_has("libcoap-3-gnutls"):
        pytest.skip("libcoap-3-gnutls is not installed")
    out = run_build_script({"LIBCOAP_PY_PKG": "libcoap-3-gnutls"})
    assert out.returncode == 0, out.stderr
    assert "building against libcoap-3-gnutls" in out.stderr


def test_unknown_explicit_package_is_refused() -> None:
    out = run_build_script({"LIBCOAP_PY_PKG": "libcoap-9-nonesuch"})
    assert out.returncode != 0
    assert "LIBCOAP_PY_PKG=libcoap-9-nonesuch" in out.stderr
    assert "Traceback" not in out.stderr


def test_no_libcoap_names_the_package_to_install(tmp_path: Path) -> None:
    out = run_build_script(
        {"PKG_CONFIG_LIBDIR": str(tmp_path), "PKG_CONFIG_PATH": "", "LIBCOAP_PY_PKG": ""}
    )
    assert out.returncode != 0
    assert "no libcoap found" in out.stderr
    assert "apt install libcoap3-dev" in out.stderr
    assert "Traceback" not in out.stderr


def test_generation_of_versions() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        import build_ffi
    finally:
        sys.path.remove(str(ROOT))
    assert build_ffi.generation("4.3.1") == 3
    assert build_ffi.generation("4.2.1") == 2
    with pytest.raises(SystemExit):
        build_ffi.generation("4.1.2")
