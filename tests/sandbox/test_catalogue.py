"""Product-engine GET and v2 inventoryListing (shape, updatedOn filter, paging), set_stock."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx

from airflow_provider_eshopbox.sandbox import EshopboxSandbox

from .conftest import mint, ws_headers

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


def _changed_while_paging(client: httpx.Client) -> list[set[str]]:
    """Read 2 pages of the data window with inventory_updates_while_paging=2 on a fresh sandbox."""
    with EshopboxSandbox(orders=400, seed=11) as sb:
        headers = ws_headers(mint(sb, client))
        start, end = sb.data_window
        last = datetime.fromtimestamp(end.timestamp() - 1, tz=timezone.utc)  # updatedOn is inclusive
        window = f"{start:%Y-%m-%d %H:%M:%S},{last:%Y-%m-%d %H:%M:%S}"
        before = sb.esins_updated_between(start, end)
        stock_before = {(r["esin"], r["warehouse"]): r["sellable"] for r in sb.inventory_rows()}
        t0 = sb.clock.now_ms() // 1000 * 1000
        r = client.post(
            sb.origin + "/__sandbox__/faults", json={"inventory_updates_while_paging": 2, "seed": 5}
        )
        assert r.json()["inventory_updates_while_paging"] == 2
        moved: list[set[str]] = []
        for page in (1, 2):
            body = _inv(sb, client, headers, updatedOn=window, page=page, perPage=10).json()
            now_in = sb.esins_updated_between(start, end)
            moved.append(before - now_in - set().union(*moved))
            assert len(body) == 10 and set(body) <= now_in and not set(body) & moved[-1]
        gone = set().union(*moved)
        assert gone <= sb.esins_updated_between(t0, None)
        rows = sb.inventory_rows()
        for esin in gone:  # one warehouse's sellable went up; updatedOn is now
            ups = [
                r for r in rows if r["esin"] == esin and r["sellable"] > stock_before[(esin, r["warehouse"])]
            ]
            assert len(ups) == 1 and ups[0]["updatedOn"] >= t0
        assert sb.stats()["faults_injected"] == {"inventory_update": 2}
        sb.faults.clear()
        full = _inv(sb, client, headers, updatedOn=window, perPage=100).json()
        assert set(full) == sb.esins_updated_between(start, end) == before - gone
        return moved


def test_inventory_updates_while_paging(client: httpx.Client) -> None:
    moved = _changed_while_paging(client)
    assert [len(m) for m in moved] == [2, 2]
    again = _changed_while_paging(client)
    assert again == moved  # seeded: the same ESINs change on the same pages
