"""Fixtures for hook tests: isolated token cache, env connections, respx, a live server, leak check."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_eshopbox.hooks import _http as transport
from airflow_provider_eshopbox.hooks._http import RetryPolicy
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
from airflow_provider_eshopbox.hooks.token_cache import TokenCache

CLIENT_ID = "client-id-42"
CLIENT_SECRET = "cs-SECRET-9f8e7d6c"
REFRESH_TOKEN = "rt-REFRESH-1a2b3c4d"
TOKEN_PREFIX = "at-SECRET-"
AUTH_URL = "https://auth.myeshopbox.com/api/v1/generateToken"
API = "https://acme.myeshopbox.com"
WMS = "https://wms.eshopbox.com"
FAST = RetryPolicy(max_attempts=5, backoff_base=0.001, backoff_max=0.005)
SEEN_TOKENS: set[str] = set()


def conn_json(**extra: Any) -> str:
    """An AIRFLOW_CONN_* JSON value with test credentials."""
    base: dict[str, Any] = {"refresh_token": REFRESH_TOKEN, "workspace": "acme"}
    base.update(extra)
    return json.dumps({"conn_type": "eshopbox", "login": CLIENT_ID, "password": CLIENT_SECRET, "extra": base})


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch) -> Iterator[None]:
    """Private token-cache dir and empty process caches per test."""
    monkeypatch.setenv("ESHOPBOX_TOKEN_CACHE_DIR", str(tmp_path / "tokens"))
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", conn_json())
    TokenCache.clear_process_cache()
    EshopboxHook._rotated_refresh_tokens.clear()
    transport._limiters.clear()
    yield
    SEEN_TOKENS.update(t.access_token for t in TokenCache._memory.values())
    TokenCache.clear_process_cache()


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog, capfd) -> Iterator[None]:
    """Capture httpx/httpcore/airflow at DEBUG and assert no secret value reached any output."""
    for name in ("httpx", "httpcore", "airflow", "airflow_provider_eshopbox", ""):
        caplog.set_level(logging.DEBUG, logger=name)
    yield
    out, err = capfd.readouterr()
    records = [r for phase in ("setup", "call") for r in caplog.get_records(phase)]  # type: ignore[arg-type]
    text = out + err + " ".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in records)
    secrets = {CLIENT_SECRET, REFRESH_TOKEN, TOKEN_PREFIX, *SEEN_TOKENS}
    leaked = [s for s in secrets if s and s in text]
    assert not leaked, "secret values leaked into logs"


@pytest.fixture
def hook() -> EshopboxHook:
    """A hook on the default env connection with tiny retry waits."""
    return EshopboxHook(retry_policy=FAST)


class TokenMinter:
    """respx side effect for the token endpoint: counts exchanges, unique tokens."""

    def __init__(self, expires_in: Any = 3600, extra: dict[str, Any] | None = None) -> None:
        self.count = 0
        self.expires_in = expires_in
        self.extra = extra or {}
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: Any) -> Any:
        import httpx

        self.count += 1
        self.bodies.append(json.loads(request.content))
        token = f"{TOKEN_PREFIX}{self.count}-{time.monotonic_ns()}"
        SEEN_TOKENS.add(token)
        return httpx.Response(200, json={"access_token": token, "expires_in": self.expires_in, **self.extra})


# --- a minimal live server (used when the sandbox package is not importable) ----------------------
class _FakeState:
    def __init__(self, token_ttl: int, token_latency: float) -> None:
        self.lock = threading.Lock()
        self.exchanges = 0
        self.requests = 0
        self.valid: set[str] = set()
        self.token_ttl = token_ttl
        self.token_latency = token_latency


def _handler(state: _FakeState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path.startswith("/auth/"):
                time.sleep(state.token_latency)
                if body.get("client_secret") != CLIENT_SECRET or body.get("refresh_token") != REFRESH_TOKEN:
                    return self._send(401, {"error": "invalid_grant", "error_description": "bad"})
                with state.lock:
                    state.exchanges += 1
                    token = f"{TOKEN_PREFIX}live-{state.exchanges}-{time.monotonic_ns()}"
                    state.valid.add(token)
                SEEN_TOKENS.add(token)
                return self._send(200, {"access_token": token, "expires_in": state.token_ttl})
            self._send(404, {"message": "Not Found"})

        def do_GET(self) -> None:
            with state.lock:
                state.requests += 1
                ok = self.headers.get("Authorization", "").removeprefix("Bearer ") in state.valid
            if not ok:
                return self._send(401, {"message": "Expired token"})
            url = urlsplit(self.path)
            if url.path.startswith("/ws/acme/api/v1/orders/erp") and self.headers.get("ProxyHost") == "acme":
                page = int(parse_qs(url.query).get("page", ["1"])[0])
                return self._send(200, {"hits": [{"orderItemID": f"{page}-1"}], "hasNext": page < 3})
            self._send(404, {"message": "Not Found"})

    return Handler


class LiveServer:
    """Loopback Eshopbox stand-in: the sandbox when importable, else the minimal fake above."""

    def __init__(self, token_ttl: int = 3600, token_latency: float = 0.2) -> None:
        self.state = _FakeState(token_ttl, token_latency)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.auth_url = f"{origin}/auth/api/v1/generateToken"
        self.api_url = f"{origin}/ws/acme"
        self.wms_url = f"{origin}/wms"

    def connection_json(self, **extra: Any) -> str:
        return conn_json(auth_url=self.auth_url, api_url=self.api_url, wms_url=self.wms_url, **extra)

    def exchanges(self) -> int:
        return self.state.exchanges

    def revoke(self) -> None:
        with self.state.lock:
            self.state.valid.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SandboxServer:
    """Adapter over the real ``EshopboxSandbox`` with the LiveServer surface."""

    def __init__(self, token_ttl: int = 3600, token_latency: float = 0.2) -> None:
        from airflow_provider_eshopbox.sandbox import EshopboxSandbox

        self.sb = EshopboxSandbox(orders=60, seed=3, token_ttl=token_ttl).start()
        self.sb.faults.configure(latency_ms=token_latency * 1000, routes=["token"])
        SEEN_TOKENS.update({self.sb.client_secret, self.sb.refresh_token})
        self.auth_url, self.api_url, self.wms_url = self.sb.auth_url, self.sb.api_url, self.sb.wms_url

    def connection_json(self, **extra: Any) -> str:
        value = json.loads(self.sb.connection_json())
        value["extra"].update(extra)
        return json.dumps(value)

    def exchanges(self) -> int:
        return int(self.sb.stats()["token_exchanges"])

    def revoke(self) -> None:
        self.sb.revoke_tokens()

    def close(self) -> None:
        self.sb.stop()


def make_live(token_ttl: int = 3600, token_latency: float = 0.2) -> LiveServer | SandboxServer:
    """The sandbox if it imports, else the minimal fake."""
    try:
        return SandboxServer(token_ttl, token_latency)
    except ImportError:
        return LiveServer(token_ttl, token_latency)


@pytest.fixture
def sandbox_live() -> Iterator[SandboxServer]:
    """The sandbox as ``live`` serves it, for a test that reads its counters (``.sb``)."""
    server = SandboxServer(3600, 0.2)
    yield server
    server.close()


@pytest.fixture
def live() -> Iterator[LiveServer | SandboxServer]:
    """A loopback server with a 0.2 s token endpoint latency (so racing exchanges overlap)."""
    server = make_live()
    yield server
    server.close()
