"""Retries, Retry-After, rate limit, fail-fast auth and response-shape checks (respx)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest
import respx

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.exceptions import EshopboxApiError, EshopboxAuthError
from airflow_provider_eshopbox.hooks._http import RateLimiter, RetryPolicy, parse_retry_after
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook

from .conftest import (
    API,
    AUTH_URL,
    CLIENT_SECRET,
    FAST,
    REFRESH_TOKEN,
    TOKEN_PREFIX,
    WMS,
    TokenMinter,
    conn_json,
)

ORDERS = f"{API}/api/v1/orders/erp"
PAGE = {"hits": [{"orderItemID": "1"}], "hasNext": False}


@pytest.fixture
def mock():
    with respx.mock(assert_all_called=False) as m:
        m.post(AUTH_URL).mock(side_effect=TokenMinter())
        yield m


def test_429_retry_after_is_honoured(mock, hook):
    route = mock.get(ORDERS).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "2"}, json={"message": "slow"}),
            httpx.Response(200, json=PAGE),
        ]
    )
    started = time.monotonic()
    assert hook.fetch_orders_page("(f)").hits == PAGE["hits"]
    waited = time.monotonic() - started
    print(f"Retry-After 2 -> waited {waited:.3f} s")
    assert waited >= 1.9 and route.call_count == 2


def test_503_twice_then_200_succeeds(mock, hook):
    route = mock.get(ORDERS).mock(
        side_effect=[httpx.Response(503, json={"message": "busy"})] * 2 + [httpx.Response(200, json=PAGE)]
    )
    assert hook.fetch_orders_page("(f)").page == 1 and route.call_count == 3


@pytest.mark.parametrize("attempts", [3, 5])
def test_persistent_500_fails_after_exact_attempts(mock, attempts):
    route = mock.get(ORDERS).respond(500, json={"error": {"message": "backend down", "code": 500}})
    hook = EshopboxHook(
        retry_policy=RetryPolicy(max_attempts=attempts, backoff_base=0.001, backoff_max=0.002)
    )
    with pytest.raises(EshopboxApiError) as info:
        hook.fetch_orders_page("(f)")
    assert route.call_count == attempts
    assert info.value.status == 500 and "backend down" in str(info.value)
    assert f"gave up after {attempts} attempts" in str(info.value) and "orders_list" in str(info.value)


def test_transport_errors_and_truncated_json_are_retried_for_get(mock, hook):
    route = mock.get(ORDERS).mock(side_effect=[
        httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"),
        httpx.Response(200, content=b'{"hits": [', headers={"content-type": "application/json"}),
        httpx.Response(200, json=PAGE),
    ])  # fmt: skip
    assert hook.fetch_orders_page("(f)").hits and route.call_count == 5


def test_html_error_gives_clear_message_without_snippet(mock, hook):
    mock.get(ORDERS).respond(403, content=b"<html><body>Forbidden by WAF secretstuff</body></html>",
                             headers={"content-type": "text/html"})  # fmt: skip
    with pytest.raises(EshopboxApiError) as info:
        hook.fetch_orders_page("(f)")
    assert (
        info.value.status == 403 and "text/html" in str(info.value) and "secretstuff" not in str(info.value)
    )


@pytest.mark.parametrize(
    "body",
    [{"hits": []}, {"hasNext": True}, {"hits": {}, "hasNext": False}, {"hits": [], "hasNext": "no"}, []],
)
def test_unexpected_orders_shape(mock, hook, body):
    mock.get(ORDERS).respond(200, json=body)
    with pytest.raises(EshopboxApiError, match="unexpected response shape") as info:
        hook.fetch_orders_page("(f)")
    assert "orders_list" in str(info.value)


def test_bare_has_next_false_is_an_empty_page(mock, hook):
    """``{"hasNext": false}`` without hits: a 1-based server's page=0 reply as [T2] saw it, so empty."""
    mock.get(ORDERS).respond(200, json={"hasNext": False})
    page = hook.fetch_orders_page("(f)")
    assert (page.hits, page.has_next) == ([], False)


def test_bad_credentials_fail_fast_with_one_call(hook):
    with respx.mock() as mock:
        token = mock.post(AUTH_URL).respond(
            400, json={"error": "invalid_grant", "error_description": "bad rt"}
        )
        with pytest.raises(EshopboxAuthError) as info:
            hook.fetch_orders_page("(f)")
    assert token.call_count == 1
    msg = str(info.value)
    assert "'eshopbox_default'" in msg and "invalid_grant: bad rt" in msg and "uninstalled" in msg


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"expires_in": 60}, "no access_token"),
        ({"access_token": "at-SECRET-x1", "expires_in": -5}, "positive"),
        ({"access_token": "at-SECRET-x2", "expires_in": "soon"}, "not a number"),
    ],
)  # fmt: skip
def test_unexpected_token_reply(hook, body, why):
    with respx.mock() as mock:
        mock.post(AUTH_URL).respond(200, json=body)
        with pytest.raises(EshopboxAuthError, match="unexpected reply") as info:
            hook.get_order("A-1")
    assert why in str(info.value) and "at-SECRET" not in str(info.value)


def test_rate_limit_holds_sync_and_async(monkeypatch, mock):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", conn_json(max_requests_per_second=10))
    mock.get(ORDERS).respond(200, json=PAGE)
    hook = EshopboxHook(retry_policy=FAST)
    hook.get_config()
    n = 11
    started = time.monotonic()
    for _ in range(5):
        hook.fetch_orders_page("(f)")

    async def rest():
        await asyncio.gather(*(hook.afetch_orders_page("(f)") for _ in range(n - 5)))

    asyncio.run(rest())
    elapsed = time.monotonic() - started
    print(f"{n} requests (+1 token call) at 10/s took {elapsed:.3f} s")
    assert elapsed >= (n - 1) / 10


def test_429s_have_their_own_budget_and_do_not_use_up_the_error_attempts(mock):
    throttled = [httpx.Response(429, headers={"Retry-After": "0"}, json={"message": "slow"})] * 7
    route = mock.get(ORDERS).mock(side_effect=[*throttled, httpx.Response(200, json=PAGE)])
    hook = EshopboxHook(retry_policy=RetryPolicy(max_attempts=3, backoff_base=0.001, backoff_max=0.002))
    assert hook.fetch_orders_page("(f)").hits == PAGE["hits"]
    assert route.call_count == 8


def test_429s_past_their_budget_fail_with_a_clear_error(mock):
    route = mock.get(ORDERS).respond(429, headers={"Retry-After": "0"}, json={"message": "slow down"})
    hook = EshopboxHook(retry_policy=RetryPolicy(max_throttled_attempts=4, backoff_base=0.001))
    with pytest.raises(EshopboxApiError, match=r"slow down \(gave up after 4 attempts\)") as info:
        hook.fetch_orders_page("(f)")
    assert info.value.status == 429 and route.call_count == 4


def test_a_429_holds_back_every_request_of_the_connection(mock, hook):
    """After one request is told to wait, requests beside it hold back too (two request intervals at
    the lowered rate, so the server's bucket refills) instead of piling on; the throttled request
    itself waits its whole Retry-After."""
    sent: list[tuple[str, float]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append((request.url.params["filters"], time.monotonic()))
        if len(sent) == 1:
            return httpx.Response(429, headers={"Retry-After": "1"}, json={"message": "slow"})
        return httpx.Response(200, json=PAGE)

    mock.get(ORDERS).mock(side_effect=answer)

    async def run() -> float:
        throttled = asyncio.create_task(hook.afetch_orders_page("(a)"))
        deadline = time.monotonic() + 5
        while not (hook._http and hook._http.summary.throttled) and time.monotonic() < deadline:
            await asyncio.sleep(0.001)  # until the client has read the 429
        assert hook._http is not None
        held = hook._http.limiter.held_for()
        await asyncio.gather(throttled, hook.afetch_orders_page("(b)"), hook.afetch_orders_page("(c)"))
        return held

    held = asyncio.run(run())
    now_holding_at = sent[0][1]
    after = {filters: round(at - now_holding_at, 3) for filters, at in sent[1:]}
    assert len(sent) == 4 and 0.05 < held < 1, (sent, held)
    assert min(after["(b)"], after["(c)"]) >= held, (after, held)  # none piled on during the pause
    assert after["(a)"] >= 0.95, after  # the Retry-After of the throttled request itself


def test_parse_retry_after_forms():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=7), usegmt=True), now) == 7.0
    assert parse_retry_after("garbage") is None and parse_retry_after(None) is None
    assert parse_retry_after("nan") is None and parse_retry_after("-5") == 0.0


def test_a_retry_after_beyond_the_cap_fails_at_once_with_what_eshopbox_asked(mock):
    """A day-long Retry-After fails the request now, saying so, instead of blocking the task for it."""
    route = mock.get(ORDERS).mock(
        return_value=httpx.Response(429, headers={"Retry-After": "86400"}, json={"message": "quota"})
    )
    hook = EshopboxHook(retry_policy=RetryPolicy(retry_after_max=300))
    started = time.monotonic()
    with pytest.raises(EshopboxApiError, match=r"asks us to wait 86400 s, more than the 300 s"):
        hook.fetch_orders_page("(a)")
    assert time.monotonic() - started < 5 and route.call_count == 1


def test_waiting_on_429s_without_retry_after_is_bounded_in_total(mock):
    """No Retry-After: backoff, but one request never waits longer than max_total_wait in all."""
    route = mock.get(ORDERS).mock(return_value=httpx.Response(429, json={"message": "slow down"}))
    policy = RetryPolicy(backoff_base=0.05, backoff_max=0.05, max_total_wait=0.3)
    with pytest.raises(EshopboxApiError, match=r"slow down \(gave up after waiting 0\.\d s between"):
        EshopboxHook(retry_policy=policy).fetch_orders_page("(a)")
    assert 6 <= route.call_count <= 14  # waits of 25-50 ms until 0.3 s are spent, far below 30 attempts


def test_post_is_never_retried_blindly(mock, hook, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", conn_json(external_channel_id="CH1"))
    route = mock.post(f"{WMS}/api/cancel-order").respond(503, json={"message": "busy"})
    from airflow_provider_eshopbox.exceptions import EshopboxAmbiguousWriteError

    with pytest.raises(EshopboxAmbiguousWriteError, match="may or may not"):
        EshopboxHook(retry_policy=FAST).cancel_order("A-1", "customer", [{"itemID": "1", "quantity": 1}])
    assert route.call_count == 1
    assert route.calls[0].request.headers.get("ProxyHost") is None  # WMS host: no ProxyHost


def test_headers_and_paths(mock, hook):
    orders = mock.get(ORDERS).respond(200, json=PAGE)
    product = mock.get(f"{API}/product-engine/api/v1/products/A%2FB%201").respond(200, json={"esin": "E1"})
    hook.fetch_orders_page(api.orders_window_filter(1, 2), fields=["account", "orderItemID"])
    assert hook.get_product("A/B 1") == {"esin": "E1"}
    request = orders.calls[0].request
    assert request.headers["ProxyHost"] == "acme" and request.headers["Authorization"].startswith("Bearer ")
    assert request.url.params["filters"] == "(updatedAt >= 1 AND updatedAt < 2)"
    assert request.url.params["fields"] == "account,orderItemID" and request.url.params["per_page"] == "100"
    assert product.called


def test_a_server_slower_than_the_timeout_fails_both_paths_after_the_attempts(monkeypatch, caplog):
    """The connection's timeout reaches the wire on the sync client and on the bare async transports.

    Attempts are counted on the client: on a loaded machine one of them may time out while
    connecting (the same 0.3 s applies), and then the server never sees it.
    """
    import json
    import logging

    from airflow_provider_eshopbox.sandbox import EshopboxSandbox

    caplog.set_level(logging.DEBUG, logger="airflow_provider_eshopbox.hooks._http")
    with EshopboxSandbox(order_items=50, seed=5) as sb:
        conn = json.loads(sb.connection_json())
        conn["extra"]["timeout"] = 0.3
        monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", json.dumps(conn))
        hook = EshopboxHook(retry_policy=FAST)
        everything = api.orders_window_filter(0, 2**42)
        assert hook.fetch_orders_page(everything).hits  # fast enough without the fault
        sb.faults.configure(latency_ms=2000)  # every reply now comes after the 0.3 s timeout
        caplog.clear()
        with pytest.raises(EshopboxApiError, match=r"(Read|Connect)Timeout.*gave up after 5 attempts"):
            hook.fetch_orders_page(everything)
        with pytest.raises(EshopboxApiError, match=r"(Read|Connect)Timeout.*gave up after 5 attempts"):
            asyncio.run(hook.afetch_orders_page(everything))
        retries = [r.getMessage() for r in caplog.records if "request retry" in r.getMessage()]
        assert [m.split()[3] for m in retries] == ["1", "2", "3", "4", "5"] * 2, retries  # 5 attempts each
        assert all("Timeout" in m for m in retries), retries
        assert sb.stats()["by_route"]["orders_list"] <= 1 + 2 * 5  # no hidden extra attempts


def test_a_proxy_from_the_environment_carries_sync_and_async_requests(monkeypatch):
    """Workers whose only way out is HTTP(S)_PROXY: both paths must go through it, as httpx's clients do."""
    import socketserver
    import threading

    from airflow_provider_eshopbox.hooks._http import HttpClient, RequestSpec
    from airflow_provider_eshopbox.hooks._loop import run_sync

    seen: list[str] = []

    class Proxy(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            seen.append(self.rfile.readline().decode().strip())
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
            body = b'{"hits": [], "hasNext": false}'
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        client = HttpClient(timeout=5, policy=FAST, limiter=RateLimiter(None))
        spec = RequestSpec(api.ORDERS_LIST, "http://orders.eshopbox.invalid/api/v1/orders/erp")

        async def once() -> int:
            reply = await client.send(spec)
            await client.aclose()
            return reply.status

        assert asyncio.run(once()) == 200  # a caller's own loop (an operator, a triggerer)
        assert run_sync(once()) == 200  # the hook's private loop (its sync methods)
        assert seen == ["GET http://orders.eshopbox.invalid/api/v1/orders/erp HTTP/1.1"] * 2
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [400, 422, 503])
def test_an_echoing_server_cannot_get_half_a_secret_past_the_cut(mock, hook, status):
    """Messages are cut to api.ERROR_MESSAGE_MAX_CHARS; known secrets are redacted before the cut, so
    neither a whole secret nor the part of one that straddles the cut reaches the error."""

    def echo(request: httpx.Request) -> httpx.Response:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        # Each secret straddles the 300-character cut in one of the messages.
        pad = "x" * (api.ERROR_MESSAGE_MAX_CHARS - 10)
        message = f"{pad} {CLIENT_SECRET} {REFRESH_TOKEN} {token} {pad}"
        return httpx.Response(status, json={"message": message, "echo": {"token": token}})

    mock.get(ORDERS).mock(side_effect=echo)
    with pytest.raises(EshopboxApiError) as info:
        hook.fetch_orders_page("(a)")
    text = f"{info.value} {info.value.details!r}"
    for secret in (CLIENT_SECRET, REFRESH_TOKEN, *(t for t in SEEN_TOKENS_NOW(hook))):
        for cut in range(6, len(secret) + 1):  # every piece of 6 characters or more, from the start
            assert secret[:cut] not in text, (secret[:4], cut)
    assert "***" in text


def SEEN_TOKENS_NOW(hook: EshopboxHook) -> list[str]:
    """The access tokens this test's hook was given (its HTTP client redacts exactly these)."""
    assert hook._http is not None
    return [s for s in hook._http.secrets if s.startswith(TOKEN_PREFIX)]
