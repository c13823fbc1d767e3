"""Response builders for the documented Eshopbox error shapes, plus the drop/truncate fault responses.

Shapes (api doc §6, §9): 400/5xx envelope ``{"error": {"errors": [{domain, reason, message}], code,
message}}``; ``{"message": ...}`` for 401/404/429; 422 ``{"<field>": ["<msg>", ...]}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

RAW_SEND_KEY = "eshopbox_sandbox.raw_send"
_REASONS = {400: "badRequest", 403: "forbidden", 404: "notFound", 409: "conflict"}


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """Compact JSON response (every Eshopbox response, errors included, is JSON)."""
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(data, status_code=status, headers=dict(headers or {}), media_type="application/json")


def raw_json_response(data: bytes) -> Response:
    """A 200 whose body is already compact JSON."""
    return Response(data, status_code=200, media_type="application/json")


def envelope(status: int, message: str, reason: str | None = None) -> Response:
    """The Google-style error envelope used for 400 and 5xx."""
    if reason is None:
        reason = _REASONS.get(status, "backendError" if status >= 500 else "badRequest")
    body = {
        "error": {
            "errors": [{"domain": "global", "reason": reason, "message": message}],
            "code": status,
            "message": message,
        }
    }
    return json_response(body, status)


def bad_request(message: str) -> Response:
    """400 envelope naming what is wrong."""
    return envelope(400, message)


def message(status: int, text: str, headers: Mapping[str, str] | None = None) -> Response:
    """``{"message": text}`` (401 Unauthorized / Expired token, 404 Not Found, 429)."""
    return json_response({"message": text}, status, headers)


def not_found() -> Response:
    """404 ``{"message": "Not Found"}``."""
    return message(404, "Not Found")


def field_errors(errors: Mapping[str, Sequence[str]]) -> Response:
    """422 Laravel-style field errors."""
    return json_response({k: list(v) for k, v in errors.items()}, 422)


def fault_status(status: int, retry_after: int | None) -> Response:
    """The body a client sees for an injected status (429 carries Retry-After in whole seconds)."""
    if status == 429:
        return message(429, "Too Many Requests", {"Retry-After": str(max(1, int(retry_after or 1)))})
    if status == 401:
        return message(401, "Expired token")
    if status == 404:
        return not_found()
    if status >= 500:
        return envelope(status, "Backend Error", "backendError")
    return envelope(status, f"Injected fault {status}")


def truncated(response: Response) -> Response:
    """Same status and type, body cut in half; Content-Length matches, so the JSON is clean-but-invalid."""
    body = bytes(response.body)
    cut = body[: max(1, len(body) // 2)]
    dropped = ("content-length", "content-type")
    headers = {k: v for k, v in response.headers.items() if k.lower() not in dropped}
    return Response(cut, status_code=response.status_code, headers=headers, media_type="application/json")


_NAIVE_STAMP = re.compile(rb'"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)"')
_IST = timezone(timedelta(hours=5, minutes=30), "IST")


def offset_times(response: Response) -> Response:
    """Quirk ``offset_times``: each naive (UTC) stamp of the body sent as ISO-8601 in IST with its offset."""
    return _restamp(response, lambda utc: utc.astimezone(_IST).isoformat())


def ist_times(response: Response) -> Response:
    """Quirk ``ist_times``: each naive (UTC) stamp of the body sent naive still, but in IST wall-clock."""
    return _restamp(response, lambda utc: utc.astimezone(_IST).strftime("%Y-%m-%d %H:%M:%S"))


def _restamp(response: Response, render: Callable[[datetime], str]) -> Response:
    def restamped(match: re.Match[bytes]) -> bytes:
        utc = datetime.strptime(match.group(1).decode(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
        return b'"' + render(utc).encode() + b'"'

    body = _NAIVE_STAMP.sub(restamped, bytes(response.body))
    dropped = ("content-length", "content-type")
    headers = {k: v for k, v in response.headers.items() if k.lower() not in dropped}
    return Response(body, status_code=response.status_code, headers=headers, media_type="application/json")


def echo_secrets(response: Response, secrets: Mapping[str, str]) -> Response:
    """The same error reply, its message replaced by a long one quoting ``secrets`` in the middle.

    Shapes stay recognisable: envelope -> ``error.message`` (and each ``errors[].message``), token
    error -> ``error_description``, anything else -> top-level ``message``.
    """
    quoted = " ".join(f"{k}={v}" for k, v in secrets.items())
    text = (
        "Request rejected by the upstream gateway; diagnostic dump of the offending request follows: "
        f"bad request from {quoted} -- please include this full message verbatim in any support "
        "ticket (sandbox echo_secrets fault: a client must mask these values before it truncates, "
        "logs or raises this text)."
    )
    try:
        body = json.loads(bytes(response.body))
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    error = body.get("error")
    if isinstance(error, dict):
        error["message"] = text
        for item in error.get("errors") or []:
            if isinstance(item, dict):
                item["message"] = text
    elif "error_description" in body:
        body["error_description"] = text
    else:
        body["message"] = text
    headers = {
        k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")
    }
    return json_response(body, response.status_code, headers)


def _cycle(scope: Scope) -> Any:
    """uvicorn's per-request cycle (holds ``transport`` and ``disconnected``), via the raw send."""
    return getattr(scope.get(RAW_SEND_KEY), "__self__", None)


async def _close(cycle: Any) -> None:
    """Close the connection and let ``connection_lost`` run, so uvicorn adds nothing of its own."""
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return
    transport.close()
    for _ in range(200):
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0.001)


class DripResponse(Response):
    """Sends ``inner`` a few bytes at a time (see ``FaultConfig.configure``: drip_*).

    ``phase="body"``: ASGI start, then small ``http.response.body`` chunks (JSON whitespace first);
    ``phase="headers"``: the status line and a filler header go straight to the transport, because
    ASGI sends headers in one piece. Stops when the client leaves or ``stopping`` is set.
    """

    def __init__(
        self,
        inner: Response,
        rate: float,
        phase: str,
        max_s: float,
        stopping: threading.Event,
        gauge: Callable[[int], None],
    ) -> None:
        super().__init__(b"", status_code=inner.status_code)
        self.inner, self.rate, self.phase, self.max_s = inner, rate, phase, max_s
        self.stopping, self.gauge = stopping, gauge
        self.tick = max(0.05, 1.0 / rate)
        self.chunk = max(1, int(rate * self.tick))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def wait_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        gone = asyncio.ensure_future(wait_gone())
        self.gauge(1)
        try:
            if self.phase == "headers":
                await self._headers_phase(scope, gone)
            else:
                await self._body_phase(scope, send, gone)
        finally:
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gone
            self.gauge(-1)

    async def _pause(self, gone: asyncio.Future[None]) -> bool:
        """Wait one tick; False once the client has gone or the sandbox is stopping."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.tick
        while not (gone.done() or self.stopping.is_set()):
            left = end - loop.time()
            if left <= 0:
                return True
            await asyncio.wait({gone}, timeout=min(left, 0.05))
        return False

    async def _trickle(self, data: bytes, write: Callable[[bytes], Any], gone: asyncio.Future[None]) -> bool:
        for i in range(0, len(data), self.chunk):
            if i and not await self._pause(gone):
                return False
            await write(data[i : i + self.chunk])
        return not (gone.done() or self.stopping.is_set())

    async def _headers_phase(self, scope: Scope, gone: asyncio.Future[None]) -> None:
        cycle = _cycle(scope)
        transport = getattr(cycle, "transport", None)
        if transport is None:  # not uvicorn: fail loudly rather than answer at full speed
            raise ConnectionAbortedError("sandbox drip fault needs uvicorn")
        inner = self.inner
        phrase = http.HTTPStatus(inner.status_code).phrase
        lead = f"HTTP/1.1 {inner.status_code} {phrase}\r\nx-sandbox-drip: ".encode()
        lead += b"." * int(self.rate * self.max_s)

        async def write(b: bytes) -> None:
            if not transport.is_closing():
                transport.write(b)

        try:
            if await self._trickle(lead, write, gone):
                rest = [b"\r\n"]
                for k, v in inner.raw_headers:
                    if k.lower() != b"connection":
                        rest.append(k + b": " + v + b"\r\n")
                rest.append(b"connection: close\r\n\r\n")
                transport.write(b"".join(rest) + bytes(inner.body))
        finally:
            await _close(cycle)  # the reply bypassed uvicorn: this connection cannot be reused

    async def _body_phase(self, scope: Scope, send: Send, gone: asyncio.Future[None]) -> None:
        body = bytes(self.inner.body)
        data = b" " * max(0, int(self.rate * self.max_s) - len(body)) + body
        headers = [(k, v) for k, v in self.inner.raw_headers if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(data)).encode()))
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})

        async def write(b: bytes) -> None:
            await send({"type": "http.response.body", "body": b, "more_body": True})

        if await self._trickle(data, write, gone):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            await _close(_cycle(scope))


class DropResponse(Response):
    """Closes the TCP connection without sending a byte (uvicorn: via the protocol's transport)."""

    def __init__(self) -> None:
        super().__init__(b"", status_code=500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_send = scope.get(RAW_SEND_KEY)
        cycle = getattr(raw_send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None:  # not uvicorn: fail loudly rather than answer normally
            raise ConnectionAbortedError("sandbox drop fault")
        transport.close()
        for _ in range(200):  # let connection_lost run so uvicorn does not send its own 500
            if getattr(cycle, "disconnected", True):
                break
            await asyncio.sleep(0.001)


class RawSendCapture:
    """Outermost ASGI wrapper: remembers the server's own ``send`` so DropResponse can find the socket."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND_KEY] = send
        await self.app(scope, receive, send)
