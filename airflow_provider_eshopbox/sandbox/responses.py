"""Response builders for the documented Eshopbox error shapes, plus the drop/truncate fault responses.

Shapes (api doc §6, §9): 400/5xx envelope ``{"error": {"errors": [{domain, reason, message}], code,
message}}``; ``{"message": ...}`` for 401/404/429; 422 ``{"<field>": ["<msg>", ...]}``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
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
