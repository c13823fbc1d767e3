"""Parser for the orders/erp ``filters`` grammar (a small tokenizer + recursive descent, no eval).

The real grammar is undocumented (api doc §8.2); this accepts what clients are seen sending:

    (updatedAt >= 1717200000000 AND updatedAt < 1717203600000) AND orderStatus:shipped
    account=acme
    customerDetails.shippingCity:"New Delhi"

ASSUMPTIONS: only ``AND`` (case-insensitive) joins terms; ``OR``/``NOT`` are rejected as unsupported.
Comparisons ``>= > <= <`` are allowed on ``updatedAt`` only and need integer epoch-ms values.
Equality (``:`` or ``=``) compares case-insensitively as strings (``null`` matches a missing value).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

TIME_FIELD = "updatedAt"
COMPARISONS = (">=", "<=", ">", "<")
EQUALITIES = (":", "=")


class FilterError(ValueError):
    """A ``filters`` string the sandbox cannot parse; the message is returned in the 400 envelope."""


@dataclass(frozen=True)
class Token:
    """One lexical token: kind is LPAREN, RPAREN, OP, WORD, STRING, AND, OR, NOT or END."""

    kind: str
    text: str
    pos: int


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<LPAREN>\()
  | (?P<RPAREN>\))
  | (?P<OP>>=|<=|!=|>|<|:|=)
  | (?P<STRING>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<WORD>[A-Za-z0-9_.@#+\-/]+)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"AND", "OR", "NOT"}


def tokenize(text: str) -> list[Token]:
    """Split a filters string into tokens; raise FilterError on any character the grammar lacks."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise FilterError(f"filters: unexpected character {text[pos]!r} at position {pos}")
        kind = match.lastgroup or ""
        value = match.group()
        if kind == "WORD" and value.upper() in _KEYWORDS:
            kind = value.upper()
        elif kind == "STRING":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if kind != "ws":
            tokens.append(Token(kind, value, pos))
        pos = match.end()
    tokens.append(Token("END", "", len(text)))
    return tokens


@dataclass(frozen=True)
class Condition:
    """One ``field op value`` term; value is an int for updatedAt, else a string."""

    field: str
    op: str
    value: Any


@dataclass
class ParsedFilter:
    """A conjunction of conditions, pre-split into a half-open updatedAt range and equality terms."""

    conditions: list[Condition] = field(default_factory=list)
    time_lo: int | None = None  # inclusive
    time_hi: int | None = None  # exclusive
    equals: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def empty_range(self) -> bool:
        """True when the updatedAt bounds cannot match any row."""
        return self.time_lo is not None and self.time_hi is not None and self.time_lo >= self.time_hi

    def cache_key(self) -> tuple[Any, ...]:
        """A canonical key: logically equal filters written differently share one cached result."""
        return (self.time_lo, self.time_hi, tuple(sorted(self.equals, key=lambda e: (e[0], str(e[1])))))

    def matches_equals(self, row: Mapping[str, Any]) -> bool:
        """True when every equality term matches the row (time bounds are checked by the index)."""
        for path, want in self.equals:
            got = get_path(row, path)
            if want is None:
                if got is not None:
                    return False
            elif got is None or _norm(got) != want:
                return False
        return True

    def matches(self, row: Mapping[str, Any]) -> bool:
        """Full check including the time bounds (used for rows outside the index, e.g. truth checks)."""
        ts = row.get(TIME_FIELD)
        if self.time_lo is not None and (ts is None or ts < self.time_lo):
            return False
        if self.time_hi is not None and (ts is None or ts >= self.time_hi):
            return False
        return self.matches_equals(row)


def _norm(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).casefold()


def get_path(row: Mapping[str, Any], path: str) -> Any:
    """Read a dotted path (``customerDetails.shippingCity``) from nested dicts; None when absent."""
    current: Any = row
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


class _Parser:
    def __init__(self, tokens: list[Token], known_fields: Iterable[str]) -> None:
        self.tokens = tokens
        self.i = 0
        self.known = set(known_fields)

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expr(self, out: list[Condition]) -> None:
        self.term(out)
        while self.peek().kind in ("AND", "OR"):
            tok = self.take()
            if tok.kind == "OR":
                raise FilterError(f"filters: OR is not supported (position {tok.pos}); join terms with AND")
            self.term(out)

    def term(self, out: list[Condition]) -> None:
        tok = self.peek()
        if tok.kind == "LPAREN":
            self.take()
            self.expr(out)
            closing = self.take()
            if closing.kind != "RPAREN":
                raise FilterError(f"filters: expected ')' at position {closing.pos}")
            return
        if tok.kind == "NOT":
            raise FilterError(f"filters: NOT is not supported (position {tok.pos})")
        out.append(self.condition())

    def condition(self) -> Condition:
        name = self.take()
        if name.kind != "WORD":
            what = name.text or "end of input"
            raise FilterError(f"filters: expected a field name at position {name.pos}, got {what!r}")
        if name.text not in self.known:
            raise FilterError(f"filters: unknown field {name.text!r}")
        op = self.take()
        if op.kind != "OP":
            raise FilterError(f"filters: expected an operator after {name.text!r} at position {op.pos}")
        if op.text == "!=":
            raise FilterError("filters: operator '!=' is not supported")
        value = self.take()
        if value.kind not in ("WORD", "STRING"):
            raise FilterError(f"filters: expected a value after {name.text}{op.text} at position {value.pos}")
        if name.text == TIME_FIELD:
            if not re.fullmatch(r"-?\d+", value.text):
                raise FilterError(f"filters: updatedAt needs an integer epoch-ms value, got {value.text!r}")
            return Condition(name.text, "=" if op.text in EQUALITIES else op.text, int(value.text))
        if op.text in COMPARISONS:
            raise FilterError(f"filters: operator {op.text!r} is only supported on updatedAt")
        return Condition(name.text, "=", value.text)


def parse_filters(text: str | None, known_fields: Iterable[str]) -> ParsedFilter:
    """Parse a filters string into a ParsedFilter; empty/None means "match everything"."""
    result = ParsedFilter()
    if text is None or not text.strip():
        return result
    parser = _Parser(tokenize(text), known_fields)
    parser.expr(result.conditions)
    end = parser.peek()
    if end.kind != "END":
        raise FilterError(f"filters: unexpected {end.text!r} at position {end.pos}")
    for cond in result.conditions:
        if cond.field == TIME_FIELD:
            lo, hi = _bounds(cond)
            if lo is not None:
                result.time_lo = lo if result.time_lo is None else max(result.time_lo, lo)
            if hi is not None:
                result.time_hi = hi if result.time_hi is None else min(result.time_hi, hi)
        else:
            want = None if cond.value.casefold() == "null" else cond.value.casefold()
            result.equals.append((cond.field, want))
    return result


def _bounds(cond: Condition) -> tuple[int | None, int | None]:
    """Turn an updatedAt comparison into half-open [lo, hi) integer bounds."""
    v = int(cond.value)
    return {
        ">=": (v, None),
        ">": (v + 1, None),
        "<": (None, v),
        "<=": (None, v + 1),
        "=": (v, v + 1),
    }[cond.op]
