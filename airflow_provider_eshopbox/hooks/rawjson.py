"""Decode a JSON reply, leaving one list in it as each element's JSON text, exactly as sent.

The orders sync writes every row "as the API returns it", and reads only two fields of each. So a
page's rows are kept as their source text (``RawItems``), checked as JSON but not decoded: the sync
reads each row's id and time from the text, and anyone else decodes the rows on demand.

msgspec (installed with Airflow's task SDK) splits strict UTF-8 JSON in C; anything it refuses
(other encodings, ``NaN``, invalid JSON) goes to ``json.loads``, whose errors are then the ones raised,
and the rows of such a reply are re-encoded.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import msgspec

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
        pass  # not an object, the key's value not a list, or not strict UTF-8 JSON: rare
    data = json.loads(content)
    if isinstance(data, dict) and isinstance(data.get(key), list):
        # An odd encoding (UTF-16, NaN, ...): the rows are re-encoded, the one case they are.
        data[key] = RawItems([_encode(item).encode() for item in data[key]])
    return data


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
