"""HTTP for the hook: ``httpx.AsyncClient`` with explicit timeouts, tenacity retries, a shared rate
limiter, and one classification of replies (final, retry, or a write of unknown outcome).

Non-idempotent requests are never retried once they may have reached the server; those raise
``EshopboxAmbiguousWriteError`` for the caller to resolve. Every attempt has an overall deadline,
so a server that trickles bytes cannot hold a task for ever.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import math
import os
import random
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from airflow_provider_eshopbox.api import Endpoint, error_message
from airflow_provider_eshopbox.exceptions import EshopboxAmbiguousWriteError, EshopboxApiError
from airflow_provider_eshopbox.hooks._network import on_backend
from airflow_provider_eshopbox.hooks.rate_control import FileRateState, RateLimiter
from airflow_provider_eshopbox.hooks.rawjson import loads_leaving_items

log = logging.getLogger(__name__)

# httpx logs every request URL at INFO; keep its and httpcore's chatter out of task logs unless the
# user configured those loggers. No token is ever put in a URL, and headers are never logged.
for _name in ("httpx", "httpcore"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)

_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_MAYBE_SENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, httpx.DecodingError)
# Up to 64 requests in flight (the operators' max_concurrency cap); few idle connections kept, as
# httpcore looks at every connection of its pool for every request it places.
_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=16)
#: httpx's timeouts bound each connect, read and write; one attempt as a whole gets this many times
#: the connection's timeout, so a server that trickles bytes cannot hold a request for ever.
DEADLINE_FACTOR = 3
LONG_WAIT_S = 5.0  # a wait longer than this gets its own log line
REDACTED = "***"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; tests shrink the waits."""

    max_attempts: int = 5  # for errors: 5xx, dropped connections, timeouts, truncated bodies
    max_throttled_attempts: int = 30  # for 429s: being told to wait is not a failure
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    #: a Retry-After longer than this fails the request at once: a task should not sleep for hours
    retry_after_max: float = 300.0
    #: all waits of one request together; past this it fails instead of waiting again
    max_total_wait: float = 600.0

    def wait(self, attempt: int, retry_after: float | None) -> float:
        """Retry-After if the server sent one, else exponential backoff with jitter."""
        if retry_after is not None:
            return max(retry_after, 0.0)
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)


_limiters: dict[tuple[str, float | None], RateLimiter] = {}
_limiters_guard = threading.Lock()


def limiter_for(key: str, rate: float | None, shared_dir: Path | None = None) -> RateLimiter:
    """The limiter of one connection, shared by all its hooks, threads and loops in this process,
    and through ``shared_dir`` (if given) by every process of the host."""
    with _limiters_guard:
        limiter = _limiters.get((key, rate))
        if limiter is None:
            state = None
            if shared_dir is not None:
                digest = hashlib.sha256(key.encode()).hexdigest()[:40]
                state = FileRateState(shared_dir / f"{digest}.rate")
            limiter = _limiters[(key, rate)] = RateLimiter(rate, state)
        return limiter


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
    row's JSON text as sent, decoded only when asked.
    """

    status: int
    data: Any
    is_json: bool
    content_type: str


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
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return max(0.0, seconds) if seconds == seconds else None  # NaN is no answer


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` (a parsed reply) with every occurrence of a known secret replaced, in all its strings.

    Done before any message is cut to length: half a secret would escape exact-match masking.
    """
    secrets = [s for s in secrets if s]
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    if isinstance(value, Mapping):
        return {redact(str(k), secrets): redact(v, secrets) for k, v in value.items()}
    return value


def _decode(response: httpx.Response, items: str | None) -> tuple[bool, Any]:
    content = response.content
    if not content:
        return False, None
    try:
        if items is not None and 200 <= response.status_code < 300:
            return True, loads_leaving_items(content, items)
        return True, json.loads(content)
    except ValueError:  # UnicodeDecodeError included
        return False, None


def classify_response(spec: RequestSpec, response: httpx.Response, secrets: Iterable[str] = ()) -> Reply:
    """A Reply for final answers; raises _Retry for retryable ones, ambiguity for unsafe writes."""
    status = response.status_code
    is_json, data = _decode(response, spec.endpoint.items)
    if status >= 300:
        data = redact(data, secrets)
    ctype = response.headers.get("content-type", "").split(";")[0].strip() or "no content-type"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if status == 429:
        raise _Retry(EshopboxApiError(status, spec.label, error_message(data) or "rate limited"), retry_after)
    if 400 <= status < 500 and response.content and ctype.endswith("json") and not is_json:
        # A refusal whose JSON body arrived cut or corrupted: the reason is unreadable, and a 4xx means
        # nothing was applied, so asking again is safe for every method (a POST included).
        raise _Retry(
            EshopboxApiError(status, spec.label, f"reply is not valid JSON (truncated {ctype})"), retry_after
        )
    if status >= 500 or (200 <= status < 300 and not is_json):
        if status < 300:
            msg = f"reply is not valid JSON (truncated or {ctype})"
        else:
            msg = (error_message(data) if is_json else "") or f"server error, body not JSON ({ctype})"
        if not spec.idempotent:
            raise EshopboxAmbiguousWriteError(
                status, spec.label, f"{msg}; the write may or may not have been applied", details=data
            )
        raise _Retry(EshopboxApiError(status, spec.label, msg, details=data), retry_after)
    return Reply(status, data, is_json, ctype)


def classify_exception(spec: RequestSpec, exc: Exception) -> Exception:
    """The exception to raise for a transport failure: _Retry, ambiguity, or a final API error."""
    text = f"{type(exc).__name__}: {exc}"[:200]
    host = _host(spec.url)
    if _certificate_refused(exc):  # final: asking again will not make the certificate trusted
        return EshopboxApiError(None, spec.label, f"TLS to {host} failed ({text}); {_TLS_HINT}")
    if isinstance(exc, _NEVER_SENT):
        return _Retry(EshopboxApiError(None, spec.label, f"could not connect to {host} ({text})"))
    if isinstance(exc, (*_MAYBE_SENT, TimeoutError)):
        if not spec.idempotent:
            return EshopboxAmbiguousWriteError(
                None, spec.label, f"{text}; the write may or may not have been applied"
            )
        return _Retry(EshopboxApiError(None, spec.label, f"{host}: {text}"))
    return EshopboxApiError(None, spec.label, f"{host}: {text}")


def _host(url: str) -> str:
    """``host:port`` of a request URL for messages: the connection's URLs carry no userinfo (the
    parser refuses it) and the query string is left out."""
    parts = httpx.URL(url)
    return f"{parts.host}:{parts.port}" if parts.port else parts.host


def _certificate_refused(exc: BaseException | None) -> bool:
    """Whether a failure is, or was caused by, the server's certificate not being trusted."""
    for _ in range(8):  # a chain can be long, or even loop
        if exc is None:
            return False
        if isinstance(exc, ssl.SSLCertVerificationError) or (
            isinstance(exc, (httpx.ConnectError, ssl.SSLError)) and "CERTIFICATE_VERIFY_FAILED" in str(exc)
        ):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


_TLS_HINT = (
    "if Eshopbox is reached through a proxy or sandbox with its own CA, set the connection's "
    "'ca_bundle' extra to that CA's PEM file (or SSL_CERT_FILE)"
)


def tls_context(verify: bool | str) -> ssl.SSLContext | bool:
    """What ``httpx`` takes as ``verify``: the system CAs, a PEM bundle's, or no check at all.

    One per setting and process, shared by every hook: a context with the system CAs costs 25 ms of
    CPU and 0.8 MB, and a triggerer runs a hook per deferred sensor. A CA bundle is read again when
    its file changes (a rotated bundle reaches a long-running triggerer's next hook).
    """
    if verify is False:
        return False
    if isinstance(verify, str):
        try:
            stat = os.stat(verify)
        except OSError:
            stat = None  # load_verify_locations says what is wrong with it
        return _context(verify, (stat.st_mtime_ns, stat.st_size, stat.st_ino) if stat else None)
    return _context(None, None)


@functools.lru_cache(maxsize=16)
def _context(bundle: str | None, _version: tuple[int, int, int] | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if bundle is not None:
        context.load_verify_locations(cafile=bundle)
    return context


class HttpClient:
    """One ``httpx.AsyncClient`` per event loop, with the retry policy, rate limiter and deadline."""

    def __init__(
        self,
        *,
        timeout: float,
        policy: RetryPolicy,
        limiter: RateLimiter,
        verify: bool | str = True,
        secrets: Iterable[str] = (),
    ) -> None:
        self.timeout = timeout
        self.policy = policy
        self.limiter = limiter
        self.verify = verify
        #: values to redact from error replies before they become messages (secrets, minted tokens)
        self.secrets: set[str] = set(secrets)
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self.summary = ThrottleSummary(limiter)
        #: the latest ``Date`` a reply carried (epoch s; 0: none yet): the server's clock, which no
        #: stamp it sent can be after (the WMS_TIME zone guard, sync/streams.py)
        self.server_time = 0.0
        self._date_text = ""

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        for old in [old for old in self._clients if old.is_closed()]:
            del self._clients[old]  # its sockets went with its loop
        client = self._clients.get(loop)
        if client is None:
            verify = tls_context(self.verify)
            client = self._clients[loop] = on_backend(
                httpx.AsyncClient(
                    timeout=self.timeout,
                    limits=_LIMITS,
                    verify=verify,
                    follow_redirects=False,
                    headers={"Accept": "application/json"},
                )
            )
        return client

    def _saw_date(self, text: str | None) -> None:
        if not text or text == self._date_text:  # one parse a second at most
            return
        self._date_text = text
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return
        self.server_time = max(self.server_time, when.replace(tzinfo=when.tzinfo or timezone.utc).timestamp())

    def server_now(self) -> float | None:
        """The server's clock as its replies' ``Date`` headers last told it; None before any did."""
        return self.server_time or None

    async def _attempt(self, spec: RequestSpec) -> Reply:
        client = self._client()
        deadline = self.timeout * DEADLINE_FACTOR
        sending = False
        try:
            async with asyncio.timeout(deadline):  # the limiter's wait counts: a hold cannot hang a call
                if await self.limiter.acquire(self.summary.hold):
                    self.summary.waits += 1
                sending = True
                self.summary.maybe_log()
                response = await client.request(
                    spec.endpoint.method, spec.url, params=spec.params, json=spec.json, headers=spec.headers
                )
        except (TimeoutError, httpx.HTTPError, ssl.SSLError) as exc:
            if not sending:  # never sent, so safe to retry for every method
                why = f"not sent: the client-side rate limit held it back past the attempt's {deadline:g} s"
                raise _Retry(EshopboxApiError(None, spec.label, f"{why} ({self.limiter.reason()})")) from None
            if isinstance(exc, asyncio.TimeoutError):
                exc = httpx.ReadTimeout(f"no complete reply within {deadline:g} s")
            raise classify_exception(spec, exc) from None
        self._saw_date(response.headers.get("date"))
        try:
            reply = classify_response(spec, response, self.secrets)
        except _Retry as exc:
            if exc.error.status == 429:
                self.limiter.throttled(exc.retry_after)
                self.summary.throttled += 1
            raise
        self.limiter.succeeded()
        return reply

    async def send(self, spec: RequestSpec) -> Reply:
        """Send with retries; returns the final Reply (2xx or a non-retryable 4xx)."""
        policy = self.policy
        spent = {"throttled": 0, "failed": 0, "waited": 0.0}

        def stop(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            throttled = isinstance(exc, _Retry) and exc.error.status == 429
            kind = "throttled" if throttled else "failed"
            spent[kind] += 1
            return spent[kind] >= (policy.max_throttled_attempts if throttled else policy.max_attempts)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            assert isinstance(exc, _Retry)
            if exc.retry_after is not None and exc.retry_after > policy.retry_after_max:
                raise _TooLong(
                    exc.error,
                    f"Eshopbox asks us to wait {exc.retry_after:.0f} s, more than the "
                    f"{policy.retry_after_max:.0f} s one request may wait; let the task's retries try later",
                )
            delay = policy.wait(int(spent["throttled"] + spent["failed"]), exc.retry_after)
            spent["waited"] += delay
            if spent["waited"] > policy.max_total_wait:
                raise _TooLong(
                    exc.error, f"gave up after waiting {spent['waited'] - delay:.1f} s between attempts"
                )
            if exc.error.status != 429:
                self.summary.retried += 1
            asked = "server asked: Retry-After" if exc.retry_after is not None else "backoff after an error"
            self.summary.tell(delay, f"{asked}, {exc.error.endpoint}")
            log.debug("Eshopbox request retry %d in %.2f s: %s", state.attempt_number, delay, exc)
            return delay

        retrying = AsyncRetrying(stop=stop, wait=wait, retry=retry_if_exception_type(_Retry), reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(spec)
        except _Retry as exc:
            attempts = spent["throttled"] if exc.error.status == 429 else spent["failed"]
            raise _gave_up(exc.error, f"gave up after {attempts:.0f} attempts") from None
        except _TooLong as exc:
            raise _gave_up(exc.error, exc.why) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        """Close the client of the running loop (others close with their loops)."""
        self.summary.maybe_log(force=True)
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()


class ThrottleSummary:
    """Throttling and retries told in the task log as one line every ``every`` s at most, with
    counts, instead of a line per wait that would bury the progress lines; and a line for each wait
    longer than ``LONG_WAIT_S``, so that a user sees a throttled task is alive."""

    def __init__(self, limiter: RateLimiter, every: float = 30.0) -> None:
        self.limiter = limiter
        self.every = every
        self.throttled = 0  # 429s
        self.retried = 0  # errors retried
        self.waits = 0  # requests the limiter held back
        self.waited = 0.0  # wall time in which at least one was held back (not a sum over requests)
        self._held_until = self._told_until = -math.inf
        self._told = (0, 0, 0, 0.0)  # throttled, retried, waits, waited: as last logged
        self._last = time.monotonic()

    def hold(self, seconds: float) -> None:
        """The limiter holds a request for ``seconds``: add what it adds to the wall time waiting."""
        now = time.monotonic()
        self.waited += max(0.0, now + seconds - max(now, self._held_until))
        self._held_until = max(self._held_until, now + seconds)
        if seconds > LONG_WAIT_S:
            self.tell(seconds, self.limiter.reason())

    def tell(self, seconds: float, why: str) -> None:
        """Log a long wait once, however many requests share it."""
        until = time.monotonic() + seconds
        if seconds > LONG_WAIT_S and until > self._told_until + 1.0:
            self._told_until = until
            log.info("Eshopbox requests waiting %.0f s (%s)", seconds, why)

    def maybe_log(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return
        waited = self.waited - max(0.0, self._held_until - now)  # the part of holds already past
        counts = (self.throttled, self.retried, self.waits, waited)
        throttled, retried, waits, waited = (a - b for a, b in zip(counts, self._told, strict=True))
        if not (throttled or retried or waits):
            return
        log.info(
            "Eshopbox requests in the last %.0f s: %d held back for %.1f s of wall time by %s; "
            "%d answered 429, %d retried after errors",
            now - self._last,
            waits,
            waited,
            self.limiter.reason(),
            throttled,
            retried,
        )
        self._told, self._last = counts, now


class _TooLong(Exception):
    """Internal: waiting any longer for this request is not reasonable; ``why`` says so."""

    def __init__(self, error: EshopboxApiError, why: str) -> None:
        super().__init__(why)
        self.error, self.why = error, why


def _gave_up(error: EshopboxApiError, why: str) -> EshopboxApiError:
    return EshopboxApiError(error.status, error.endpoint, f"{error.message} ({why})", details=error.details)
