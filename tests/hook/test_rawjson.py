"""rawjson: decoding equals json.loads, and each kept element text is exactly its source (both paths)."""

from __future__ import annotations

import json
import random

import pytest

from airflow_provider_eshopbox.hooks.rawjson import RawItems, loads_leaving_items


def _random_value(rng: random.Random, depth: int = 0) -> object:
    kinds = ["int", "float", "str", "null", "bool"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.randint(-(10**15), 10**15)
    if kind == "float":
        return rng.uniform(-1e6, 1e6)
    if kind == "str":
        return "".join(rng.choice('aZ09 "\\\n\t\u00e9\u0915\U0001f600/') for _ in range(rng.randint(0, 12)))
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {f"k{i}": _random_value(rng, depth + 1) for i in range(rng.randint(0, 4))}


def _random_document(seed: int) -> tuple[str, list[object]]:
    rng = random.Random(seed)
    hits = [_random_value(rng) for _ in range(rng.randint(0, 6))]
    document = {"hasNext": rng.random() < 0.5, "hits": hits, "other": _random_value(rng)}
    text = json.dumps(
        document,
        ensure_ascii=rng.random() < 0.5,
        indent=rng.choice([None, 2]),
        separators=rng.choice([None, (",", ":"), (" , ", " : ")]),
    )
    return text, hits


def _split(data: object) -> tuple[object, list[bytes] | None]:
    """``data`` with its hits decoded again, and the hits' texts (None if they were not kept)."""
    if isinstance(data, dict) and isinstance(data.get("hits"), RawItems):
        return {**data, "hits": data["hits"].decoded()}, data["hits"].texts
    return data, None


@pytest.mark.parametrize("seed", range(40))
def test_decoding_matches_json_loads_and_texts_are_the_source(seed: int) -> None:
    text, hits = _random_document(seed)
    content = text.encode()

    data, texts = _split(loads_leaving_items(content, "hits"))

    assert data == json.loads(content)
    assert list(data) == list(json.loads(content))  # same key order
    assert texts is not None and len(texts) == len(hits)
    position = 0
    for hit, source in zip(hits, texts, strict=True):
        assert json.loads(source) == hit
        position = content.index(source, position)  # a verbatim piece of the reply, in order
        position += len(source)


@pytest.mark.parametrize("seed", range(10))
def test_what_msgspec_refuses_takes_the_standard_librarys_path_with_the_same_result(seed: int) -> None:
    text, hits = _random_document(seed)
    # UTF-16 (which json.loads accepts) and Infinity (a Python extension) are refused by msgspec:
    # json.loads decodes them, and the rows are re-encoded as one UTF-8 line each.
    for content in (text.encode("utf-16"), text.replace('"hasNext"', '"inf": Infinity, "hasNext"').encode()):
        data, texts = _split(loads_leaving_items(content, "hits"))

        assert data == json.loads(content)
        assert texts is not None and [json.loads(source) for source in texts] == hits
        assert all(b"\n" not in source for source in texts)


@pytest.mark.parametrize(
    ("content", "texts"),
    [
        (b'{"hits": [], "hasNext": false}', []),
        (b'{"hasNext": false}', None),
        (b'{"hits": 3}', None),
        (b'{"hits": [1], "hits": 2}', None),  # the later duplicate wins, as in json.loads
        (b'{"hits": 2, "hits": [1 ,2]}', [b"1", b"2"]),
        (b'[{"hits": [1]}]', None),
        (b"[1, 2]", None),
        (b"{}", None),
        (b'{"hits": [-Infinity]}', [b"-Infinity"]),  # json.loads's extension, through its own path
        (b'{"hits": [NaN]}', [b"NaN"]),
        ('{"hits": []}'.encode("utf-16"), []),
    ],
)
def test_texts_only_for_a_list_under_the_key(content: bytes, texts: list[bytes] | None) -> None:
    data, kept = _split(loads_leaving_items(content, "hits"))
    assert json.dumps(data) == json.dumps(json.loads(content))  # NaN != NaN, its JSON is equal
    assert kept == texts


@pytest.mark.parametrize(
    "content",
    [
        b'{"hits": [1,]}',
        b'{"hits": [1',
        b'{"a": 1} x',
        b'{"a" 1}',
        b"{",
        b'{"hits": [{"a": }]}',
        b"",
        b'{"a": 1,}',
        b'{"hits": ["\xff"]}',
        b'{"hits": [tru]}',
    ],
)
def test_invalid_json_raises_value_error_like_json_loads(content: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(content)
    with pytest.raises(ValueError):
        loads_leaving_items(content, "hits")


@pytest.mark.parametrize(
    ("element", "pair"),
    [
        (b'{"orderItemID": "7-1", "x": {"updatedAt": "no"}, "updatedAt": 5}', ("7-1", 5)),
        (b'{"orderItemID": 12, "updatedAt": 5}', ("12", 5)),
        (
            b'{"orderItemID": "a", "updatedAt": 1, "updatedAt": 9}',
            ("a", 9),
        ),  # the last wins, as in json.loads
        (b'{"orderItemID": "a"}', None),
        (b'{"orderItemID": null, "updatedAt": 5}', None),
        (b'{"orderItemID": "a", "updatedAt": 5.0}', None),
        (b'{"orderItemID": "a", "updatedAt": "5"}', None),
        (b'{"orderItemID": "a", "updatedAt": true}', None),
        (b'{"orderItemID": 1.5, "updatedAt": 5}', None),
        (b'["orderItemID", "updatedAt"]', None),
    ],
)
def test_id_and_number_are_read_only_when_every_element_has_them_plainly(
    element: bytes, pair: tuple[str, int] | None
) -> None:
    items = RawItems([b'{"orderItemID": "z", "updatedAt": 0}', element])
    expected = None if pair is None else [("z", 0), pair]
    assert items.id_and_number("orderItemID", "updatedAt") == expected
