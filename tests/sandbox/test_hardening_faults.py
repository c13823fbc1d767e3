"""Faults for hook hardening: drip (slow trickle), echo_secrets, order_get_lag_s, store-then-fail."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox

from .conftest import mint
from .test_wms import _auth, _order


def _wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_drip_body_trickles_under_a_per_read_timeout(sb: EshopboxSandbox, token: str) -> None:
    sb.faults.configure(drip_bytes_per_s=40, drip_routes=["order_get"])
    url = sb.wms_url + "/api/order/SHOP-100000"
    reads: list[bytes] = []
    with httpx.Client(timeout=httpx.Timeout(10, read=0.5)) as c:
        t0 = time.monotonic()
        with c.stream("GET", url, headers=_auth(token)) as r:
            assert r.status_code == 200  # status and headers came at once
            assert int(r.headers["content-length"]) == 40 * 600  # padded to last drip_max_s
            for chunk in r.iter_raw():
                reads.append(chunk)
                if time.monotonic() - t0 > 1.0:
                    break
    got = b"".join(reads)
    assert len(reads) >= 8 and 20 <= len(got) <= 80  # about 40 B/s, in many small reads
    assert got.strip() == b""  # the whitespace lead-in of a JSON body
    _wait_for(lambda: sb.stats()["dripping"] == 0)  # the client left: the drip ended
    assert sb.stats()["faults_injected"] == {"drip": 1}


def test_drip_completes_after_max_s_with_valid_json(
    sb: EshopboxSandbox, client: httpx.Client, token: str
) -> None:
    sb.faults.configure(drip_bytes_per_s=100, drip_max_s=0.4)
    t0 = time.monotonic()
    r = client.get(sb.wms_url + "/api/order/NOPE", headers=_auth(token))
    assert time.monotonic() - t0 >= 0.3
    assert (r.status_code, r.json()) == (404, {"message": "Not Found"})
    assert len(r.content) == 40


def _raw_get(sb: EshopboxSandbox, path: str, token: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", sb.port), timeout=0.5)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    return s


def test_drip_headers_phase_trickles_the_head(sb: EshopboxSandbox, token: str) -> None:
    sb.faults.configure(drip_bytes_per_s=50, drip_phase="headers")
    s = _raw_get(sb, "/wms/api/order/SHOP-100000", token)
    got = b""
    t0 = time.monotonic()
    reads = 0
    with s:
        while time.monotonic() - t0 < 1.0:
            got += s.recv(4096)  # a socket.timeout (0.5 s per read) fails the test
            reads += 1
        assert got.startswith(b"HTTP/1.1 200 OK\r\nx-sandbox-drip: .")
        assert b"\r\n\r\n" not in got and reads >= 8 and 30 <= len(got) <= 90
    _wait_for(lambda: sb.stats()["dripping"] == 0)


def test_drip_headers_phase_completes_over_tls() -> None:
    with EshopboxSandbox(orders=20, seed=5, tls=True) as sb:
        with httpx.Client(verify=sb.ssl_context(), timeout=httpx.Timeout(10, read=0.5)) as c:
            tok = mint(sb, c)
            sb.faults.configure(drip_bytes_per_s=100, drip_phase="headers", drip_max_s=0.3)
            r = c.get(sb.wms_url + "/api/order/SHOP-100000", headers=_auth(tok))
        assert r.status_code == 200 and r.json()["customerOrderNumber"] == "SHOP-100000"
        assert r.headers["x-sandbox-drip"] == "." * 30 and r.headers["connection"] == "close"


def test_stop_ends_a_running_drip_promptly(client: httpx.Client) -> None:
    sb = EshopboxSandbox(orders=20, seed=5).start()
    try:
        tok = mint(sb, client)
        sb.faults.configure(drip_bytes_per_s=20)
        outcome: list[BaseException | int] = []

        def read() -> None:
            try:
                with httpx.Client(timeout=httpx.Timeout(30, read=1.0)) as c:
                    outcome.append(
                        c.get(sb.wms_url + "/api/order/SHOP-100000", headers=_auth(tok)).status_code
                    )
            except BaseException as exc:
                outcome.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        _wait_for(lambda: sb.stats()["dripping"] == 1)
    finally:
        t0 = time.monotonic()
        sb.stop()
        stopped_in = time.monotonic() - t0
    reader.join(5)
    assert not reader.is_alive()
    assert stopped_in < 1.5  # well under uvicorn's 2 s graceful-shutdown cancel
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.TransportError)
    assert not [t for t in threading.enumerate() if t.name == f"eshopbox-sandbox-{sb.port}"]


def _token_body(sb: EshopboxSandbox, **over: str) -> dict[str, str]:
    body = {
        "grant_type": "refresh_token",
        "client_id": sb.client_id,
        "client_secret": sb.client_secret,
        "refresh_token": sb.refresh_token,
    }
    return {**body, **over}


def test_echo_secrets_on_error_replies(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    sb.faults.configure(echo_secrets=True)
    bad_rt = "sbx-rt-" + "f" * 40
    r = client.post(sb.auth_url, json=_token_body(sb, refresh_token=bad_rt))
    assert r.status_code == 401 and r.json()["error"] == "invalid_grant"
    text = r.json()["error_description"]
    assert len(text) > 300
    for secret in (sb.client_secret, bad_rt):
        assert text.index(secret) > 60 and text.index(secret) + len(secret) < len(text) - 60
    form = client.post(sb.auth_url, data=_token_body(sb, client_secret="sbx-secret-wrong"))
    assert "client_secret=sbx-secret-wrong" in form.json()["error_description"]
    sb.faults.script("orders_list", [503])
    r = client.get(sb.api_url + "/api/v1/orders/erp", headers={**_auth(token), "ProxyHost": "acme"})
    assert r.status_code == 503 and f"token={token}" in r.json()["error"]["message"]
    assert r.json()["error"]["errors"][0]["message"] == r.json()["error"]["message"]
    r = client.get(sb.wms_url + "/api/order/NOPE", headers=_auth(token))
    assert r.status_code == 404 and f"token={token}" in r.json()["message"]
    ok = client.get(sb.wms_url + "/api/order/SHOP-100000", headers=_auth(token))
    assert ok.status_code == 200 and token not in ok.text
    assert sb.stats()["faults_injected"] == {"echo_secrets": 4, "error": 1}


def test_echo_secrets_routes_answer_400(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    sb.faults.configure(echo_secrets_routes=["order_get"])
    r = client.get(sb.wms_url + "/api/order/SHOP-100000", headers=_auth(token))
    assert r.status_code == 400 and f"token={token}" in r.json()["error"]["message"]
    r = client.post(sb.auth_url, json=_token_body(sb))
    assert r.status_code == 200 and sb.client_secret not in r.text


def test_order_get_lags_behind_create(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    sb.faults.configure(order_get_lag_s=30)
    assert (
        client.post(sb.wms_url + "/api/order", json=_order("LAG-1"), headers=_auth(token)).status_code == 200
    )
    assert client.get(sb.wms_url + "/api/order/LAG-1", headers=_auth(token)).status_code == 404
    seeded = client.get(sb.wms_url + "/api/order/SHOP-100000", headers=_auth(token))
    assert seeded.status_code == 200  # only orders created through the API lag
    sb.clock.advance(30)
    r = client.get(sb.wms_url + "/api/order/LAG-1", headers=_auth(token))
    assert r.status_code == 200 and r.json()["customerOrderNumber"] == "LAG-1"
    assert sb.stats()["faults_injected"] == {"order_get_lag": 1}


def test_create_store_then_fail(sb: EshopboxSandbox, client: httpx.Client, token: str) -> None:
    sb.faults.configure(create_store_then_fail=1.0)
    r = client.post(sb.wms_url + "/api/order", json=_order("STF-1"), headers=_auth(token))
    assert r.status_code == 500 and sb.orders_created()["STF-1"] == 1
    again = client.post(sb.wms_url + "/api/order", json=_order("STF-1"), headers=_auth(token))
    assert again.status_code == 422 and "already been taken" in again.text
    bad = client.post(sb.wms_url + "/api/order", json=_order("STF-2", items=None), headers=_auth(token))
    assert bad.status_code == 422 and "STF-2" not in sb.orders_created()
    sb.faults.clear()
    sb.faults.script("order_create", ["store_then_fail"])
    assert (
        client.post(sb.wms_url + "/api/order", json=_order("STF-3"), headers=_auth(token)).status_code == 500
    )
    assert client.get(sb.wms_url + "/api/order/STF-3", headers=_auth(token)).status_code == 200
    assert (
        client.post(sb.wms_url + "/api/order", json=_order("STF-4"), headers=_auth(token)).status_code == 200
    )


def test_new_knobs_over_http_snapshot_and_clear(sb: EshopboxSandbox, client: httpx.Client) -> None:
    url = sb.origin + "/__sandbox__/faults"
    knobs = {
        "drip_bytes_per_s": 8.0,
        "drip_phase": "headers",
        "drip_max_s": 60.0,
        "drip_routes": ["orders_list"],
        "echo_secrets": True,
        "echo_secrets_routes": ["token"],
        "order_get_lag_s": 2.5,
        "create_store_then_fail": 0.5,
    }
    snap = client.post(url, json=knobs).json()
    assert {k: snap[k] for k in knobs} == knobs
    assert sb.faults.snapshot() == snap
    cleared = client.delete(url).json()
    assert cleared["drip_bytes_per_s"] == 0 and cleared["echo_secrets"] is False
    assert cleared["order_get_lag_s"] == 0 and cleared["echo_secrets_routes"] is None
    assert client.post(url, json={"drip_phase": "trailers"}).status_code == 400
    with pytest.raises(ValueError, match="create_store_then_fail"):
        sb.faults.configure(create_store_then_fail=2)
