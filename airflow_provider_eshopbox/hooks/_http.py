"""HTTP transport: pooled connections (httpx sync, httpcore async), tenacity retries, a rate limiter.

Requests are described by a ``RequestSpec`` and answers classified by pure functions shared by the
sync and async paths. Non-idempotent requests are never retried once they may have reached the
server; those raise ``EshopboxAmbiguousWriteError`` for the caller to resolve.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import ssl
import threading
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpcore
import httpx
from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception_type

from airflow_provider_eshopbox import asyncio_network
from airflow_provider_eshopbox.api import Endpoint, error_message
from airflow_provider_eshopbox.exceptions import EshopboxAmbiguousWriteError, EshopboxApiError
from airflow_provider_eshopbox.hooks.rawjson import loads_leaving_items

log = logging.getLogger(__name__)

# httpx logs every request URL at INFO; keep its and httpcore's chatter out of task logs unless the
# user configured those loggers. No token is ever put in a URL, and headers are never logged.
for _name in ("httpx", "httpcore"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)

_ASYNC_POOLS = 8  # at most this many async connection pools per event loop (see Transport._async_pool)
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_MAYBE_SENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; tests shrink the waits."""

    max_attempts: int = 5  # for errors: 5xx, dropped connections, timeouts, truncated bodies
    max_throttled_attempts: int = 30  # for 429s: being told to wait is not a failure
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_cap: float = 60.0

    def wait(self, attempt: int, retry_after: float | None) -> float:
        """Retry-After (capped) if the server sent one, else exponential backoff with jitter."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap)
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)


class RateLimiter:
    """Thread-safe spacing limiter: at most ``rate`` request starts per second, sync or async."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Claim the next slot; returns how long the caller must wait for it."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
            return slot - now

    def pause(self, seconds: float) -> None:
        """Hold every request of the connection back for ``seconds`` (after a 429 says so).

        Without this, requests in flight beside the throttled one would each hit the limit, wait,
        and come back together, turning one 429 into a storm of them.
        """
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)

    def acquire(self) -> None:
        """Block until this caller may send."""
        if delay := self.reserve():
            time.sleep(delay)

    async def aacquire(self) -> None:
        """Wait (without blocking the loop) until this caller may send."""
        if delay := self.reserve():
            await asyncio.sleep(delay)


_limiters: dict[tuple[str, float | None], RateLimiter] = {}
_limiters_guard = threading.Lock()


def limiter_for(key: str, rate: float | None) -> RateLimiter:
    """The process-wide limiter of one connection, shared by all its hooks, threads and loops."""
    with _limiters_guard:
        return _limiters.setdefault((key, rate), RateLimiter(rate))


@dataclass(frozen=True)
class RequestSpec:
    """One HTTP request, fully built; ``headers`` carry the bearer token and are never shown."""

    endpoint: Endpoint
    url: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    idempotent: bool = True

    @property
    def label(self) -> str:
        """Endpoint label for messages."""
        return self.endpoint.label


@dataclass(frozen=True)
class Reply:
    """A final (non-retried) HTTP answer with its JSON body parsed when there was one.

    In a 2xx reply of an endpoint with ``items``, ``data[items]`` is a ``rawjson.RawItems``: each
    row's JSON text as sent, decoded only when asked (a page is read without a dict per row).
    """

    status: int
    data: Any
    is_json: bool
    content_type: str


class Answer(Protocol):
    """What classifying needs of an HTTP response: an ``httpx.Response``, or ``_Answer``."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content(self) -> bytes: ...


@dataclass(frozen=True)
class _Answer:
    """A response read straight from httpcore: ``headers`` keyed in lower case, ``content`` decoded."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes


class _Retry(Exception):
    """Internal: this attempt failed in a retryable way; ``error`` is raised when attempts run out."""

    def __init__(self, error: EshopboxApiError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header given as delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _decode(response: Answer, items: str | None) -> tuple[bool, Any]:
    content = response.content
    if not content:
        return False, None
    try:
        if items is not None and 200 <= response.status_code < 300:
            return True, loads_leaving_items(content, items)
        return True, json.loads(content)
    except ValueError:  # UnicodeDecodeError included
        return False, None


def classify_response(spec: RequestSpec, response: Answer) -> Reply:
    """A Reply for final answers; raises _Retry for retryable ones, ambiguity for unsafe writes."""
    status = response.status_code
    is_json, data = _decode(response, spec.endpoint.items)
    ctype = response.headers.get("content-type", "").split(";")[0].strip() or "no content-type"
    if status == 429:
        msg = error_message(data) or "rate limited"
        raise _Retry(
            EshopboxApiError(status, spec.label, msg, details=data),
            parse_retry_after(response.headers.get("retry-after")),
        )
    if 400 <= status < 500 and response.content and ctype.endswith("json") and not is_json:
        # A refusal whose JSON body arrived cut or corrupted: the reason is unreadable, and a 4xx means
        # nothing was applied, so asking again is safe for every method (a POST included).
        raise _Retry(
            EshopboxApiError(status, spec.label, f"reply is not valid JSON (truncated {ctype})"),
            parse_retry_after(response.headers.get("retry-after")),
        )
    if status >= 500 or (200 <= status < 300 and not is_json):
        msg = error_message(data) if is_json else f"server error, body not JSON ({ctype})"
        if status < 300:
            msg = f"reply is not valid JSON (truncated or {ctype})"
        if not spec.idempotent:
            raise EshopboxAmbiguousWriteError(
                status, spec.label, f"{msg}; the write may or may not have been applied", details=data
            )
        raise _Retry(
            EshopboxApiError(status, spec.label, msg or "server error", details=data),
            parse_retry_after(response.headers.get("retry-after")),
        )
    return Reply(status, data, is_json, ctype)


def classify_exception(spec: RequestSpec, exc: httpx.HTTPError) -> Exception:
    """The exception to raise for a transport failure: _Retry, ambiguity, or a final API error."""
    text = f"{type(exc).__name__}: {exc}"[:200]
    if isinstance(exc, _NEVER_SENT):
        return _Retry(EshopboxApiError(None, spec.label, f"could not connect ({text})"))
    if isinstance(exc, _MAYBE_SENT):
        if not spec.idempotent:
            return EshopboxAmbiguousWriteError(
                None, spec.label, f"{text}; the write may or may not have been applied"
            )
        return _Retry(EshopboxApiError(None, spec.label, text))
    return EshopboxApiError(None, spec.label, text)


def _exhausted(error: EshopboxApiError, attempts: int) -> EshopboxApiError:
    return EshopboxApiError(
        error.status,
        error.endpoint,
        f"{error.message} (gave up after {attempts} attempts)",
        details=error.details,
    )


# What httpx's clients send by default; the async path builds requests without a client.
_CLIENT_HEADERS = {
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
    "Connection": "keep-alive",
    "User-Agent": f"python-httpx/{httpx.__version__}",
}
# httpx's connection limits, for the httpcore pools the async path uses directly.
_POOL_LIMITS = {"max_connections": 100, "max_keepalive_connections": 20, "keepalive_expiry": 5.0}
# httpcore raises its own exceptions; this module (and the retry policy) speaks httpx's, which have
# the same names and meaning. Subclasses first: the first match wins.
_CORE_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)
_CORE_ERROR_TYPES = tuple(core for core, _ in _CORE_ERRORS)


@functools.lru_cache(maxsize=256)
def _origin(url: str) -> tuple[bytes, bytes, int | None, bytes, bytes]:
    """``(scheme, host, port, path, Host header)`` of a URL, normalised by httpx once per URL."""
    parsed = httpx.URL(url)
    return parsed.raw_scheme, parsed.raw_host, parsed.port, parsed.raw_path, parsed.netloc


def core_request(spec: RequestSpec, timeouts: Mapping[str, float | None]) -> httpcore.Request:
    """The httpcore request httpx would send for ``spec`` (same target, headers and body).

    A GET with plain parameters, the hot path, is built directly: parsing and re-validating the
    URL of each request was a twentieth of the client's CPU. Anything else goes through httpx.
    """
    extensions = {"timeout": dict(timeouts)}
    params = spec.params or {}
    if spec.json is None and "?" not in spec.url and all(type(v) in (str, int) for v in params.values()):
        scheme, host, port, path, netloc = _origin(spec.url)
        target = path + b"?" + urllib.parse.urlencode(params).encode("ascii") if params else path
        headers = [(b"Host", netloc)]
        headers += [
            (k.encode("ascii"), v.encode("ascii")) for k, v in {**_CLIENT_HEADERS, **spec.headers}.items()
        ]
        url = httpcore.URL(scheme=scheme, host=host, port=port, target=target)
        return httpcore.Request(
            spec.endpoint.method.encode("ascii"), url, headers=headers, extensions=extensions
        )
    request = _httpx_request(spec, timeouts)
    url = httpcore.URL(
        scheme=request.url.raw_scheme,
        host=request.url.raw_host,
        port=request.url.port,
        target=request.url.raw_path,
    )
    return httpcore.Request(
        request.method, url, headers=request.headers.raw, content=request.content, extensions=extensions
    )


def _httpx_request(spec: RequestSpec, timeouts: Mapping[str, float | None]) -> httpx.Request:
    """``spec`` as httpx builds it (with the headers its clients add) and the given timeouts."""
    return httpx.Request(
        spec.endpoint.method,
        spec.url,
        params=spec.params,
        json=spec.json,
        headers={**_CLIENT_HEADERS, **spec.headers},
        extensions={"timeout": dict(timeouts)},
    )


async def _exchange(pool: httpcore.AsyncConnectionPool, request: httpcore.Request) -> _Answer:
    """Send one request on an httpcore pool and read the whole answer; errors are httpx's."""
    try:
        response = await pool.handle_async_request(request)
        try:
            body = await response.aread()
        finally:
            await response.aclose()
    except _CORE_ERROR_TYPES as exc:
        raise _httpx_error(exc) from None
    headers: dict[str, str] = {}
    for raw_name, raw_value in response.headers:  # a repeated header is joined, as httpx does
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return _Answer(response.status, headers, _decoded(body, headers.get("content-encoding")))


def _httpx_error(exc: Exception) -> httpx.TransportError:
    mapped = next(mapped for core, mapped in _CORE_ERRORS if isinstance(exc, core))
    return mapped(str(exc) or type(exc).__name__)


def _decoded(content: bytes, encoding: str | None) -> bytes:
    """The body before its ``Content-Encoding``, as httpx decodes it: gzip and deflate (what is
    asked for); other codings are left as they are, like httpx does."""
    for coding in reversed([part.strip().lower() for part in (encoding or "").split(",")]):
        try:
            if coding in ("gzip", "x-gzip"):
                content = _inflate(content, zlib.MAX_WBITS | 16)
            elif coding == "deflate":
                try:
                    content = _inflate(content, zlib.MAX_WBITS)
                except zlib.error:  # raw deflate, without the zlib wrapper: some servers send that
                    content = _inflate(content, -zlib.MAX_WBITS)
        except zlib.error as exc:
            raise httpx.DecodingError(f"cannot decode a {coding} body: {exc}") from None
    return content


def _inflate(content: bytes, wbits: int) -> bytes:
    """Decompress what ``content`` holds: a cut stream gives its start (then invalid JSON, retried),
    as httpx's decoders do."""
    decompressor = zlib.decompressobj(wbits)
    return decompressor.decompress(content) + decompressor.flush()


def _environment_proxies() -> bool:
    """Whether the environment names an HTTP(S) proxy, which httpx's clients would honour."""
    return any(scheme in ("http", "https", "all") for scheme in urllib.request.getproxies())


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process: each new one loads the CA bundle again (~30 ms)."""
    return httpx.create_ssl_context()


class Transport:
    """Pooled sync client plus a few async connection pools per event loop, with the retry policy."""

    def __init__(self, *, timeout: float, policy: RetryPolicy, limiter: RateLimiter) -> None:
        self.timeout = httpx.Timeout(timeout)
        self.policy = policy
        self.limiter = limiter
        self._client: httpx.Client | None = None
        self._aclients: list[httpcore.AsyncConnectionPool | httpx.AsyncClient] = []
        self._timeouts = self.timeout.as_dict()
        self._aclient_loop: asyncio.AbstractEventLoop | None = None
        self._in_flight: list[int] = []
        self._guard = threading.Lock()

    def _retry_kwargs(self) -> dict[str, Any]:
        """Retry arguments for one request: 429s and errors each have their own budget."""
        spent = {"throttled": 0, "failed": 0}

        def stop(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            kind = "throttled" if isinstance(exc, _Retry) and exc.error.status == 429 else "failed"
            spent[kind] += 1
            if kind == "throttled":
                return spent[kind] >= self.policy.max_throttled_attempts
            return spent[kind] >= self.policy.max_attempts

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            after = exc.retry_after if isinstance(exc, _Retry) else None
            delay = self.policy.wait(spent["throttled"] + spent["failed"], after)
            if isinstance(exc, _Retry) and exc.error.status == 429:
                self.limiter.pause(delay)
            log.info("Eshopbox request retry %d in %.2f s: %s", state.attempt_number, delay, exc)
            return delay

        return {"stop": stop, "wait": wait, "retry": retry_if_exception_type(_Retry), "reraise": True}

    @property
    def client(self) -> httpx.Client:
        """The pooled sync client, created on first use."""
        with self._guard:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=self.timeout, follow_redirects=False, verify=_tls_context()
                )
            return self._client

    def _async_pool(self) -> int:
        """The least busy of a few async connection pools of the running loop (created as needed).

        httpcore scans its whole pool for every request it places, at a cost that grows with the
        square of its connections: with 16 requests in flight one pool doubled the client's CPU per
        request (measured). Several small pools keep that cost flat; a lone caller keeps reusing
        the first one's connection.

        Requests go to httpcore's pools directly, on plain asyncio sockets (``asyncio_network``):
        ``AsyncClient`` adds auth, cookie, redirect and URL-merging steps this client never uses,
        and httpx's and anyio's layers beneath it cost more CPU per request than the request's
        own work (1.1 vs 0.3-0.4 ms measured at 16 in flight). The one step that matters, proxies
        from the environment (``HTTPS_PROXY``, ``NO_PROXY``...), is kept by using ``AsyncClient``
        whenever one is set, exactly as the sync client does.
        """
        loop = asyncio.get_running_loop()
        if self._aclient_loop is not loop:
            self._aclients, self._in_flight, self._aclient_loop = [], [], loop
        index = min(range(len(self._in_flight)), key=self._in_flight.__getitem__, default=None)
        if index is None or (self._in_flight[index] and len(self._aclients) < _ASYNC_POOLS):
            if _environment_proxies():
                pool: httpcore.AsyncConnectionPool | httpx.AsyncClient = httpx.AsyncClient(
                    timeout=self.timeout, follow_redirects=False, verify=_tls_context()
                )
            else:
                backend = asyncio_network.AsyncioBackend() if asyncio_network.available() else None
                pool = httpcore.AsyncConnectionPool(
                    ssl_context=_tls_context(), network_backend=backend, **_POOL_LIMITS
                )
            self._aclients.append(pool)
            self._in_flight.append(0)
            index = len(self._aclients) - 1
        return index

    def _attempt(self, spec: RequestSpec) -> Reply:
        self.limiter.acquire()
        try:
            response = self.client.request(
                spec.endpoint.method, spec.url, params=spec.params, json=spec.json, headers=spec.headers
            )
        except httpx.HTTPError as exc:
            raise classify_exception(spec, exc) from None
        return classify_response(spec, response)

    async def _aattempt(self, spec: RequestSpec) -> Reply:
        await self.limiter.aacquire()
        pool = self._async_pool()
        sender = self._aclients[pool]
        # Built before the pool is marked busy: a request that cannot be built must not leave it so.
        if isinstance(sender, httpx.AsyncClient):
            request: httpx.Request | httpcore.Request = _httpx_request(spec, self._timeouts)
        else:
            request = core_request(spec, self._timeouts)
        self._in_flight[pool] += 1
        response: Answer
        try:
            if isinstance(sender, httpx.AsyncClient):
                assert isinstance(request, httpx.Request)
                response = await sender.send(request)  # reads the body and closes the response
            else:
                assert isinstance(request, httpcore.Request)
                response = await _exchange(sender, request)
        except httpx.HTTPError as exc:
            raise classify_exception(spec, exc) from None
        finally:
            if self._aclients and pool < len(self._in_flight):
                self._in_flight[pool] -= 1
        return classify_response(spec, response)

    def send(self, spec: RequestSpec) -> Reply:
        """Send with retries; returns the final Reply (2xx or a non-retryable 4xx)."""
        try:
            for attempt in Retrying(**self._retry_kwargs()):
                with attempt:
                    return self._attempt(spec)
        except _Retry as exc:
            raise _exhausted(exc.error, self._attempts_for(exc)) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempts_for(self, exc: _Retry) -> int:
        if exc.error.status == 429:
            return self.policy.max_throttled_attempts
        return self.policy.max_attempts

    async def asend(self, spec: RequestSpec) -> Reply:
        """Async ``send``."""
        try:
            async for attempt in AsyncRetrying(**self._retry_kwargs()):
                with attempt:
                    return await self._aattempt(spec)
        except _Retry as exc:
            raise _exhausted(exc.error, self._attempts_for(exc)) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the sync client (the async pools are closed by ``aclose``)."""
        with self._guard:
            if self._client is not None:
                self._client.close()
                self._client = None

    async def aclose(self) -> None:
        """Close the async pools of the running loop, and the sync client."""
        if self._aclient_loop is asyncio.get_running_loop():
            for client in self._aclients:
                await client.aclose()
        self._aclients, self._in_flight, self._aclient_loop = [], [], None
        self.close()
