"""Decode a JSON reply, leaving one list in it as each element's JSON text, exactly as sent.

The orders sync writes every row "as the API returns it", and reads only two fields of each. So a
page's rows are kept as their source text (``RawItems``), checked as JSON but not decoded: the sync
reads each row's id and time from the text, and anyone else decodes the rows on demand.

Two paths, same result as ``json.loads``: msgspec (already installed with Airflow's task SDK) does
strict UTF-8 JSON in C; anything it refuses (other encodings, ``NaN``, invalid JSON) is walked with
the standard library's C scanner, which accepts and rejects exactly what ``json.loads`` does.
"""

from __future__ import annotations

import functools
import json
import json.scanner
import re
from dataclasses import dataclass
from typing import Any

import msgspec

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_scan = json.scanner.make_scanner(json.JSONDecoder())
_decoder = msgspec.json.Decoder()
_raw_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])


@dataclass(frozen=True, eq=False, repr=False)
class RawItems:
    """The elements of one list of a reply, each kept as its JSON text (UTF-8), decoded on demand."""

    texts: list[bytes]

    def __repr__(self) -> str:
        return f"RawItems({len(self.texts)} elements)"

    def decoded(self) -> list[Any]:
        """Each element as ``json.loads`` gives it."""
        try:
            return [_decoder.decode(text) for text in self.texts]
        except msgspec.MsgspecError:
            return [json.loads(text) for text in self.texts]

    def id_and_number(self, id_field: str, number_field: str) -> list[tuple[str, int]] | None:
        """``(str(e[id_field]), e[number_field])`` of each element, read without decoding the rest.

        None unless every element is an object whose ``id_field`` is a string or an integer and
        whose ``number_field`` is an integer (the caller then decodes the elements whole).
        """
        decode = _pair_decoder(id_field, number_field).decode
        pairs = []
        try:
            for text in self.texts:
                pair = decode(text)
                if pair.id is None or pair.number is None:
                    return None
                pairs.append((str(pair.id), pair.number))
        except msgspec.MsgspecError:
            return None
        return pairs


@functools.cache
def _pair_decoder(id_field: str, number_field: str) -> msgspec.json.Decoder[Any]:
    pair = msgspec.defstruct(
        "Pair",
        [
            ("id", str | int | None, msgspec.field(default=None, name=id_field)),
            ("number", int | None, msgspec.field(default=None, name=number_field)),
        ],
    )
    return msgspec.json.Decoder(pair)


def loads_leaving_items(content: bytes, key: str) -> Any:
    """``json.loads(content)``, except that a list under ``key`` of the top-level object is a
    ``RawItems`` of its elements' source texts. Invalid JSON raises ``ValueError`` like ``json.loads``.
    """
    try:
        content.decode()  # msgspec checks the JSON of what it skips, not the UTF-8 of its strings
        fields = _raw_fields.decode(content)  # checks the whole text, decodes nothing yet
        if key in fields:
            elements = _raw_list.decode(fields[key])
            data = {name: None if name == key else _decoder.decode(value) for name, value in fields.items()}
            data[key] = RawItems([bytes(element) for element in elements])
            return data
        return {name: _decoder.decode(value) for name, value in fields.items()}
    except (msgspec.MsgspecError, UnicodeDecodeError):
        pass  # not an object, the key's value not a list, or not strict UTF-8 JSON: the exact way
    data, texts = _loads_exactly(content, key)
    if texts is not None:
        data[key] = RawItems(texts)
    return data


def _loads_exactly(content: bytes, key: str) -> tuple[Any, list[bytes] | None]:
    """The standard library's path: every encoding ``json.loads(bytes)`` accepts, and its errors."""
    text = content.decode(json.detect_encoding(content))  # UnicodeDecodeError is a ValueError
    skip = _WHITESPACE.match
    position = skip(text, 0).end()
    if not text.startswith("{", position):
        return json.loads(text), None
    try:
        data, texts = _object_keeping_items(text, position + 1, key)
    except (StopIteration, IndexError) as error:
        raise ValueError(f"invalid JSON near character {getattr(error, 'value', position)}") from None
    return data, None if texts is None else [text.encode() for text in texts]


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
