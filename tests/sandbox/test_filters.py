"""The filters grammar: parsing, bounds, equality and every rejection path."""

from __future__ import annotations

import pytest

from airflow_provider_eshopbox.sandbox.data import row_schema_fields
from airflow_provider_eshopbox.sandbox.filters import FilterError, parse_filters, tokenize

FIELDS = row_schema_fields()


def test_tokenize_kinds() -> None:
    kinds = [t.kind for t in tokenize('(updatedAt >= 5 and x:"a b")')]
    assert kinds == ["LPAREN", "WORD", "OP", "WORD", "AND", "WORD", "OP", "STRING", "RPAREN", "END"]


def test_range_and_equality_with_parentheses() -> None:
    f = parse_filters(
        "(updatedAt >= 1717200000000 AND updatedAt < 1717203600000) AND orderStatus:shipped", FIELDS
    )
    assert (f.time_lo, f.time_hi) == (1717200000000, 1717203600000)
    assert f.equals == [("orderStatus", "shipped")]


@pytest.mark.parametrize(
    ("text", "lo", "hi"),
    [
        ("updatedAt > 10", 11, None),
        ("updatedAt <= 10", None, 11),
        ("updatedAt=10", 10, 11),
        ("updatedAt:10", 10, 11),
        ("updatedAt >= 5 and updatedAt >= 7 AnD updatedAt < 9 AND updatedAt < 20", 7, 9),
        ("((updatedAt >= 1))", 1, None),
    ],
)
def test_time_bounds(text: str, lo: int | None, hi: int | None) -> None:
    f = parse_filters(text, FIELDS)
    assert (f.time_lo, f.time_hi) == (lo, hi)


def test_equality_forms_and_matching() -> None:
    f = parse_filters(
        'account=acme AND customerDetails.shippingCity:"New Delhi" AND returnStatus:null', FIELDS
    )
    assert f.equals == [
        ("account", "acme"),
        ("customerDetails.shippingCity", "new delhi"),
        ("returnStatus", None),
    ]
    row = {"account": "acme", "customerDetails": {"shippingCity": "New Delhi"}, "returnStatus": None}
    assert f.matches_equals(row)
    assert not f.matches_equals({**row, "returnStatus": "rto"})
    assert not f.matches_equals({**row, "customerDetails": {"shippingCity": "Pune"}})


def test_empty_means_all_and_empty_range_detected() -> None:
    assert parse_filters("", FIELDS).cache_key() == (None, None, ())
    assert parse_filters(None, FIELDS).conditions == []
    assert parse_filters("updatedAt >= 10 AND updatedAt < 10", FIELDS).empty_range


def test_cache_key_is_canonical() -> None:
    a = parse_filters("orderStatus:shipped AND (updatedAt >= 1 AND updatedAt < 5)", FIELDS)
    b = parse_filters("updatedAt<5 AND updatedAt>=1 AND orderStatus=SHIPPED", FIELDS)
    assert a.cache_key() == b.cache_key()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "updatedAt >= 1 OR updatedAt < 2",
            "filters: OR is not supported (position 15); join terms with AND",
        ),
        ("bogus:1", "filters: unknown field 'bogus'"),
        ("updatedAt >= 2024-06-01", "filters: updatedAt needs an integer epoch-ms value, got '2024-06-01'"),
        ("updatedAt >= 1.5", "filters: updatedAt needs an integer epoch-ms value, got '1.5'"),
        ("(updatedAt >= 1", "filters: expected ')' at position 15"),
        ("updatedAt >= 1)", "filters: unexpected ')' at position 14"),
        ("orderStatus != shipped", "filters: operator '!=' is not supported"),
        ("orderStatus > a", "filters: operator '>' is only supported on updatedAt"),
        ("updatedAt >=", "filters: expected a value after updatedAt>= at position 12"),
        ("updatedAt 5", "filters: expected an operator after 'updatedAt' at position 10"),
        ("NOT orderStatus:new", "filters: NOT is not supported (position 0)"),
        ("orderStatus:new;", "filters: unexpected character ';' at position 15"),
        ("AND", "filters: expected a field name at position 0, got 'AND'"),
    ],
)
def test_rejections(text: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filters(text, FIELDS)
    assert str(info.value) == message
