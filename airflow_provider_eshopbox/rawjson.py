"""Decode a JSON reply and keep, for one list in it, each element's JSON text exactly as sent.

The orders sync writes every row "as the API returns it". Decoding a page and encoding each row
again costs as much CPU as the decoding itself, so the reply is walked once with the standard
library's C scanner: every value is decoded as ``json.loads`` would, and the elements of the named
top-level list also keep their source text, which the sync writes out unchanged.
"""

from __future__ import annotations

import json
import json.scanner
import re
from typing import Any

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_scan = json.scanner.make_scanner(json.JSONDecoder())


def loads_keeping_items(text: str, key: str) -> tuple[Any, list[str] | None]:
    """``(json.loads(text), texts)``: ``texts`` are the source of each element of ``text[key]``.

    ``texts`` is None when the reply is not an object holding a list under ``key``. Invalid JSON
    raises ``ValueError`` like ``json.loads``.
    """
    skip = _WHITESPACE.match
    position = skip(text, 0).end()
    if not text.startswith("{", position):
        return json.loads(text), None
    try:
        return _object_keeping_items(text, position + 1, key)
    except (StopIteration, IndexError) as error:
        raise ValueError(f"invalid JSON near character {getattr(error, 'value', position)}") from None


def _object_keeping_items(text: str, position: int, key: str) -> tuple[Any, list[str] | None]:
    skip = _WHITESPACE.match
    result: dict[str, Any] = {}
    texts: list[str] | None = None
    position = skip(text, position).end()
    if text[position] == "}":
        return _finish(text, position + 1, result, texts)
    while True:
        if text[position] != '"':
            raise ValueError(f"expected a property name at character {position}")
        name, position = _scan(text, position)
        position = skip(text, position).end()
        if text[position] != ":":
            raise ValueError(f"expected ':' at character {position}")
        position = skip(text, position + 1).end()
        if name == key and text[position] == "[":
            result[name], texts, position = _list_keeping_items(text, position + 1)
        else:
            result[name], position = _scan(text, position)
            if name == key:  # a later duplicate wins, as in json.loads
                texts = None
        position = skip(text, position).end()
        if text[position] == ",":
            position = skip(text, position + 1).end()
        elif text[position] == "}":
            return _finish(text, position + 1, result, texts)
        else:
            raise ValueError(f"expected ',' or '}}' at character {position}")


def _list_keeping_items(text: str, position: int) -> tuple[list[Any], list[str], int]:
    skip = _WHITESPACE.match
    items: list[Any] = []
    texts: list[str] = []
    position = skip(text, position).end()
    if text[position] == "]":
        return items, texts, position + 1
    while True:
        item, end = _scan(text, position)
        items.append(item)
        texts.append(text[position:end])
        position = skip(text, end).end()
        if text[position] == ",":
            position = skip(text, position + 1).end()
        elif text[position] == "]":
            return items, texts, position + 1
        else:
            raise ValueError(f"expected ',' or ']' at character {position}")


def _finish(text: str, position: int, result: dict[str, Any], texts: list[str] | None) -> tuple[Any, Any]:
    if _WHITESPACE.match(text, position).end() != len(text):
        raise ValueError(f"extra data after the JSON value at character {position}")
    return result, texts
