"""Token exchange, two-level cache, single-flight, expiry, 401 recovery (live server + respx)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import respx

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.exceptions import EshopboxAuthError
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
from airflow_provider_eshopbox.hooks.token_cache import CachedToken, FileTokenStore, TokenCache

from . import _mp_worker
from .conftest import API, AUTH_URL, CLIENT_SECRET, FAST, REFRESH_TOKEN, TokenMinter, conn_json, make_live

ALL = api.orders_window_filter(0, 2**42)
ORDERS = f"{API}/api/v1/orders/erp"
PAGE = {"hits": [{"orderItemID": "1"}], "hasNext": False}


def test_token_request_body_is_exactly_documented():
    minter = TokenMinter()
    with respx.mock() as mock:
        mock.post(AUTH_URL).mock(side_effect=minter)
        mock.get(ORDERS).respond(200, json=PAGE)
        EshopboxHook(retry_policy=FAST).fetch_orders_page("(f)")
    assert minter.bodies == [{"grant_type": "refresh_token", "client_id": "client-id-42",
                              "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}]  # fmt: skip


def test_50_calls_in_one_process_make_one_exchange(live, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", live.connection_json())
    hook = EshopboxHook(retry_policy=FAST)
    with ThreadPoolExecutor(10) as pool:  # 20 racing threads on a cold cache
        list(pool.map(lambda _: hook.fetch_orders_page(ALL, per_page=1), range(20)))

    async def racing_coroutines():
        other = EshopboxHook(retry_policy=FAST)
        await asyncio.gather(*(other.afetch_orders_page(ALL, per_page=1) for _ in range(20)))
        await other.aclose()

    asyncio.run(racing_coroutines())
    for _ in range(10):
        hook.fetch_orders_page(ALL, per_page=1)
    print(f"50 calls -> {live.exchanges()} token exchange(s)")
    assert live.exchanges() == 1


def test_cold_coroutines_single_flight(live, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", live.connection_json(token_cache="process"))

    async def main():
        hook = EshopboxHook(retry_policy=FAST)
        await asyncio.gather(*(hook.afetch_orders_page(ALL, per_page=1) for _ in range(15)))
        await hook.aclose()

    asyncio.run(main())
    assert live.exchanges() == 1


def _run_processes(conn: str, cache_dir: Path, n: int = 8) -> None:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["airflow_provider_eshopbox.hooks.eshopbox", "tests.hook._mp_worker"])
    barrier = ctx.Barrier(n)
    procs = [ctx.Process(target=_mp_worker.work, args=(conn, str(cache_dir), barrier, 3)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * n


def test_8_processes_share_one_exchange_and_process_mode_does_not(live, tmp_path):
    _run_processes(live.connection_json(), tmp_path / "shared")
    shared = live.exchanges()
    _run_processes(live.connection_json(token_cache="process"), tmp_path / "off")
    per_process = live.exchanges() - shared
    print(f"8 processes: shared cache -> {shared} exchange(s); process-only -> {per_process}")
    assert shared == 1 and per_process == 8


def test_expired_token_is_replaced_before_use(monkeypatch):
    server = make_live(token_ttl=2, token_latency=0)  # skew = 1 s for a 2 s token
    try:
        monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", server.connection_json())
        hook = EshopboxHook(retry_policy=FAST)
        hook.fetch_orders_page(ALL, per_page=1)
        hook.fetch_orders_page(ALL, per_page=1)
        assert server.exchanges() == 1
        time.sleep(1.05)
        hook.fetch_orders_page(ALL, per_page=1)
        assert server.exchanges() == 2
    finally:
        server.close()


def test_revoked_mid_run_one_refresh_and_run_goes_on(live, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", live.connection_json())
    hook = EshopboxHook(retry_policy=FAST)
    pages = []
    for page in hook.iter_order_pages(ALL, per_page=10):
        pages.append(page)
        if len(pages) == 1:
            live.revoke()
    assert len(pages) >= 3 and not pages[-1].has_next
    assert live.exchanges() == 2


def test_second_401_is_a_clear_auth_error():
    minter = TokenMinter()
    with respx.mock() as mock:
        mock.post(AUTH_URL).mock(side_effect=minter)
        route = mock.get(ORDERS).respond(401, json={"message": "Expired token"})
        with pytest.raises(EshopboxAuthError) as info:
            EshopboxHook(retry_policy=FAST).fetch_orders_page("(f)")
    assert minter.count == 2 and route.call_count == 2
    msg = str(info.value)
    assert "'eshopbox_default'" in msg and "orders_list" in msg and "uninstalled" in msg
    assert "client_id/client_secret/refresh_token" in msg


async def test_invalidate_keeps_a_fresher_token_from_another_process(tmp_path):
    store = FileTokenStore(tmp_path / "c")
    cache = TokenCache(store)
    key = "conn:abc"
    now = time.time()

    async def minted(token: str) -> CachedToken:
        return CachedToken.from_lifetime(token, 3600, now)

    async def must_not_mint() -> CachedToken:
        raise AssertionError("must not mint")

    old = await cache.aget(key, lambda: minted("at-SECRET-old"))
    store.write(key, CachedToken.from_lifetime("at-SECRET-new", 3600, now))  # another process replaced it
    await cache.ainvalidate(key, old.access_token)
    assert store.read(key).access_token == "at-SECRET-new"
    assert (await cache.aget(key, must_not_mint)).access_token == "at-SECRET-new"
    await cache.ainvalidate(key, "at-SECRET-new")
    assert store.read(key) is None


def test_file_store_is_private_and_holds_no_credentials(tmp_path, monkeypatch):
    directory = tmp_path / "tokens"
    with respx.mock() as mock:
        mock.post(AUTH_URL).mock(side_effect=TokenMinter())
        mock.get(ORDERS).respond(200, json=PAGE)
        EshopboxHook(retry_policy=FAST).fetch_orders_page("(f)")
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    files = list(directory.glob("*.json"))
    assert len(files) == 1 and stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    data = json.loads(files[0].read_text())
    assert set(data) == {"key", "access_token", "expires_at", "refresh_at"}
    text = files[0].read_text()
    assert CLIENT_SECRET not in text and REFRESH_TOKEN not in text


def test_process_mode_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", conn_json(token_cache="process"))
    with respx.mock() as mock:
        mock.post(AUTH_URL).mock(side_effect=TokenMinter())
        mock.get(ORDERS).respond(200, json=PAGE)
        EshopboxHook(retry_policy=FAST).fetch_orders_page("(f)")
    assert not list((tmp_path / "tokens").glob("*.json"))


def test_missing_expires_in_defaults_to_a_day_and_skew_rules():
    with respx.mock() as mock:
        mock.post(AUTH_URL).respond(200, json={"access_token": "at-SECRET-noexp"})
        mock.get(ORDERS).respond(200, json=PAGE)
        EshopboxHook(retry_policy=FAST).fetch_orders_page("(f)")
    (token,) = TokenCache._memory.values()
    assert abs(token.expires_at - time.time() - api.DEFAULT_EXPIRES_IN) < 5
    assert token.expires_at - token.refresh_at == pytest.approx(120)
    assert api.refresh_skew(86400) == 120 and api.refresh_skew(100) == 50


def test_rotated_refresh_token_is_used_and_not_logged(caplog, capfd):
    new_rt = "rt-SECRET-rotated-777"
    from .conftest import SEEN_TOKENS

    SEEN_TOKENS.add(new_rt)
    minter = TokenMinter(extra={"refresh_token": new_rt})
    with respx.mock() as mock:
        mock.post(AUTH_URL).mock(side_effect=minter)
        mock.get(ORDERS).mock(side_effect=[httpx.Response(200, json=PAGE), httpx.Response(401, json={}),
                                           httpx.Response(200, json=PAGE)])  # fmt: skip
        hook = EshopboxHook(retry_policy=FAST)
        hook.fetch_orders_page("(f)")
        hook.fetch_orders_page("(f)")
    assert [b["refresh_token"] for b in minter.bodies] == [REFRESH_TOKEN, new_rt]
    out, err = capfd.readouterr()  # the hook logs through Airflow's structlog to stdout
    text = out + err + caplog.text
    assert "new refresh token" in text and "warning" in text.lower()
    assert new_rt not in text and REFRESH_TOKEN not in text


def test_threads_and_coroutines_share_one_lock(live, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", live.connection_json(token_cache="process"))
    hook = EshopboxHook(retry_policy=FAST)
    hook.get_config()
    threads = [threading.Thread(target=hook.fetch_orders_page, args=(ALL, 1, 1)) for _ in range(4)]
    for t in threads:
        t.start()

    async def main():
        await asyncio.gather(*(hook.afetch_orders_page(ALL, per_page=1) for _ in range(4)))

    asyncio.run(main())
    for t in threads:
        t.join()
    assert live.exchanges() == 1


def test_a_fact_holds_for_its_token_on_the_host_and_not_for_the_next(tmp_path: Path) -> None:
    """TokenCache.knows/learn: what a token's lifetime need check once (the orders page-0 check)."""
    now = time.time()
    token, next_token = (CachedToken.from_lifetime(t, 86400, now) for t in ("at-1", "at-2"))
    cache = TokenCache(FileTokenStore(tmp_path))
    assert not cache.knows("k", token, "pages from 1")
    cache.learn("k", token, "pages from 1")
    TokenCache.clear_process_cache()  # another process of the host: only the file knows it
    other = TokenCache(FileTokenStore(tmp_path))
    assert other.knows("k", token, "pages from 1")
    assert not other.knows("k", next_token, "pages from 1")  # a new token checks again
    assert not other.knows("k", token, "another fact") and not other.knows("k2", token, "pages from 1")
    TokenCache.clear_process_cache()
    assert not TokenCache(None).knows("k", token, "pages from 1")  # token_cache=process: per process
    [fact] = tmp_path.glob("*.fact")
    assert stat.S_IMODE(fact.stat().st_mode) == 0o600 and b"at-1" not in fact.read_bytes()
