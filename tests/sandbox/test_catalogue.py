"""Product-engine GET and v2 inventoryListing (shape, updatedOn filter, paging), set_stock."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx

from airflow_provider_eshopbox.sandbox import EshopboxSandbox

BUCKETS = {"sellable", "nonSellable", "inwardInProcess", "outwardInProcess"}


def _inv(sb: EshopboxSandbox, client: httpx.Client, headers: dict, **params: object) -> httpx.Response:
    return client.get(sb.api_url + "/api/v2/inventoryListing", params=params, headers=headers)  # type: ignore[arg-type]


def test_product_by_sku(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    product = sb.store.products[3]
    r = client.get(f"{sb.api_url}/product-engine/api/v1/products/{product.sku}", headers=headers)
    assert r.status_code == 200
    body = r.json()
    assert body["sku"] == product.sku and body["esin"] == product.esin and body["type"] == "BASE"
    assert body["updatedAt"].endswith("Z") and body["weightUnit"] == "g"
    r = client.get(f"{sb.api_url}/product-engine/api/v1/products/NOPE", headers=headers)
    assert (r.status_code, r.json()) == (404, {"message": "Not Found"})


def test_inventory_shape_and_paging(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    n = len(sb.store.stock)
    first = _inv(sb, client, headers).json()
    assert list(first) == sorted(sb.store.stock)[:25]
    value = first[next(iter(first))]
    assert set(value) == {"warehouseInventories", "inventories", "sku"}
    for per_wh in value["warehouseInventories"].values():
        assert set(per_wh) == BUCKETS
    for b in BUCKETS:
        assert value["inventories"][b] == sum(w[b] for w in value["warehouseInventories"].values())
    seen: list[str] = []
    page = 1
    while True:
        body = _inv(sb, client, headers, page=page, perPage=10).json()
        seen.extend(body)
        if len(body) < 10:
            break
        page += 1
    assert seen == sorted(sb.store.stock) and len(seen) == n
    assert page == n // 10 + 1


def test_inventory_updated_on(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    stamps = sorted(sb.store.stock_updated_ms.values())
    mid = stamps[len(stamps) // 2]
    text = datetime.fromtimestamp(mid / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    since = _inv(sb, client, headers, updatedOn=f"{text},", perPage=100).json()
    assert set(since) == {e for e, ts in sb.store.stock_updated_ms.items() if ts >= mid}
    until = _inv(sb, client, headers, updatedOn=f",{text}", perPage=100).json()
    assert set(until) == {e for e, ts in sb.store.stock_updated_ms.items() if ts <= mid}
    assert set(since) & set(until) == {e for e, ts in sb.store.stock_updated_ms.items() if ts == mid}


def test_inventory_bad_input(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    cases = {
        (
            "updatedOn",
            "2026-11-01",
        ): "updatedOn must be 'yyyy-MM-dd HH:mm:ss,yyyy-MM-dd HH:mm:ss', got '2026-11-01'",
        ("updatedOn", "2026-11-01,"): "updatedOn: '2026-11-01' is not 'yyyy-MM-dd HH:mm:ss'",
        ("perPage", "101"): "perPage must be between 1 and 100, got 101",
        ("page", "0"): "page must be >= 1, got 0",
    }
    for (key, value), message in cases.items():
        r = _inv(sb, client, headers, **{key: value})
        assert r.status_code == 400
        assert r.json()["error"] == {
            "errors": [{"domain": "global", "reason": "badRequest", "message": message}],
            "code": 400,
            "message": message,
        }


def test_set_stock_bumps_updated_on(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    product = sb.store.products[0]
    t0 = sb.clock.now_ms() // 1000 * 1000
    esin = sb.set_stock(product.sku, "CCU01", sellable=7, nonSellable=1)
    assert esin == product.esin
    assert esin in sb.esins_updated_between(t0, None)
    row = next(r for r in sb.inventory_rows() if r["esin"] == esin and r["warehouse"] == "CCU01")
    assert (row["sellable"], row["nonSellable"], row["sku"]) == (7, 1, product.sku)
    text = datetime.fromtimestamp(t0 / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    body = _inv(sb, client, headers, updatedOn=f"{text},", perPage=100).json()
    assert esin in body and body[esin]["warehouseInventories"]["CCU01"]["sellable"] == 7
