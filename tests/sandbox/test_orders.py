"""orders/erp over HTTP: filters, fields, paging, deep-paging cap, order, truth agreement."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from airflow_provider_eshopbox.sandbox.data import DEFAULT_START, to_ms

DAY = 86_400_000
START = to_ms(DEFAULT_START)


def _get(sb: EshopboxSandbox, client: httpx.Client, headers: dict[str, str], **params: Any) -> httpx.Response:
    return client.get(sb.api_url + "/api/v1/orders/erp", params=params, headers=headers)


def _read_all(
    sb: EshopboxSandbox, client: httpx.Client, headers: dict[str, str], **params: Any
) -> list[dict]:
    hits: list[dict] = []
    page = 1
    while True:
        body = _get(sb, client, headers, page=page, per_page=100, **params).json()
        hits.extend(body["hits"])
        if not body["hasNext"]:
            return hits
        page += 1


def _envelope(message: str) -> dict:
    return {
        "error": {
            "errors": [{"domain": "global", "reason": "badRequest", "message": message}],
            "code": 400,
            "message": message,
        }
    }


def test_default_page_size_and_shape(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    body = _get(sb, client, headers).json()
    assert set(body) == {"hits", "hasNext"}
    assert len(body["hits"]) == 25 and body["hasNext"] is True
    assert body["hits"] == _get(sb, client, headers, page=1, per_page=25).json()["hits"]


def test_filter_window_and_equality(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    lo, hi = START + DAY, START + DAY + 6 * 3_600_000
    flt = f"(updatedAt >= {lo} AND updatedAt < {hi}) and orderStatus:shipped"
    hits = _read_all(sb, client, headers, filters=flt)
    want = {r["orderItemID"] for r in sb.truth_order_rows(lo, hi) if r["orderStatus"].lower() == "shipped"}
    assert want and {h["orderItemID"] for h in hits} == want
    assert len(hits) == len(want)


def test_sdk_style_account_filter(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    assert _get(sb, client, headers, filters="account=acme").json()["hasNext"] is True
    assert _get(sb, client, headers, filters="account=other").json() == {"hits": [], "hasNext": False}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"filters": "updatedAt >= yesterday"},
            "filters: updatedAt needs an integer epoch-ms value, got 'yesterday'",
        ),
        ({"filters": "foo:bar"}, "filters: unknown field 'foo'"),
        (
            {"filters": "updatedAt >= 1 OR orderStatus:new"},
            "filters: OR is not supported (position 15); join terms with AND",
        ),
        ({"per_page": 101}, "per_page must be at most 100, got 101"),
        ({"per_page": 0}, "per_page must be >= 1, got 0"),
        ({"page": -1}, "page must be >= 1, got -1"),
        ({"page": "two"}, "page must be an integer, got 'two'"),
        ({"per_page": "1.5"}, "per_page must be an integer, got '1.5'"),
    ],
)
def test_bad_input_400(
    sb: EshopboxSandbox, client: httpx.Client, headers: dict, params: dict, message: str
) -> None:
    r = _get(sb, client, headers, **params)
    assert r.status_code == 400
    assert r.json() == _envelope(message)


def test_page_zero_and_base_one(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    r = _get(sb, client, headers, page=0, per_page=10)
    assert (r.status_code, r.json()) == (200, {"hits": [], "hasNext": False})
    p1 = _get(sb, client, headers, page=1, per_page=10).json()["hits"]
    p2 = _get(sb, client, headers, page=2, per_page=10).json()["hits"]
    both = _get(sb, client, headers, page=1, per_page=20).json()["hits"]
    assert p1 + p2 == both


def test_fields_selection(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    fields = (
        "account,customerOrderNumber,orderDetails.isCod,customerDetails.shippingCity,nope,orderDetails.nope"
    )
    hits = _get(sb, client, headers, fields=fields, per_page=5).json()["hits"]
    full = _get(sb, client, headers, per_page=5).json()["hits"]
    for got, row in zip(hits, full, strict=True):
        assert got == {
            "objectID": row["objectID"],
            "account": "acme",
            "customerOrderNumber": row["customerOrderNumber"],
            "orderDetails": {"isCod": row["orderDetails"]["isCod"]},
            "customerDetails": {"shippingCity": row["customerDetails"]["shippingCity"]},
        }
    only_id = _get(sb, client, headers, fields="objectID", per_page=3).json()["hits"]
    assert all(set(h) == {"objectID"} for h in only_id)


def test_deep_paging_cap(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    total = len(sb.store.rows)
    assert total > 1000
    hits = _read_all(sb, client, headers)
    assert len(hits) == 1000
    assert len({h["objectID"] for h in hits}) == 1000
    beyond = _get(sb, client, headers, page=11, per_page=100).json()
    assert beyond == {"hits": [], "hasNext": False}
    last = _get(sb, client, headers, page=10, per_page=100).json()
    assert len(last["hits"]) == 100 and last["hasNext"] is False


def test_unordered_but_stable(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    flt = f"updatedAt >= {START} AND updatedAt < {START + DAY}"
    first = [h["objectID"] for h in _read_all(sb, client, headers, filters=flt)]
    second = [h["objectID"] for h in _read_all(sb, client, headers, filters=flt)]
    assert first == second
    stamps = [sb.store.rows[o.split("-", 1)[1]]["updatedAt"] for o in first]
    assert stamps != sorted(stamps) and stamps != sorted(stamps, reverse=True)


def test_time_sliced_read_equals_truth(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    got: list[str] = []
    for day in range(7):
        lo, hi = START + day * DAY, START + (day + 1) * DAY
        hits = _read_all(
            sb, client, headers, filters=f"updatedAt >= {lo} AND updatedAt < {hi}", fields="orderItemID"
        )
        assert len(hits) < 1000
        got.extend(h["orderItemID"] for h in hits)
    assert len(got) == len(set(got))
    assert set(got) == sb.truth_order_item_ids(DEFAULT_START, START + 7 * DAY) == set(sb.store.rows)


def test_burst_rows_share_a_timestamp(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    ts, n = Counter(r["updatedAt"] for r in sb.store.rows.values()).most_common(1)[0]
    assert n > 100
    hits = _read_all(sb, client, headers, filters=f"updatedAt:{ts}")
    assert len(hits) == n and {h["updatedAt"] for h in hits} == {ts}


def test_mutation_moves_row_between_windows(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    lo, hi = START + 2 * DAY, START + 3 * DAY
    flt = f"updatedAt >= {lo} AND updatedAt < {hi}"
    before = {h["orderItemID"] for h in _read_all(sb, client, headers, filters=flt)}
    counts = Counter(r["customerOrderNumber"] for r in sb.store.rows.values())
    victim = next(k for k in sorted(before) if counts[sb.store.rows[k]["customerOrderNumber"]] > 1)
    con = sb.store.rows[victim]["customerOrderNumber"]
    siblings = {r["orderItemID"]: r["customerDetails"]["shippingCity"] for r in sb.store.rows.values()
                if r["customerOrderNumber"] == con and r["orderItemID"] != victim}  # fmt: skip
    now_ms = sb.clock.now_ms()
    assert (
        sb.update_order_rows([victim], orderStatus="delivered", **{"customerDetails.shippingCity": "Pune"})
        == 1
    )
    after = {h["orderItemID"] for h in _read_all(sb, client, headers, filters=flt)}
    assert after == before - {victim}
    moved = next(r for r in sb.truth_order_rows(now_ms, None) if r["orderItemID"] == victim)
    assert moved["orderStatus"] == "delivered" and moved["customerDetails"]["shippingCity"] == "Pune"
    # the order's other items shared the nested dict; copy-on-write keeps them unchanged
    assert {k: sb.store.rows[k]["customerDetails"]["shippingCity"] for k in siblings} == siblings
    sb.update_order_rows([victim], updated_at=lo + 5)
    assert victim in {h["orderItemID"] for h in _read_all(sb, client, headers, filters=flt)}


def test_set_order_status(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    ids = sb.set_order_status("SHOP-100010", "delivered")
    rows = sb.truth_order_rows(sb.clock.now_ms() - 5000, None)
    assert {r["orderItemID"] for r in rows if r["customerOrderNumber"] == "SHOP-100010"} == set(ids)
    assert all(r["orderStatus"] == "delivered" for r in rows if r["orderItemID"] in ids)
    with pytest.raises(KeyError):
        sb.set_order_status("SHOP-NOPE", "new")


def test_later_pages_of_a_big_store_are_served_from_the_ranked_query() -> None:
    """A page is a slice of the cached ranking, not a re-sort (what keeps the sandbox fast at 60k rows).
    Counted, not timed: the store's ranking runs once for six pages of one filter."""
    with EshopboxSandbox(order_items=60000, seed=2) as big, httpx.Client() as c:
        from .conftest import mint, ws_headers

        rankings = []
        candidates = big.store._candidates
        big.store._candidates = lambda flt: rankings.append(flt) or candidates(flt)  # type: ignore[method-assign]
        h = ws_headers(mint(big, c))
        flt = f"updatedAt >= {START} AND updatedAt < {START + 3 * DAY}"
        for page in range(1, 7):
            r = c.get(
                big.api_url + "/api/v1/orders/erp",
                params={"filters": flt, "per_page": 100, "page": page},
                headers=h,
            )
            assert len(r.json()["hits"]) == 100
        assert len(rankings) == 1
