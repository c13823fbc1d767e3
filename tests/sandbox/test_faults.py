"""Fault injection: scripted one-shots, random kinds (deterministic), rate limit, latency, mutate, routes."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from airflow_provider_eshopbox.sandbox.data import DEFAULT_START, to_ms

from .conftest import ws_headers

START = to_ms(DEFAULT_START)


def _list(sb: EshopboxSandbox, client: httpx.Client, headers: dict, **params: object) -> httpx.Response:
    return client.get(sb.api_url + "/api/v1/orders/erp", params=params, headers=headers)  # type: ignore[arg-type]


def test_scripted_statuses_then_normal(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    sb.faults.script("orders_list", [503, 503, 429, 500])
    got = [_list(sb, client, headers) for _ in range(5)]
    assert [r.status_code for r in got] == [503, 503, 429, 500, 200]
    assert got[0].json() == {
        "error": {
            "errors": [{"domain": "global", "reason": "backendError", "message": "Backend Error"}],
            "code": 503,
            "message": "Backend Error",
        }
    }
    assert got[2].json() == {"message": "Too Many Requests"} and got[2].headers["Retry-After"] == "1"
    stats = sb.stats()
    assert stats["faults_injected"] == {"error": 3, "throttle": 1}
    assert stats["by_status"] == {"200": 1, "429": 1, "500": 1, "503": 2}


def test_script_only_hits_its_route(
    sb: EshopboxSandbox, client: httpx.Client, token: str, headers: dict
) -> None:
    sb.faults.script("order_get", [502])
    assert _list(sb, client, headers).status_code == 200
    r = client.get(sb.wms_url + "/api/order/SHOP-100000", headers=headers)
    assert r.status_code == 502
    assert client.get(sb.wms_url + "/api/order/SHOP-100000", headers=headers).status_code == 200


def test_drop_is_a_transport_error(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    sb.faults.script("orders_list", ["drop"])
    with pytest.raises(httpx.RemoteProtocolError):
        _list(sb, client, headers)
    assert _list(sb, client, headers).status_code == 200
    assert sb.stats()["by_status"] == {"200": 1, "dropped": 1}
    assert sb.stats()["faults_injected"] == {"drop": 1}


def test_truncate_gives_invalid_json(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    sb.faults.script("orders_list", ["truncate"])
    r = _list(sb, client, headers)
    assert r.status_code == 200
    assert int(r.headers["content-length"]) == len(r.content)
    with pytest.raises(json.JSONDecodeError):
        r.json()
    full = _list(sb, client, headers)
    assert full.content.startswith(r.content) and len(r.content) == len(full.content) // 2


def test_hang_times_out_client(sb: EshopboxSandbox, headers: dict) -> None:
    sb.faults.configure(hang_s=0.6)
    sb.faults.script("orders_list", ["hang"])
    with httpx.Client(timeout=0.2) as c, pytest.raises(httpx.ReadTimeout):
        _list(sb, c, headers)
    assert sb.stats()["faults_injected"] == {"hang": 1}
    assert sb.stats()["in_flight"] == 1  # the server is still sleeping on it
    deadline = time.monotonic() + 5
    while sb.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sb.stats()["in_flight"] == 0


def test_throttle_rate_with_retry_after(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    sb.faults.configure(throttle_rate=1.0, retry_after=3)
    r = _list(sb, client, headers)
    assert (r.status_code, r.headers["Retry-After"], r.json()) == (429, "3", {"message": "Too Many Requests"})
    sb.faults.clear()
    assert _list(sb, client, headers).status_code == 200


def test_random_errors_are_deterministic(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    def run() -> list[int]:
        sb.faults.configure(error_rate=0.5, error_statuses=(500, 503), seed=42)
        return [_list(sb, client, headers, per_page=1).status_code for _ in range(16)]

    first, second = run(), run()
    assert first == second
    assert {200, 500, 503} == set(first)


def test_routes_limit_random_faults(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    sb.faults.configure(error_rate=1.0, error_statuses=(502,), routes=["order_get"])
    assert _list(sb, client, headers).status_code == 200
    assert client.get(sb.wms_url + "/api/order/SHOP-100000", headers=headers).status_code == 502
    with pytest.raises(ValueError, match="unknown route"):
        sb.faults.configure(routes=["nope"])


def test_token_route_faults(sb: EshopboxSandbox, client: httpx.Client) -> None:
    sb.faults.script("token", [503])
    body = {
        "grant_type": "refresh_token",
        "client_id": sb.client_id,
        "client_secret": sb.client_secret,
        "refresh_token": sb.refresh_token,
    }
    assert client.post(sb.auth_url, json=body).status_code == 503
    assert client.post(sb.auth_url, json=body).status_code == 200
    assert sb.stats()["token_requests"] == 2 and sb.stats()["token_exchanges"] == 1


def test_rate_limit_token_bucket(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    sb.faults.rate_limit(rps=0.5, burst=2)
    codes = [_list(sb, client, headers, per_page=1) for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[2].headers["Retry-After"] == "2"
    assert sb.stats()["faults_injected"] == {"rate_limit": 1}


def test_drop_rate_and_truncate_rate(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    sb.faults.configure(drop_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        _list(sb, client, headers)
    sb.faults.configure(truncate_rate=1.0)
    with pytest.raises(json.JSONDecodeError):
        _list(sb, client, headers).json()
    sb.faults.configure()
    assert _list(sb, client, headers).json()["hasNext"] is True


def test_latency_is_concurrent(sb: EshopboxSandbox, token: str) -> None:
    sb.faults.configure(latency_ms=300)

    async def run() -> float:
        async with httpx.AsyncClient(timeout=10) as c:
            t = time.perf_counter()
            rs = await asyncio.gather(
                *[c.get(sb.api_url + "/api/v1/orders/erp", headers=ws_headers(token)) for _ in range(8)]
            )
            assert {r.status_code for r in rs} == {200}
            return time.perf_counter() - t

    elapsed = asyncio.run(run())
    assert elapsed >= 0.3  # the latency was applied
    stats = sb.stats()
    assert stats["max_concurrent"] == 8  # 8 x 300 ms served in parallel (counted, not timed)
    assert stats["faults_injected"] == {"latency": 8}


def test_mutate_moves_matching_rows(sb: EshopboxSandbox, client: httpx.Client, headers: dict) -> None:
    lo, hi = START + 4 * 86_400_000, START + 5 * 86_400_000
    before = sb.truth_order_item_ids(lo, hi)
    sb.faults.configure(mutate_rate=1.0, mutate_rows=3)
    t0 = sb.clock.now_ms()
    body = _list(sb, client, headers, filters=f"updatedAt >= {lo} AND updatedAt < {hi}", per_page=100).json()
    after = sb.truth_order_item_ids(lo, hi)
    moved = before - after
    assert len(moved) == 3 and after < before
    assert moved <= sb.truth_order_item_ids(t0, None)
    assert not moved & {h["orderItemID"] for h in body["hits"]}
    assert sb.stats()["faults_injected"] == {"mutate": 1}


def test_faults_never_touch_control_routes(sb: EshopboxSandbox, client: httpx.Client) -> None:
    sb.faults.configure(error_rate=1.0, drop_rate=1.0)
    sb.faults.rate_limit(rps=0.01, burst=1)
    for _ in range(3):
        assert client.get(sb.origin + "/__sandbox__/stats").status_code == 200
    assert sb.stats()["requests"] == 0


def test_invalid_fault_settings(sb: EshopboxSandbox) -> None:
    with pytest.raises(ValueError, match="error_rate"):
        sb.faults.configure(error_rate=2)
    with pytest.raises(ValueError, match="script step"):
        sb.faults.script("orders_list", ["explode"])
    with pytest.raises(ValueError, match="rps"):
        sb.faults.rate_limit(0)
