"""The pool's network streams (hooks/_network.py): a closed idle connection is still seen and not reused."""

from __future__ import annotations

import asyncio
import socket

import httpcore
import httpx
import pytest

from airflow_provider_eshopbox.hooks._http import tls_context
from airflow_provider_eshopbox.hooks._network import Backend, on_backend, readable


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


def test_the_client_pool_runs_on_the_backend_with_every_setting_kept() -> None:
    """Fails when an httpx release moves its pool: then the CPU saving is lost, not the requests."""
    limits = httpx.Limits(max_connections=7, max_keepalive_connections=3, keepalive_expiry=2.5)
    plain = httpx.AsyncClient(limits=limits, verify=tls_context(True), http2=False)
    client = on_backend(httpx.AsyncClient(limits=limits, verify=tls_context(True), http2=False))
    pool, before = client._transport._pool, plain._transport._pool
    assert isinstance(pool, httpcore.AsyncConnectionPool)
    assert isinstance(pool._network_backend, Backend)
    kept = {k: v for k, v in vars(pool).items() if k not in ("_network_backend", "_optional_thread_lock")}
    assert kept == {k: v for k, v in vars(before).items() if k in kept}
    assert pool._ssl_context is tls_context(True) and pool._max_connections == 7


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
        async with on_backend(httpx.AsyncClient()) as client:
            for _ in range(3):
                hung_up.clear()
                assert (await client.get(f"http://127.0.0.1:{port}/")).text == "ok"
                await hung_up.wait()
        assert connections == 3
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("proxy", [None, "HTTPS_PROXY", "ALL_PROXY", "all_proxy"])
async def test_the_hook_client_places_direct_requests_on_the_backend_and_keeps_proxies(
    monkeypatch: pytest.MonkeyPatch, proxy: str | None
) -> None:
    """A proxy from the environment still carries the requests (tests/hook/test_transport.py sends
    through one); NO_PROXY's hosts go direct, on the backend."""
    from airflow_provider_eshopbox.hooks._http import HttpClient, RetryPolicy
    from airflow_provider_eshopbox.hooks.rate_control import RateLimiter

    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "direct.example")
    if proxy:
        monkeypatch.setenv(proxy, "http://127.0.0.1:3128")
    client = HttpClient(timeout=5, policy=RetryPolicy(), limiter=RateLimiter(None))._client()
    try:
        api_host = client._transport_for_url(httpx.URL("https://api.eshopbox.com/api/v1/orders/erp"))
        direct = client._transport_for_url(httpx.URL("https://direct.example/"))
        assert isinstance(direct._pool._network_backend, Backend)
        if proxy:
            assert isinstance(api_host._pool, httpcore.AsyncHTTPProxy)
        else:
            assert api_host is direct
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


def test_a_rotated_ca_bundle_is_read_again(tmp_path) -> None:
    import shutil

    import certifi

    bundle = tmp_path / "ca.pem"
    shutil.copy(certifi.where(), bundle)
    first = tls_context(str(bundle))
    assert tls_context(str(bundle)) is first
    bundle.write_bytes(bundle.read_bytes() + b"\n")  # a new bundle in its place
    assert tls_context(str(bundle)) is not first
