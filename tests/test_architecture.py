"""The package's layout holds: dependencies run one way, and the public classes'
names do not grow without a documented reason (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import libcoap_py as coap

PACKAGE = Path(coap.__file__).resolve().parent

#: Layers, lowest first. A module imports only from its own layer or lower ones, at
#: run time: an import under ``if TYPE_CHECKING:`` (a type-only reference) is free.
_BASE = (
    "codes", "errors", "options", "uri", "linkformat", "peername", "certs", "capabilities",
    "library", "log", "dtls", "pdu", "block", "_handoff", "_credentials",
)  # fmt: skip
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("binding", ("_binding",)),
    ("base", _BASE),
    ("core", ("_loop", "_exchange")),
    ("client", ("client",)),
    ("server", ("server",)),
    ("top", ("_dispatch", "context", "__init__")),
    ("asyncio", ("aio",)),
    ("applications", ("cli", "service", "__main__")),
]

#: The public names of the classes users hold most, as they are. A new one needs a
#: reason in docs/architecture.md and a line here.
PUBLIC = {
    "Context": {
        "add_endpoint", "add_reader", "add_resource", "call_soon", "call_soon_threadsafe",
        "can_exit", "client_session", "close", "closed", "endpoints", "keepalive", "ptr",
        "register_event_handler", "register_nack_handler", "register_option",
        "register_response_handler", "remove_reader", "remove_resource", "resource",
        "resources", "run", "run_once", "sessions", "set_unknown_handler", "stop",
        "unknown_resource",
    },
    "Session": {
        "ack_timeout", "close", "closed", "context", "established", "local_address",
        "max_payload", "max_pdu_size", "max_retransmit", "max_transmit_wait", "new_pdu",
        "observe", "peer_cn", "proto", "psk_identity", "refusal", "remote_address",
        "renewals", "request", "send", "set_token_base", "uri",
    },
    "PDU": {
        "accept", "add_option", "code", "content_format", "etag", "location_path",
        "location_query", "max_age", "mid", "observe", "option", "option_values",
        "options", "payload", "token", "type", "typed_options", "unknown_critical_options",
        "uri_path", "uri_query",
    },
}  # fmt: skip


def _layer_of(module: str) -> int:
    """The layer of ``libcoap_py.<module>`` (dotted, without the package's name)."""
    first = module.split(".", 1)[0] or "__init__"
    for rank, (_, tops) in enumerate(LAYERS):
        if first in tops:
            return rank
    raise AssertionError(f"libcoap_py.{module} is in no layer: add it to LAYERS")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _type_checking_blocks(tree: ast.Module) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            for inner in node.body:
                for sub in ast.walk(inner):
                    found.add(id(sub))
    return found


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module inside the package) of every run-time import, wherever
    it stands (in a function too)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_blocks(tree)
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    if name == "__init__":
        package = []
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
                if node.module is None:  # from . import x: x may be a module
                    for alias in node.names:
                        full = ".".join([*base, alias.name])
                        if (PACKAGE / full.replace(".", "/")).exists() or (
                            PACKAGE / (full.replace(".", "/") + ".py")
                        ).exists():
                            found.append((node.lineno, full))
                        else:
                            found.append((node.lineno, target))
                    continue
                found.append((node.lineno, target))
            elif node.module and node.module.startswith("libcoap_py"):
                found.append((node.lineno, node.module.removeprefix("libcoap_py").lstrip(".")))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("libcoap_py"):
                    found.append((node.lineno, alias.name.removeprefix("libcoap_py").lstrip(".")))
    return found


def test_dependencies_run_one_way() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _module_name(path)
        rank = _layer_of(here)
        for line, target in _imports(path):
            if _layer_of(target) > rank:
                upward.append(
                    f"{path.relative_to(PACKAGE)}:{line}: {LAYERS[rank][0]} module {here} "
                    f"imports {target} ({LAYERS[_layer_of(target)][0]})"
                )
    assert upward == []


def test_the_layer_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .context import Context\n"
        "def f():\n    from .server.serving import Server\n"
    )
    tree = ast.parse(source.read_text())
    skip = _type_checking_blocks(tree)
    inside = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and id(n) not in skip]
    assert [n.module for n in inside] == ["typing", "server.serving"]


def test_every_module_has_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        _layer_of(_module_name(path))


@pytest.fixture
def objects() -> dict[str, object]:
    ctx = coap.Context()
    session = ctx.client_session("coap://127.0.0.1:9")
    pdu = session.new_pdu()
    yield {"Context": ctx, "Session": session, "PDU": pdu}
    ctx.close()


def test_public_names_do_not_grow(objects: dict[str, object]) -> None:
    for name, obj in objects.items():
        public = {n for n in dir(obj) if not n.startswith("_")}
        assert public == PUBLIC[name], name
