"""The pool's network streams (hooks/_network.py): a closed idle connection is still seen and not reused."""

from __future__ import annotations

import asyncio
import socket

import httpcore
import httpx

from airflow_provider_eshopbox.hooks._http import tls_context
from airflow_provider_eshopbox.hooks._network import Backend, readable, transport


def test_readable_is_true_for_data_and_for_a_closed_peer_only() -> None:
    mine, peer = socket.socketpair()
    try:
        assert readable(mine) is False
        peer.sendall(b"x")
        assert readable(mine) is True
        mine.recv(1)
        assert readable(mine) is False
        peer.close()
        assert readable(mine) is True  # EOF: what a server closing an idle keep-alive connection looks like
    finally:
        mine.close()
    assert readable(mine) is True and readable(None) is True


def test_the_transport_pool_runs_on_the_backend_with_httpx_limits() -> None:
    """Fails when an httpx release moves its pool: then the CPU saving is lost, not the requests."""
    limits = httpx.Limits(max_connections=7, max_keepalive_connections=3, keepalive_expiry=2.5)
    pool = transport(tls_context(True), limits)._pool
    assert isinstance(pool, httpcore.AsyncConnectionPool)
    assert isinstance(pool._network_backend, Backend)
    assert (pool._max_connections, pool._max_keepalive_connections, pool._keepalive_expiry) == (7, 3, 2.5)


async def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    """The server answers one request per connection, keep-alive in its headers, then hangs up.
    The next request must go on a new connection: httpcore asks ``is_readable`` of the idle one."""
    connections = 0
    hung_up = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        hung_up.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(transport=transport(False, httpx.Limits())) as client:
            for _ in range(3):
                hung_up.clear()
                assert (await client.get(f"http://127.0.0.1:{port}/")).text == "ok"
                await hung_up.wait()
        assert connections == 3
    finally:
        server.close()
        await server.wait_closed()


async def test_the_hook_client_places_its_requests_on_the_backend(monkeypatch) -> None:
    """A proxy from the environment still wins over it: tests/hook/test_transport.py sends through one."""
    from airflow_provider_eshopbox.hooks._http import HttpClient, RetryPolicy
    from airflow_provider_eshopbox.hooks.rate_control import RateLimiter

    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    client = HttpClient(timeout=5, policy=RetryPolicy(), limiter=RateLimiter(None))._client()
    try:
        chosen = client._transport_for_url(httpx.URL("https://api.eshopbox.com/api/v1/orders/erp"))
        assert isinstance(chosen._pool._network_backend, Backend)
    finally:
        await client.aclose()


def test_hooks_share_one_tls_context_per_setting() -> None:
    """A triggerer runs a hook per deferred sensor: each building its own context with the system CAs
    would cost 25 ms of CPU and 0.8 MB apiece."""
    from airflow_provider_eshopbox.hooks._http import HttpClient, RetryPolicy
    from airflow_provider_eshopbox.hooks.rate_control import RateLimiter

    async def context_of(verify: bool | str) -> object:
        client = HttpClient(
            timeout=5, policy=RetryPolicy(), limiter=RateLimiter(None), verify=verify
        )._client()
        try:
            return client._transport_for_url(httpx.URL("https://api.eshopbox.com/"))._pool._ssl_context
        finally:
            await client.aclose()

    import certifi

    first, second = asyncio.run(context_of(True)), asyncio.run(context_of(True))
    assert first is second
    bundle = asyncio.run(context_of(certifi.where()))
    assert bundle is not first and bundle is asyncio.run(context_of(certifi.where()))
