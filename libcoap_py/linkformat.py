"""CoRE Link Format (RFC 6690): what ``/.well-known/core`` answers, as Python objects.

>>> links = parse_link_format('</sensors/temp>;rt="temperature-c";if=sensor;obs,</a>;ct="0 40"')
>>> links[0].target, links[0].rt, links[0].obs, links[1].ct
('/sensors/temp', ['temperature-c'], True, [0, 40])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Link", "format_link_format", "parse_link_format"]

#: Characters of a parameter name (RFC 5987 attr-char, plus "*" of ext-name-star).
_NAME_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&+-.^_`|~*"
)
#: Characters of an unquoted value (RFC 6690's ptokenchar).
_PTOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'()*+-./:<=>?@[]^_`{|}~"
)
#: Parameters written as quoted strings (title and anchor must be; the
#: relation-type lists are by custom, as libcoap and most servers write them).
_ALWAYS_QUOTED = frozenset({"title", "anchor", "rt", "if", "rel", "rev"})
_SPACE = " \t\r\n"


@dataclass
class Link:
    """One link: its target (the URI reference in ``<...>``) and its parameters.

    ``params`` maps each parameter name (lower case) to its values, one per
    occurrence, unquoted and unescaped; a parameter without a value (``obs``)
    has the value ``""``. Space-separated lists (``rt="a b"``) are kept as one
    value; the properties below split them.
    """

    target: str
    params: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        """The first value of a parameter, or None."""
        values = self.params.get(name.lower())
        return values[0] if values else None

    def _words(self, name: str) -> list[str]:
        return [word for value in self.params.get(name, ()) for word in value.split()]

    @property
    def rt(self) -> list[str]:
        """Resource types (``rt``)."""
        return self._words("rt")

    @property
    def if_(self) -> list[str]:
        """Interface descriptions (``if``)."""
        return self._words("if")

    @property
    def rel(self) -> list[str]:
        return self._words("rel")

    @property
    def ct(self) -> list[int]:
        """Content-Format numbers (``ct``, RFC 7252 7.2.1)."""
        formats = []
        for word in self._words("ct"):
            if not word.isdigit():
                raise ValueError(f"link <{self.target}>: ct value {word!r} is not a number")
            formats.append(int(word))
        return formats

    @property
    def title(self) -> str | None:
        return self.get("title")

    @property
    def anchor(self) -> str | None:
        return self.get("anchor")

    @property
    def obs(self) -> bool:
        """The resource is observable (``obs``)."""
        return "obs" in self.params

    @property
    def sz(self) -> int | None:
        """The resource's size estimate in bytes (``sz``), or None."""
        value = self.get("sz")
        if value is None:
            return None
        if not value.isdigit():
            raise ValueError(f"link <{self.target}>: sz value {value!r} is not a number")
        return int(value)

    def __str__(self) -> str:
        if ">" in self.target or "<" in self.target:
            raise ValueError(f"link target {self.target!r} cannot hold '<' or '>'")
        out = [f"<{self.target}>"]
        for name, values in self.params.items():
            if not name or not set(name) <= _NAME_CHARS:
                raise ValueError(f"link <{self.target}>: {name!r} is not a parameter name")
            for value in values:
                out.append(f";{name}{_format_value(name, value)}")
        return "".join(out)


def _format_value(name: str, value: str) -> str:
    if value == "" and name not in _ALWAYS_QUOTED:
        return ""
    if name not in _ALWAYS_QUOTED and set(value) <= _PTOKEN_CHARS:
        return f"={value}"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'="{escaped}"'


def format_link_format(links: Iterable[Link]) -> str:
    """Links joined with ``,``, as a server would send them."""
    return ",".join(str(link) for link in links)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, what: str, pos: int | None = None) -> ValueError:
        at = self.pos if pos is None else pos
        near = self.text[at : at + 20]
        found = f"{near!r}" if near else "the end"
        return ValueError(f"malformed link format at position {at}: {what}, found {found}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1

    def links(self) -> list[Link]:
        links: list[Link] = []
        self.skip_space()
        if self.pos == len(self.text):
            return links
        while True:
            links.append(self.link())
            self.skip_space()
            if self.pos == len(self.text):
                return links
            if self.peek() != ",":
                raise self.error("expected ',' or ';' after a link")
            self.pos += 1
            self.skip_space()

    def link(self) -> Link:
        if self.peek() != "<":
            raise self.error("expected '<' starting a link")
        start = self.pos
        end = self.text.find(">", start + 1)
        if end < 0:
            raise self.error("no '>' closing the link target", start)
        target = self.text[start + 1 : end]
        for i, char in enumerate(target, start + 1):
            if char == "<" or char in _SPACE:
                raise self.error("the link target holds a space or '<'", i)
        self.pos = end + 1
        params: dict[str, list[str]] = {}
        self.skip_space()
        while self.peek() == ";":
            self.pos += 1
            self.skip_space()
            name, value = self.param()
            params.setdefault(name, []).append(value)
            self.skip_space()
        return Link(target, params)

    def param(self) -> tuple[str, str]:
        start = self.pos
        text = self.text
        while self.pos < len(text) and text[self.pos] in _NAME_CHARS:
            self.pos += 1
        if self.pos == start:
            raise self.error("expected a parameter name")
        name = text[start : self.pos].lower()
        self.skip_space()
        if self.peek() != "=":
            return name, ""
        self.pos += 1
        self.skip_space()
        if self.peek() == '"':
            return name, self.quoted()
        start = self.pos
        while self.pos < len(text) and text[self.pos] in _PTOKEN_CHARS:
            self.pos += 1
        if self.pos == start:
            raise self.error(f"expected a value for parameter {name!r}")
        return name, text[start : self.pos]

    def quoted(self) -> str:
        start = self.pos
        self.pos += 1
        out: list[str] = []
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == '"':
                self.pos += 1
                return "".join(out)
            if char == "\\":
                if self.pos + 1 == len(text):
                    break
                out.append(text[self.pos + 1])
                self.pos += 2
                continue
            out.append(char)
            self.pos += 1
        raise self.error("a quoted string is not closed", start)


def parse_link_format(text: str | bytes | bytearray | memoryview) -> list[Link]:
    """Parse an ``application/link-format`` document (RFC 6690) into Links, in order.

    Quoted values may hold ``,`` ``;`` and backslash-escaped quotes; parameters
    without a value and repeated parameters are kept. Whitespace between links
    and parameters is tolerated. Malformed input raises ``ValueError`` naming
    the (character) position.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"malformed link format: not UTF-8 at byte position {exc.start}"
            ) from None
    if not isinstance(text, str):
        raise TypeError(f"link format must be str or bytes, not {type(text).__name__}")
    return _Parser(text).links()
