"""rawjson: decoding equals json.loads, and each kept element text is exactly its source."""

from __future__ import annotations

import json
import random

import pytest

from airflow_provider_eshopbox.rawjson import loads_keeping_items


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


@pytest.mark.parametrize("seed", range(40))
def test_decoding_matches_json_loads_and_texts_are_the_source(seed: int) -> None:
    rng = random.Random(seed)
    hits = [_random_value(rng) for _ in range(rng.randint(0, 6))]
    document = {"hasNext": rng.random() < 0.5, "hits": hits, "other": _random_value(rng)}
    text = json.dumps(
        document,
        ensure_ascii=rng.random() < 0.5,
        indent=rng.choice([None, 2]),
        separators=rng.choice([None, (",", ":"), (" , ", " : ")]),
    )

    data, texts = loads_keeping_items(text, "hits")

    assert data == json.loads(text)
    assert texts is not None and len(texts) == len(hits)
    position = 0
    for hit, source in zip(hits, texts, strict=True):
        assert json.loads(source) == hit
        position = text.index(source, position)  # a verbatim piece of the reply, in order
        position += len(source)


@pytest.mark.parametrize(
    ("text", "texts"),
    [
        ('{"hits": [], "hasNext": false}', []),
        ('{"hasNext": false}', None),
        ('{"hits": 3}', None),
        ('{"hits": [1], "hits": 2}', None),  # the later duplicate wins, as in json.loads
        ('[{"hits": [1]}]', None),
        ("{}", None),
    ],
)
def test_texts_only_for_a_list_under_the_key(text: str, texts: list[str] | None) -> None:
    data, kept = loads_keeping_items(text, "hits")
    assert data == json.loads(text)
    assert kept == texts


@pytest.mark.parametrize(
    "text",
    ['{"hits": [1,]}', '{"hits": [1', '{"a": 1} x', '{"a" 1}', "{", '{"hits": [{"a": }]}', "", '{"a": 1,}'],
)
def test_invalid_json_raises_value_error_like_json_loads(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        loads_keeping_items(text, "hits")
