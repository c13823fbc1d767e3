"""Counters and the HTTP control plane (stats, faults, truth, revoke, clock, info)."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx

from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from airflow_provider_eshopbox.sandbox.data import DEFAULT_START, to_ms

from .conftest import mint


def test_counters_exact(sb: EshopboxSandbox, client: httpx.Client) -> None:
    tok = mint(sb, client)
    client.post(sb.auth_url, json={"grant_type": "refresh_token"})
    client.get(
        sb.api_url + "/api/v1/orders/erp", headers={"Authorization": f"Bearer {tok}", "ProxyHost": "acme"}
    )
    client.get(sb.api_url + "/api/v1/orders/erp", headers={"Authorization": f"Bearer {tok}"})
    client.get(sb.wms_url + "/api/order/NOPE", headers={"Authorization": f"Bearer {tok}"})
    client.get(sb.origin + "/nowhere")
    client.get(sb.origin + "/__sandbox__/stats")
    assert sb.stats() == {
        "requests": 6,
        "by_route": {"order_get": 1, "orders_list": 2, "token": 2, "unknown": 1},
        "by_status": {"200": 3, "401": 1, "404": 2},
        "token_exchanges": 1,
        "token_requests": 2,
        "missing_proxy_host": 1,
        "faults_injected": {},
        "max_concurrent": 1,
        "in_flight": 0,
        "dripping": 0,
    }
    sb.reset_stats()
    assert sb.stats()["requests"] == 0 and sb.stats()["by_route"] == {}


def test_http_stats_and_reset(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    client.get(sb.api_url + "/api/v1/orders/erp", headers=headers)
    assert client.get(sb.origin + "/__sandbox__/stats").json() == sb.stats()
    assert sb.stats()["requests"] == 1
    assert client.delete(sb.origin + "/__sandbox__/stats").json()["requests"] == 0
    assert sb.stats()["requests"] == 0


def test_http_faults_roundtrip(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    url = sb.origin + "/__sandbox__/faults"
    r = client.post(url, json={"error_rate": 1.0, "error_statuses": [502], "routes": ["orders_list"]})
    assert r.status_code == 200
    assert r.json()["error_rate"] == 1.0 and r.json()["routes"] == ["orders_list"]
    assert client.get(sb.api_url + "/api/v1/orders/erp", headers=headers).status_code == 502
    assert client.delete(url).json()["error_rate"] == 0.0
    assert client.get(sb.api_url + "/api/v1/orders/erp", headers=headers).status_code == 200
    client.post(
        url, json={"script": {"orders_list": [503, "drop"]}, "rate_limit": {"rps": 100, "burst": 100}}
    )
    snap = client.get(url).json()
    assert snap["script"] == {"orders_list": [503, "drop"]}
    assert snap["rate_limit"] == {"rps": 100, "burst": 100, "routes": []}
    assert client.get(sb.api_url + "/api/v1/orders/erp", headers=headers).status_code == 503
    bad = client.post(url, json={"error_rate": 5})
    assert bad.status_code == 400 and "error_rate" in bad.json()["error"]["message"]
    bad = client.post(url, json={"nonsense": 1})
    assert bad.status_code == 400


def test_http_truth(sb: EshopboxSandbox, client: httpx.Client) -> None:
    start = to_ms(DEFAULT_START)
    end = start + 3_600_000 * 30
    body = client.get(sb.origin + "/__sandbox__/truth/orders", params={"start": start, "end": end}).json()
    want = sb.truth_order_item_ids(start, end)
    assert body == {"count": len(want), "orderItemIDs": sorted(want)}
    iso = client.get(
        sb.origin + "/__sandbox__/truth/orders",
        params={"start": "2026-11-01T00:00:00Z", "end": end, "full": 1},
    ).json()
    assert {r["orderItemID"] for r in iso["rows"]} == want


def test_http_revoke_clock_info(client: httpx.Client) -> None:
    with EshopboxSandbox(orders=20, seed=9, token_ttl=100) as sb:
        tok = mint(sb, client)
        h = {"Authorization": f"Bearer {tok}"}
        assert client.post(sb.origin + "/__sandbox__/revoke", json={}).json() == {"revoked": 1}
        assert client.get(sb.wms_url + "/api/order/SHOP-100000", headers=h).json() == {
            "message": "Expired token"
        }
        tok = mint(sb, client)
        before = client.get(sb.origin + "/__sandbox__/clock").json()["now_ms"]
        after = client.post(sb.origin + "/__sandbox__/clock", json={"advance_s": 100}).json()["now_ms"]
        assert after - before >= 100_000
        r = client.get(sb.wms_url + "/api/order/SHOP-100000", headers={"Authorization": f"Bearer {tok}"})
        assert r.json() == {"message": "Expired token"}
        info = client.get(sb.origin + "/__sandbox__/info").json()
        assert info["api_url"] == sb.api_url and info["connection"]["password"] == sb.client_secret


def test_unknown_route_and_method(sb: EshopboxSandbox, client: httpx.Client) -> None:
    r = client.get(sb.origin + "/wms/api/nothing")
    assert (r.status_code, r.json()) == (404, {"message": "Not Found"})
    r = client.get(sb.origin + "/__sandbox__/nothing")
    assert (r.status_code, r.json()) == (404, {"message": "Not Found"})
    assert sb.stats()["by_route"] == {"unknown": 1}


def test_data_window_python_and_http(sb: EshopboxSandbox, client: httpx.Client) -> None:
    start, end = sb.data_window
    assert (start, end) == (DEFAULT_START, datetime(2026, 11, 8, tzinfo=timezone.utc))
    lo, hi = to_ms(start), to_ms(end)
    store = sb.store
    with store.lock:
        seeded = [r["updatedAt"] for r in store.rows.values() if r["customerOrderNumber"].startswith("SHOP-")]
        assert seeded and lo <= min(seeded) and max(seeded) < hi
    info = client.get(sb.origin + "/__sandbox__/info").json()["data_window"]
    assert info == {
        "start": "2026-11-01T00:00:00Z",
        "end": "2026-11-08T00:00:00Z",
        "start_ms": lo,
        "end_ms": hi,
    }
    other = EshopboxSandbox(orders=5, seed=1, start=datetime(2025, 1, 2, 3, tzinfo=timezone.utc), days=2)
    assert other.data_window == (
        datetime(2025, 1, 2, 3, tzinfo=timezone.utc),
        datetime(2025, 1, 4, 3, tzinfo=timezone.utc),
    )
    with other.store.lock:
        stamps = [r["updatedAt"] for r in other.store.rows.values()] + list(
            other.store.stock_updated_ms.values()
        )
    assert all(to_ms(other.data_window[0]) <= t < to_ms(other.data_window[1]) for t in stamps)
