"""The Pub/Sub subscription filter language: parse once at create, evaluate per message.

Real Pub/Sub delivers on a filtered subscription only the messages whose attributes match, and
acknowledges the rest itself; it refuses a filter that does not parse or is over 256 bytes when
the subscription is created. The emulator does neither. The grammar follows the documentation
(https://cloud.google.com/pubsub/docs/subscription-message-filter):

    attributes:KEY                      the key is present
    attributes.KEY = "v"   !=           value equal / not equal (a missing key is != anything)
    hasPrefix(attributes.KEY, "p")      value starts with p
    NOT x   -x   x AND y   x OR y   ( ... )

Keywords are upper case; a KEY that is not letters, digits, `_` and `-` is written as a string
literal (`attributes."a.b"`); string literals take backslash escapes. AND and OR may not be mixed
at one level without parentheses (the documentation's rule).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from events_infra.errors import EventsInfraError

MAX_FILTER_BYTES = 256

Attributes = Mapping[str, str]
Predicate = Callable[[Attributes], bool]


class FilterError(EventsInfraError, ValueError):
    """The filter is not valid Pub/Sub filter syntax (production refuses the subscription)."""


@dataclass(frozen=True)
class Filter:
    """A parsed filter; `matches(attributes)` tells whether Pub/Sub would deliver the message."""

    text: str
    _predicate: Predicate

    def matches(self, attributes: Attributes) -> bool:
        return self._predicate(attributes)


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op>!=|[=:.,()-])
      | (?P<word>[A-Za-z0-9_][A-Za-z0-9_-]*)
    )""",
    re.VERBOSE | re.DOTALL,
)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v", "?": "?"}  # fmt: skip


def _unquote(literal: str) -> str:
    body, out, i = literal[1:-1], [], 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in "xX" and re.fullmatch(r"[0-9A-Fa-f]{2}", body[i + 2 : i + 4]):
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        elif nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        elif re.fullmatch(r"[0-7]{3}", body[i + 1 : i + 4]):
            out.append(chr(int(body[i + 1 : i + 4], 8)))
            i += 4
        else:
            raise FilterError(f"invalid escape sequence \\{nxt} in {literal}")
    return "".join(out)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match:
            raise FilterError(f"unexpected character {text[pos:].lstrip()[:1]!r} at {pos}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        token = self.peek()
        if token is None:
            raise FilterError(f"filter ends early; expected {value or kind}")
        if (value is not None and token[1] != value) or (kind is not None and token[0] != kind):
            raise FilterError(f"expected {value or kind}, found {token[1]!r}")
        self.pos += 1
        return token[1]

    def expression(self) -> Predicate:
        terms = [self.term()]
        joiner = None
        while (token := self.peek()) is not None and token[1] in ("AND", "OR"):
            if joiner is not None and token[1] != joiner:
                raise FilterError("AND and OR cannot be mixed without parentheses")
            joiner = self.take()
            terms.append(self.term())
        if len(terms) == 1:
            return terms[0]
        if joiner == "AND":
            return lambda a: all(t(a) for t in terms)
        return lambda a: any(t(a) for t in terms)

    def term(self) -> Predicate:
        token = self.peek()
        if token is None:
            raise FilterError("filter ends early; expected a condition")
        if token[1] in ("NOT", "-"):
            self.take()
            inner = self.term()
            return lambda a: not inner(a)
        if token[1] == "(":
            self.take("(")
            inner = self.expression()
            self.take(")")
            return inner
        if token[1] == "hasPrefix":
            self.take()
            self.take("(")
            key = self.attribute_key(".")
            self.take(",")
            prefix = _unquote(self.take(kind="string"))
            self.take(")")
            return lambda a: key in a and a[key].startswith(prefix)
        if token[1] == "attributes":
            self.take()
            operator = self.take()
            if operator not in (".", ":"):
                raise FilterError(f"expected '.' or ':' after attributes, found {operator!r}")
            key = self.key()
            if operator == ":":
                return lambda a: key in a
            comparison = self.take()
            if comparison not in ("=", "!="):
                raise FilterError(f"expected = or != after attributes.{key}, found {comparison!r}")
            value = _unquote(self.take(kind="string"))
            if comparison == "=":
                return lambda a: a.get(key) == value
            return lambda a: a.get(key) != value
        raise FilterError(f"unexpected {token[1]!r}; a condition starts with attributes, "
                          "hasPrefix, NOT or (")  # fmt: skip

    def attribute_key(self, operator: str) -> str:
        self.take("attributes")
        self.take(operator)
        return self.key()

    def key(self) -> str:
        token = self.peek()
        if token is None or token[0] not in ("word", "string"):
            raise FilterError("expected an attribute key")
        self.pos += 1
        return _unquote(token[1]) if token[0] == "string" else token[1]


def parse(text: str) -> Filter:
    """Parse `text` as production does at subscription create; FilterError when it refuses."""
    if len(text.encode()) > MAX_FILTER_BYTES:
        raise FilterError(f"filter is {len(text.encode())} bytes; the limit is {MAX_FILTER_BYTES}")
    if not text.strip():
        return Filter(text, lambda _a: True)
    parser = _Parser(text)
    predicate = parser.expression()
    if parser.peek() is not None:
        raise FilterError(f"unexpected {parser.peek()[1]!r} after a complete condition")  # type: ignore[index]
    return Filter(text, predicate)
