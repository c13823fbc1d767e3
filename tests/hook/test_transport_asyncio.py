"""The async path's own request building, body decoding and sockets (httpcore on plain asyncio)."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import zlib
from typing import Any

import httpx
import pytest
import respx

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.exceptions import EshopboxApiError
from airflow_provider_eshopbox.hooks._http import (
    RateLimiter,
    RequestSpec,
    RetryPolicy,
    Transport,
    core_request,
)

from .conftest import API, FAST, WMS

ONCE = RetryPolicy(max_attempts=1, max_throttled_attempts=1)
TIMEOUTS = httpx.Timeout(7).as_dict()
HEADERS = {"Authorization": "Bearer t0ken", "ProxyHost": "acme"}


def _as_httpx_sends(spec: RequestSpec) -> tuple[Any, ...]:
    """What httpx's own transport hands httpcore for ``spec`` (method, URL parts, headers, body)."""
    request = httpx.Request(
        spec.endpoint.method,
        spec.url,
        params=spec.params,
        json=spec.json,
        headers={
            "Accept": "*/*",
            "Accept-Encoding": "gzip, deflate",
            "Connection": "keep-alive",
            "User-Agent": f"python-httpx/{httpx.__version__}",
            **spec.headers,
        },
    )
    url = request.url
    return (
        request.method.encode(),
        url.raw_scheme,
        url.raw_host,
        url.port,
        url.raw_path,
        request.headers.raw,
        request.read(),
    )


@pytest.mark.parametrize(
    "spec",
    [
        RequestSpec(
            api.ORDERS_LIST,
            f"{API}/api/v1/orders/erp",
            params={
                "filters": api.orders_window_filter(1, 2),
                "page": 3,
                "per_page": 100,
                "fields": "orderItemID,updatedAt,é/&=+?#",
            },
            headers=HEADERS,
        ),
        RequestSpec(api.INVENTORY_LIST, f"{API}/api/v2/inventoryListing", headers=HEADERS),
        RequestSpec(api.PRODUCT_GET, f"{API}/product-engine/api/v1/products/TEE BLK%2FS", headers=HEADERS),
        RequestSpec(api.ORDERS_LIST, "https://example.test:8443/api/v1/orders/erp", params={"page": 1}),
        RequestSpec(api.ORDERS_LIST, f"{API}/api/v1/orders/erp?x=1", params={"page": 1}),  # via httpx
        RequestSpec(api.ORDERS_LIST, f"{API}/api/v1/orders/erp", params={"flag": True}),  # via httpx
        RequestSpec(api.ORDER_CREATE, f"{WMS}/api/order", json={"a": "é", "n": [1, 2.5]}, idempotent=False),
    ],
)
def test_the_request_sent_is_byte_for_byte_what_httpx_would_send(spec: RequestSpec) -> None:
    request = core_request(spec, TIMEOUTS)
    body = b"".join(request.stream)  # type: ignore[arg-type]
    url = request.url
    sent = (request.method, url.scheme, url.host, url.port, url.target, request.headers, body)
    assert sent == _as_httpx_sends(spec)
    assert request.extensions["timeout"] == TIMEOUTS


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, no zlib wrapper
        ("identity", lambda data: data),
        ("br", lambda data: data),  # not asked for; left as is, as httpx does
    ],
)
def test_compressed_bodies_are_decoded_on_the_async_path(coding: str, encode: Any) -> None:
    page = {"hits": [{"orderItemID": "1-1", "updatedAt": 5}], "hasNext": False}
    raw = json.dumps(page).encode()
    transport = Transport(timeout=5, policy=ONCE, limiter=RateLimiter(None))
    spec = RequestSpec(api.ORDERS_LIST, f"{API}/api/v1/orders/erp", params={"page": 1})

    async def fetch() -> Any:
        try:
            return await transport.asend(spec)
        finally:
            await transport.aclose()

    with respx.mock() as mock:
        route = mock.get(f"{API}/api/v1/orders/erp").respond(
            200, content=encode(raw), headers={"content-type": "application/json", "content-encoding": coding}
        )
        reply = asyncio.run(fetch())
    assert reply.data["hits"].decoded() == page["hits"]  # rows are left undecoded until asked for
    assert {**reply.data, "hits": page["hits"]} == page
    assert reply.data["hits"].texts == [json.dumps(page["hits"][0]).encode()]
    assert route.calls.last.request.headers["accept-encoding"] == "gzip, deflate"


def _ask_a_server_that_answers(answer: bytes) -> Any:
    """One orders request through the async path to a loopback server that sends ``answer``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    async def scenario() -> Any:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport = Transport(timeout=5, policy=ONCE, limiter=RateLimiter(None))
        try:
            return await transport.asend(
                RequestSpec(api.ORDERS_LIST, f"http://127.0.0.1:{port}/api/v1/orders/erp")
            )
        finally:
            await transport.aclose()
            server.close()

    return asyncio.run(scenario())


def test_a_corrupt_gzip_body_is_a_clear_error() -> None:
    with pytest.raises(EshopboxApiError, match="DecodingError: cannot decode a gzip body"):
        _ask_a_server_that_answers(
            b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 8\r\n\r\nnot gzip"
        )


def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    """Servers close idle keep-alive connections, some after an unasked 408. The next request must
    open a new connection instead of failing (or reading the 408 as its answer): one attempt only."""
    body = b'{"hits": [], "hasNext": false}'
    requests: list[bytes] = []
    closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append((await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")[0])
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        writer.close()
        await writer.wait_closed()
        closed.set()

    async def scenario() -> list[int]:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport = Transport(timeout=5, policy=ONCE, limiter=RateLimiter(None))
        spec = RequestSpec(api.ORDERS_LIST, f"http://127.0.0.1:{port}/api/v1/orders/erp")
        statuses = [(await transport.asend(spec)).status]
        await closed.wait()
        await asyncio.sleep(0)  # let the client's loop see the bytes and the close
        statuses.append((await transport.asend(spec)).status)
        await transport.aclose()
        server.close()
        await server.wait_closed()
        return statuses

    assert asyncio.run(scenario()) == [200, 200]
    assert requests == [b"GET /api/v1/orders/erp HTTP/1.1"] * 2


def test_a_refused_connection_is_retried_then_fails_clearly() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = Transport(timeout=5, policy=FAST, limiter=RateLimiter(None))
    spec = RequestSpec(api.ORDERS_LIST, f"http://127.0.0.1:{port}/api/v1/orders/erp")
    with pytest.raises(EshopboxApiError, match=r"could not connect \(ConnectError.*gave up after 5 attempts"):
        asyncio.run(transport.asend(spec))


def test_a_connection_closed_while_the_loop_was_busy_is_not_reused_even_for_a_write() -> None:
    """The server closes an idle connection while the task computes without awaiting (parsing or
    spooling a page), so the loop has not seen it: reusing it would make a create-order ambiguous."""
    import socketserver
    import threading

    closed = threading.Event()
    connections: list[int] = []

    class KeepAliveThenClose(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            connections.append(1)
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
            body = b'{"ok": true}'
            self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            self.wfile.flush()
            self.connection.close()  # later than the reply: the client keeps the connection alive
            closed.set()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), KeepAliveThenClose)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    transport = Transport(timeout=5, policy=ONCE, limiter=RateLimiter(None))
    read = RequestSpec(api.ORDER_GET, f"http://127.0.0.1:{port}/api/order/1")
    write = RequestSpec(
        api.ORDER_CREATE, f"http://127.0.0.1:{port}/api/order", json={"a": 1}, idempotent=False
    )

    async def scenario() -> list[int]:
        first = await transport.asend(read)
        assert closed.wait(5)  # blocks the loop: it cannot notice the close before the next send
        second = await transport.asend(write)
        await transport.aclose()
        return [first.status, second.status]

    try:
        assert asyncio.run(scenario()) == [200, 200]
        assert len(connections) == 2
    finally:
        server.shutdown()
        server.server_close()


def test_bodies_cut_short_decode_to_what_they_hold_and_repeated_codings_all_apply() -> None:
    from airflow_provider_eshopbox.hooks._http import _decoded

    raw = json.dumps({"hits": [{"orderItemID": str(i)} for i in range(50)]}).encode()
    for encode in (gzip.compress, zlib.compress):
        cut = _decoded(encode(raw)[:-30], "gzip" if encode is gzip.compress else "deflate")
        assert 0 < len(cut) < len(raw) and raw.startswith(cut)  # then invalid JSON: retried
    assert _decoded(gzip.compress(gzip.compress(raw)), "gzip, gzip") == raw


def test_a_repeated_content_encoding_header_is_joined_as_httpx_does() -> None:
    raw = b'{"hits": [], "hasNext": false}'
    body = gzip.compress(gzip.compress(raw))

    head = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-encoding: gzip\r\n"
    head += b"content-length: %d\r\n\r\n"

    reply = _ask_a_server_that_answers(head % len(body) + body)
    assert reply.data["hits"].decoded() == [] and reply.data["hasNext"] is False
