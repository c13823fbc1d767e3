"""The seeded generator: determinism, realistic shapes, bursts, catalogue and credentials."""

from __future__ import annotations

import re
from collections import Counter

from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from airflow_provider_eshopbox.sandbox.auth import Credentials
from airflow_provider_eshopbox.sandbox.data import DEFAULT_START, WAREHOUSES, generate, to_ms


def test_same_seed_same_data_other_seed_differs() -> None:
    a = generate(workspace="acme", orders=300, seed=11)
    b = generate(workspace="acme", orders=300, seed=11)
    c = generate(workspace="acme", orders=300, seed=12)
    assert a.rows == b.rows and a.stock == b.stock
    assert a.rows != c.rows


def test_order_items_gives_exact_row_count() -> None:
    data = generate(workspace="acme", orders=0, order_items=1234, seed=1)
    assert len(data.rows) == 1234
    assert len({r["orderItemID"] for r in data.rows}) == 1234


def test_rows_shape_and_spread() -> None:
    data = generate(workspace="acme", orders=2000, seed=7)
    rows = data.rows
    # Every row belongs to exactly one of the 2,000 orders, each of 1 to 4 items.
    assert len(data.orders) == 2000
    assert {len(o.item_ids) for o in data.orders.values()} == {1, 2, 3, 4}
    assert sorted(r["orderItemID"] for r in rows) == sorted(
        i for o in data.orders.values() for i in o.item_ids
    )
    start = to_ms(DEFAULT_START)
    assert all(start <= r["updatedAt"] < start + 7 * 86_400_000 for r in rows)
    row = rows[0]
    assert row["objectID"] == f"acme-{row['orderItemID']}"
    assert set(row["customerDetails"]) == {
        "shippingCustomerName",
        "shippingContactPhone",
        "shippingEmail",
        "shippingCity",
        "shippingState",
        "shippingPostalCode",
    }
    assert {"isCod", "orderDate"} <= set(row["orderDetails"])
    assert row["erpDetails"]["eshopboxId"].startswith("EB")
    assert {r["transactionStatus"] for r in rows} == {"Open", "Invoiced", "Refunded", "Void"}
    statuses = Counter(r["orderStatus"] for r in rows)
    assert {"new", "processing", "ready to ship", "shipped", "delivered", "cancelled"} <= set(statuses)
    assert any(s[0].isupper() for s in statuses)  # Title Case variants exist
    # items of one order share customer/order details
    by_order: dict[str, list[dict]] = {}
    for r in rows:
        by_order.setdefault(r["customerOrderNumber"], []).append(r)
    multi = [items for items in by_order.values() if len(items) > 1]
    assert multi and all(len({i["customerDetails"]["shippingEmail"] for i in items}) == 1 for items in multi)
    assert {len(items) for items in by_order.values()} == {1, 2, 3, 4}


def test_bursts_share_one_millisecond_and_exceed_a_page() -> None:
    data = generate(workspace="acme", orders=2000, seed=7)
    counts = Counter(r["updatedAt"] for r in data.rows)
    big = [n for n in counts.values() if n >= 50]
    assert len(big) == 2
    assert max(big) > 100


def test_daily_seasonality() -> None:
    data = generate(workspace="acme", orders=3000, seed=3)
    hours = Counter(int(r["orderDetails"]["orderDate"][11:13]) for r in data.rows)
    assert hours[14] > 5 * hours[21]  # UTC 14h (IST evening) vs UTC 21h (IST 2:30 am)
    updated = Counter((r["updatedAt"] // 3_600_000) % 24 for r in data.rows)
    assert max(updated.values()) > 4 * min(updated.values())


def test_catalogue_and_stock() -> None:
    data = generate(workspace="acme", orders=500, seed=7)
    assert all(re.fullmatch(r"ESN\d{7}[A-Z]", p.esin) for p in data.products)
    assert len({p.sku for p in data.products}) == len(data.products)
    for per_wh in data.stock.values():
        assert set(per_wh) <= set(WAREHOUSES) and per_wh
        for buckets in per_wh.values():
            assert set(buckets) == {"sellable", "nonSellable", "inwardInProcess", "outwardInProcess"}
    assert all(ts % 1000 == 0 for ts in data.stock_updated_ms.values())


def test_credentials_are_seeded_long_and_prefixed() -> None:
    a, b = Credentials.for_seed(7), Credentials.for_seed(8)
    assert a == Credentials.for_seed(7) and a != b
    assert re.fullmatch(r"sbx-secret-[0-9a-f]{40}", a.client_secret)
    assert re.fullmatch(r"sbx-rt-[0-9a-f]{40}", a.refresh_token)
    assert a.client_id.startswith("sbx-client-")


def test_truth_helpers_without_server() -> None:
    sb = EshopboxSandbox(orders=100, seed=5)
    everything = sb.truth_order_item_ids()
    assert everything == set(sb.store.rows)
    rows = sb.truth_order_rows(DEFAULT_START, to_ms(DEFAULT_START) + 86_400_000)
    assert [r["updatedAt"] for r in rows] == sorted(r["updatedAt"] for r in rows)
    assert {r["orderItemID"] for r in rows} == sb.truth_order_item_ids(
        DEFAULT_START, to_ms(DEFAULT_START) + 86_400_000
    )
    inv = sb.inventory_rows()
    assert {(r["esin"], r["warehouse"]) for r in inv} == {
        (e, wh) for e, per in sb.store.stock.items() for wh in per
    }
