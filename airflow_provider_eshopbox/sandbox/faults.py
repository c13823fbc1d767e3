"""Fault injection: seeded random faults, scripted one-shots and a server-side token-bucket limit.

Faults apply to API routes only (never ``/__sandbox__``). Kinds: ``latency`` (non-blocking sleep),
``throttle`` (429 + Retry-After), ``error`` (5xx envelope), ``drop`` (connection closed, no response),
``truncate`` (200 with half a JSON body), ``hang`` (long delay, then a normal answer), ``mutate``
(orders list only: a few matching rows get ``updatedAt`` = now before the page is served),
``rate_limit`` (token bucket; excess requests get 429 + Retry-After in whole seconds), ``drip`` (the
reply trickles out a few bytes at a time), ``echo_secrets`` (error replies quote the request's
credentials), ``order_get_lag`` (a just-created order is 404 on GET for a while),
``store_then_fail`` (the request takes effect, then the reply is a 500) and ``inventory_update``
(inventoryListing only: a few matching ESINs change stock, updatedOn = now, before a page is cut).
Random decisions come from a ``random.Random(seed)`` re-seeded by every ``configure`` call, so a
given configuration and request sequence always injects the same faults.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ROUTES = (
    "token",
    "orders_list",
    "order_get",
    "order_create",
    "order_cancel",
    "product_get",
    "inventory_list",
    # sandbox/streams.py
    "shipments_list",
    "tracking",
    "returns_list",
    "return_get",
    "products_list",
)
SCRIPT_KINDS = ("drop", "truncate", "hang", "ok", "store_then_fail")
DRIP_PHASES = ("headers", "body")


@dataclass
class FaultPlan:
    """What to do to one request; ``action`` is None (serve), status, drop, truncate or hang."""

    latency_s: float = 0.0
    action: str | None = None
    status: int = 200
    retry_after: int | None = None
    hang_s: float = 0.0
    mutate_rows: int = 0
    kinds: list[str] = field(default_factory=list)
    drip_bytes_per_s: float = 0.0
    drip_phase: str = "body"
    drip_max_s: float = 600.0
    echo_secrets: bool = False
    order_get_lag_s: float = 0.0
    inventory_updates: int = 0
    pick_seed: int = 0


@dataclass
class _Random:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503)
    throttle_rate: float = 0.0
    retry_after: int = 1
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    mutate_rate: float = 0.0
    mutate_rows: int = 3
    hang_s: float = 30.0
    routes: frozenset[str] | None = None
    drip_bytes_per_s: float = 0.0
    drip_phase: str = "body"
    drip_max_s: float = 600.0
    drip_routes: frozenset[str] | None = None
    echo_secrets: bool = False
    echo_secrets_routes: frozenset[str] | None = None
    order_get_lag_s: float = 0.0
    create_store_then_fail: float = 0.0
    inventory_updates_while_paging: int = 0


class _Bucket:
    """Token bucket on the monotonic clock."""

    def __init__(self, rps: float, burst: int) -> None:
        self.rps = rps
        self.burst = burst
        self.tokens = float(burst)
        self.last = time.monotonic()

    def take(self) -> int | None:
        """None when allowed, else the whole seconds until a token is available (>= 1)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rps)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return max(1, math.ceil((1 - self.tokens) / self.rps))


class FaultConfig:
    """The switchboard tests and users flip; ``plan(route)`` is asked once per API request."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._cfg = _Random()
        self._scripts: dict[str, deque[int | str]] = {}
        self._bucket: _Bucket | None = None
        self._bucket_routes: frozenset[str] | None = None
        self._limit: dict[str, Any] | None = None

    def configure(
        self,
        *,
        latency_ms: float = 0,
        error_rate: float = 0.0,
        error_statuses: Sequence[int] = (500, 502, 503),
        throttle_rate: float = 0.0,
        retry_after: int = 1,
        drop_rate: float = 0.0,
        truncate_rate: float = 0.0,
        mutate_rate: float = 0.0,
        mutate_rows: int = 3,
        hang_s: float = 30.0,
        routes: Iterable[str] | None = None,
        seed: int | None = None,
        drip_bytes_per_s: float = 0.0,
        drip_phase: str = "body",
        drip_max_s: float = 600.0,
        drip_routes: Iterable[str] | None = None,
        echo_secrets: bool = False,
        echo_secrets_routes: Iterable[str] | None = None,
        order_get_lag_s: float = 0.0,
        create_store_then_fail: float = 0.0,
        inventory_updates_while_paging: int = 0,
    ) -> None:
        """Replace the random-fault settings (rates are probabilities per request) and re-seed.

        ``routes`` limits latency and the random faults (default: all API routes). The rest:

        * ``drip_bytes_per_s`` > 0: replies on ``drip_routes`` (default all) trickle onto the socket
          at that rate, a byte or a few every max(0.05, 1/rate) s, so a per-read timeout never fires.
          ``drip_phase="body"``: status and headers at once, then the body, led by JSON whitespace
          padding so the trickle lasts ``drip_max_s``; ``"headers"``: the status line, then a filler
          header for ``drip_max_s``, then the rest. Either way the reply completes after about
          ``drip_max_s`` (default 600), or ends early when the client leaves or the sandbox stops.
        * ``echo_secrets``: every error reply (status >= 400, token errors included) quotes the
          request's credentials (client_id, client_secret, refresh_token, bearer token) in the middle
          of a > 300-char message. ``echo_secrets_routes``: those routes answer 400 to every request
          (echoing, whatever ``echo_secrets`` says) instead of being served.
        * ``order_get_lag_s``: an order created through the API is 404 on GET for this many seconds
          of sandbox time after its creation (``sb.clock.advance`` skips the wait).
        * ``create_store_then_fail``: probability that a valid create-order is stored and then
          answered 500 (script step ``"store_then_fail"`` does it once, on any route).
        * ``inventory_updates_while_paging`` = n: before each inventoryListing page is cut, n
          ESINs matching its ``updatedOn`` range (seeded pick) get sellable stock raised in one
          warehouse and updatedOn = now, as ``mutate_*`` does to orders. Subject to ``routes``.
        """
        if drip_phase not in DRIP_PHASES:
            raise ValueError(f"drip_phase must be one of {DRIP_PHASES}, got {drip_phase!r}")
        if int(inventory_updates_while_paging) < 0:
            raise ValueError("inventory_updates_while_paging must be >= 0")
        if float(drip_bytes_per_s) < 0 or float(drip_max_s) <= 0 or float(order_get_lag_s) < 0:
            raise ValueError("drip_bytes_per_s and order_get_lag_s must be >= 0, drip_max_s > 0")
        for name, rate in (
            ("error_rate", error_rate),
            ("throttle_rate", throttle_rate),
            ("drop_rate", drop_rate),
            ("truncate_rate", truncate_rate),
            ("mutate_rate", mutate_rate),
            ("create_store_then_fail", create_store_then_fail),
        ):
            if not 0.0 <= float(rate) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate!r}")
        statuses = tuple(int(s) for s in error_statuses)
        if not statuses:
            raise ValueError("error_statuses must not be empty")
        cfg = _Random(
            latency_ms=float(latency_ms),
            error_rate=float(error_rate),
            error_statuses=statuses,
            throttle_rate=float(throttle_rate),
            retry_after=int(retry_after),
            drop_rate=float(drop_rate),
            truncate_rate=float(truncate_rate),
            mutate_rate=float(mutate_rate),
            mutate_rows=int(mutate_rows),
            hang_s=float(hang_s),
            routes=_routes(routes),
            drip_bytes_per_s=float(drip_bytes_per_s),
            drip_phase=drip_phase,
            drip_max_s=float(drip_max_s),
            drip_routes=_routes(drip_routes),
            echo_secrets=bool(echo_secrets),
            echo_secrets_routes=_routes(echo_secrets_routes),
            order_get_lag_s=float(order_get_lag_s),
            create_store_then_fail=float(create_store_then_fail),
            inventory_updates_while_paging=int(inventory_updates_while_paging),
        )
        with self._lock:
            self._cfg = cfg
            self._rng = random.Random(self.seed if seed is None else seed)

    def script(self, route: str, steps: Sequence[int | str]) -> None:
        """Queue one-shots for the next requests to ``route``: HTTP statuses or
        drop/truncate/hang/ok/store_then_fail (serve the request, then answer 500)."""
        _routes([route])
        queued: list[int | str] = []
        for step in steps:
            kind_ok = isinstance(step, str) and step in SCRIPT_KINDS
            status_ok = isinstance(step, int) and not isinstance(step, bool) and 100 <= step <= 599
            if kind_ok or status_ok:
                queued.append(step)
            else:
                raise ValueError(f"script step must be an HTTP status or one of {SCRIPT_KINDS}, got {step!r}")
        with self._lock:
            self._scripts.setdefault(route, deque()).extend(queued)

    def rate_limit(self, rps: float, burst: int | None = None, routes: Iterable[str] | None = None) -> None:
        """Server-side token bucket shared by the given routes (default all API routes)."""
        if rps <= 0:
            raise ValueError("rps must be positive")
        size = max(1, int(burst if burst is not None else math.ceil(rps)))
        with self._lock:
            self._bucket = _Bucket(float(rps), size)
            self._bucket_routes = _routes(routes)
            self._limit = {"rps": rps, "burst": size, "routes": sorted(self._bucket_routes or [])}

    def clear(self) -> None:
        """Remove every fault: random settings, scripts and the rate limit."""
        with self._lock:
            self._cfg = _Random()
            self._rng = random.Random(self.seed)
            self._scripts.clear()
            self._bucket = None
            self._bucket_routes = None
            self._limit = None

    def snapshot(self) -> dict[str, Any]:
        """Current settings as JSON-ready data (``GET /__sandbox__/faults``)."""
        with self._lock:
            cfg = self._cfg
            return {
                "latency_ms": cfg.latency_ms,
                "error_rate": cfg.error_rate,
                "error_statuses": list(cfg.error_statuses),
                "throttle_rate": cfg.throttle_rate,
                "retry_after": cfg.retry_after,
                "drop_rate": cfg.drop_rate,
                "truncate_rate": cfg.truncate_rate,
                "mutate_rate": cfg.mutate_rate,
                "mutate_rows": cfg.mutate_rows,
                "hang_s": cfg.hang_s,
                "routes": None if cfg.routes is None else sorted(cfg.routes),
                "drip_bytes_per_s": cfg.drip_bytes_per_s,
                "drip_phase": cfg.drip_phase,
                "drip_max_s": cfg.drip_max_s,
                "drip_routes": None if cfg.drip_routes is None else sorted(cfg.drip_routes),
                "echo_secrets": cfg.echo_secrets,
                "echo_secrets_routes": (
                    None if cfg.echo_secrets_routes is None else sorted(cfg.echo_secrets_routes)
                ),
                "order_get_lag_s": cfg.order_get_lag_s,
                "create_store_then_fail": cfg.create_store_then_fail,
                "inventory_updates_while_paging": cfg.inventory_updates_while_paging,
                "script": {route: list(steps) for route, steps in self._scripts.items() if steps},
                "rate_limit": self._limit,
            }

    def apply(self, body: Mapping[str, Any]) -> None:
        """Apply a JSON control body: configure keys, plus optional ``script`` and ``rate_limit``."""
        body = dict(body)
        script = body.pop("script", None) or {}
        limit = body.pop("rate_limit", None)
        if "error_statuses" in body:
            body["error_statuses"] = tuple(body["error_statuses"])
        self.configure(**body)
        if not isinstance(script, Mapping):
            raise ValueError("script must map route names to lists of steps")
        for route, steps in script.items():
            self.script(route, steps)
        if limit is not None:
            if not isinstance(limit, Mapping):
                raise ValueError("rate_limit must be an object with rps and burst")
            self.rate_limit(float(limit["rps"]), limit.get("burst"), limit.get("routes"))

    def plan(self, route: str) -> FaultPlan:
        """Decide the faults for one request to ``route`` (consumes scripts, bucket tokens, randomness)."""
        plan = FaultPlan()
        with self._lock:
            cfg = self._cfg
            plan.hang_s = cfg.hang_s
            plan.retry_after = cfg.retry_after
            _passive(plan, cfg, route)
            queue = self._scripts.get(route)
            if queue:
                step = queue.popleft()
                _scripted(plan, step)
                return plan
            if self._bucket is not None and (self._bucket_routes is None or route in self._bucket_routes):
                wait = self._bucket.take()
                if wait is not None:
                    plan.action, plan.status, plan.retry_after = "status", 429, wait
                    plan.kinds.append("rate_limit")
                    return plan
            if cfg.echo_secrets_routes is not None and route in cfg.echo_secrets_routes:
                plan.action, plan.status, plan.echo_secrets = "status", 400, True
                return plan
            if cfg.routes is not None and route not in cfg.routes:
                return plan
            if cfg.latency_ms > 0:
                plan.latency_s = cfg.latency_ms / 1000
                plan.kinds.append("latency")
            rng = self._rng
            if cfg.drop_rate and rng.random() < cfg.drop_rate:
                plan.action = "drop"
            elif cfg.throttle_rate and rng.random() < cfg.throttle_rate:
                plan.action, plan.status = "status", 429
            elif cfg.error_rate and rng.random() < cfg.error_rate:
                plan.action, plan.status = "status", rng.choice(cfg.error_statuses)
            elif cfg.truncate_rate and rng.random() < cfg.truncate_rate:
                plan.action = "truncate"
            elif (
                route == "order_create"
                and cfg.create_store_then_fail
                and rng.random() < cfg.create_store_then_fail
            ):
                plan.action = "store_then_fail"
            if plan.action is not None:
                plan.kinds.append(_kind(plan))
            if route == "orders_list" and cfg.mutate_rate and rng.random() < cfg.mutate_rate:
                plan.mutate_rows = cfg.mutate_rows
                plan.kinds.append("mutate")
            if route == "inventory_list" and cfg.inventory_updates_while_paging:
                plan.inventory_updates = cfg.inventory_updates_while_paging
                plan.pick_seed = rng.getrandbits(32)
                plan.kinds.append("inventory_update")
            return plan


def _passive(plan: FaultPlan, cfg: _Random, route: str) -> None:
    """Settings that shape any reply (scripted ones too): drip, echo, GET lag."""
    if cfg.drip_bytes_per_s > 0 and (cfg.drip_routes is None or route in cfg.drip_routes):
        plan.drip_bytes_per_s = cfg.drip_bytes_per_s
        plan.drip_phase = cfg.drip_phase
        plan.drip_max_s = cfg.drip_max_s
        plan.kinds.append("drip")
    plan.echo_secrets = cfg.echo_secrets
    if route == "order_get":
        plan.order_get_lag_s = cfg.order_get_lag_s


def _scripted(plan: FaultPlan, step: int | str) -> None:
    if step == "ok":
        return
    if isinstance(step, int):
        plan.action, plan.status = "status", step
    else:
        plan.action = step
    plan.kinds.append(_kind(plan))


def _kind(plan: FaultPlan) -> str:
    if plan.action == "status":
        return "throttle" if plan.status == 429 else "error"
    return str(plan.action)


def _routes(routes: Iterable[str] | None) -> frozenset[str] | None:
    if routes is None:
        return None
    chosen = frozenset([routes] if isinstance(routes, str) else routes)
    unknown = chosen - set(ROUTES)
    if unknown:
        raise ValueError(f"unknown route(s) {sorted(unknown)}; known: {', '.join(ROUTES)}")
    return chosen
