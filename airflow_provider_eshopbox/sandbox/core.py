"""``EshopboxSandbox``: the facade tests and users hold — data, credentials, faults, stats, server.

Usage::

    with EshopboxSandbox(orders=2000, seed=7, token_ttl=3600) as sb:
        os.environ["AIRFLOW_CONN_ESHOPBOX_DEFAULT"] = sb.connection_json()
        ...
        assert got_ids == sb.truth_order_item_ids(start, end)
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import ssl
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

from .app import build_app, order_shape
from .auth import Credentials, TokenRegistry
from .clock import SandboxClock
from .data import BUCKETS, DEFAULT_DAYS, DEFAULT_START, generate, row_schema_fields, to_ms
from .faults import FaultConfig
from .quirks import QuirkConfig
from .server import ServerThread
from .stats import SandboxStats
from .store import SandboxStore
from .streams import StreamsSandboxMixin
from .tls import LOOPBACK_NAMES, SandboxTLS

TimeArg = datetime | int | float | None


def is_loopback(host: str) -> bool:
    """True for a bind address only this machine can reach (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EshopboxSandbox(StreamsSandboxMixin):
    """A local, deterministic Eshopbox: seeded data + HTTP emulator + ground truth + fault injection.

    ``orders``: number of orders (1-4 items each); ``order_items``: exact row count instead.
    ``start``/``days``: the span of generated ``updatedAt`` values. ``port=0`` picks a free port.
    ``tls=True``: serve HTTPS with a throw-away CA made at start-up (``ca_bundle``, removed on stop).
    ``quirks``: behave like a server that breaks an ASSUMPTION, e.g. ``{"clamp_per_page": 20}`` (quirks.py).
    """

    def __init__(
        self,
        *,
        orders: int = 2000,
        seed: int = 7,
        token_ttl: int = 86400,
        port: int = 0,
        host: str = "127.0.0.1",
        workspace: str = "acme",
        order_items: int | None = None,
        products: int | None = None,
        start: datetime | int = DEFAULT_START,
        days: int = DEFAULT_DAYS,
        hit_cap: int = 1000,
        per_page_max: int = 100,
        inventory_per_page_max: int = 100,
        rotate_refresh_token: bool = False,
        require_filters: bool = False,
        latency_ms: float = 0,
        clock: SandboxClock | None = None,
        tls: bool = False,
        quirks: Mapping[str, Any] | Iterable[str] | None = None,
    ) -> None:
        self.seed = seed
        self.workspace = workspace
        self.host = host
        # off loopback, /__sandbox__ (connection secrets at /info included) wants this in X-Sandbox-Token
        self.control_token: str | None = None if is_loopback(host) else f"sbx-ctl-{secrets.token_hex(18)}"
        self.port = port
        self.tls = tls
        self._tls: SandboxTLS | None = None
        self.hit_cap = hit_cap
        self.per_page_max = per_page_max
        self.inventory_per_page_max = inventory_per_page_max
        self.require_filters = require_filters
        self.clock = clock or SandboxClock()
        self.known_fields = row_schema_fields()
        self._data_start_ms = to_ms(start)
        self._data_days = max(1, days)  # as the generator reads it
        seed_data = generate(
            workspace=workspace,
            orders=orders,
            seed=seed,
            start=start,
            days=days,
            order_items=order_items,
            products=products,
        )
        self.store = SandboxStore(seed_data, seed=seed)
        self.credentials = Credentials.for_seed(seed)
        self.tokens = TokenRegistry(self.credentials, self.clock, token_ttl, rotate_refresh_token)
        self.faults = FaultConfig(seed)
        self.quirks = QuirkConfig(quirks)  # standing departures from api.py's ASSUMPTIONs (quirks.py)
        if latency_ms:
            self.faults.configure(latency_ms=latency_ms)
        self.stats_counter = SandboxStats()
        self._server: ServerThread | None = None
        self._stopping = threading.Event()

    # ------------------------------------------------------------- lifecycle
    def start(self) -> EshopboxSandbox:
        """Serve in a daemon thread; returns once listening."""
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        certs: dict[str, str] = {}
        if self.tls:
            extra = () if self.host in ("", "0.0.0.0", "::") else (self.host,)
            self._tls = SandboxTLS((*LOOPBACK_NAMES, *extra))
            certs = {"ssl_certfile": self._tls.certfile, "ssl_keyfile": self._tls.keyfile}
        try:
            self._stopping = threading.Event()
            server = ServerThread(build_app(self, self._stopping), self.host, self.port, **certs)
            server.start()
        except BaseException:
            self._drop_tls()
            raise
        self._server = server
        self.port = server.port
        return self

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._server is not None:
            self._stopping.set()
            self._server.stop()
            self._server = None
        self._drop_tls()

    def _drop_tls(self) -> None:
        if self._tls is not None:
            self._tls.cleanup()
            self._tls = None

    def __enter__(self) -> EshopboxSandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ URLs
    @property
    def origin(self) -> str:
        """``http://host:port`` of the running server (``https://`` with ``tls=True``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def ca_bundle(self) -> str | None:
        """Path to the throw-away CA's PEM while a TLS sandbox runs (None without TLS or before start)."""
        return self._tls.ca_bundle if self._tls is not None else None

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying client SSL context trusting only this sandbox's CA (``tls=True``, started)."""
        if self._tls is None:
            raise RuntimeError("ssl_context() needs a started sandbox with tls=True")
        return self._tls.client_context()

    @property
    def auth_url(self) -> str:
        """Full token URL (``{origin}/auth/api/v1/generateToken``)."""
        return f"{self.origin}/auth/api/v1/generateToken"

    @property
    def oauth_token_url(self) -> str:
        """The alternative token path the docs' prose mentions (``{origin}/auth/oauth/token``)."""
        return f"{self.origin}/auth/oauth/token"

    @property
    def api_url(self) -> str:
        """Workspace host base URL (``{origin}/ws/{workspace}``); send ``ProxyHost: {workspace}``."""
        return f"{self.origin}/ws/{self.workspace}"

    @property
    def wms_url(self) -> str:
        """WMS host base URL (``{origin}/wms``)."""
        return f"{self.origin}/wms"

    @property
    def client_id(self) -> str:
        """Custom-app client id."""
        return self.credentials.client_id

    @property
    def client_secret(self) -> str:
        """Custom-app client secret (``sbx-secret-`` + 40 hex)."""
        return self.credentials.client_secret

    @property
    def refresh_token(self) -> str:
        """The refresh token to use (the latest issued one when rotation is on)."""
        return self.tokens.current_refresh_token

    def _extra(self) -> dict[str, str]:
        extra = {
            "workspace": self.workspace,
            "refresh_token": self.refresh_token,
            "auth_url": self.auth_url,
            "api_url": self.api_url,
            "wms_url": self.wms_url,
        }
        if not self.tls and not is_loopback(self.host):  # a LAN sandbox: its throw-away secrets in clear
            extra["allow_plain_http"] = "true"
        if self.tls:
            if self.ca_bundle is None:
                raise RuntimeError("a tls=True sandbox makes its CA at start-up: start it first")
            extra["ca_bundle"] = self.ca_bundle
        return extra

    def connection_json(self) -> str:
        """JSON value for ``AIRFLOW_CONN_ESHOPBOX_DEFAULT`` (extra ``ca_bundle`` with ``tls=True``)."""
        return json.dumps(
            {
                "conn_type": "eshopbox",
                "login": self.client_id,
                "password": self.client_secret,
                "extra": self._extra(),
            }
        )

    def connection_uri(self) -> str:
        """Airflow connection URI form of the same connection."""
        user = quote(self.client_id, safe="")
        secret = quote(self.client_secret, safe="")
        return f"eshopbox://{user}:{secret}@/?{urlencode(self._extra())}"

    @property
    def data_window(self) -> tuple[datetime, datetime]:
        """``(start, end)`` (UTC) of the generated updatedAt/updatedOn values: seeded data lies in
        [start, end); later edits are stamped with the sandbox clock (today), outside it."""
        start = datetime.fromtimestamp(self._data_start_ms / 1000, tz=timezone.utc)
        return start, start + timedelta(days=self._data_days)

    # ----------------------------------------------------------- state edits
    def revoke_tokens(self) -> int:
        """Invalidate every access token minted so far (they now get 401 Expired token)."""
        return self.tokens.revoke_all()

    def set_order_status(self, customer_order_number: str, status: str) -> list[str]:
        """Move all items of an order to ``status`` with updatedAt = now; returns their orderItemIDs."""
        info = self.store.orders.get(customer_order_number)
        if info is None:
            raise KeyError(f"unknown customerOrderNumber {customer_order_number!r}")
        self.store.set_status(info.item_ids, status, self.clock.now_ms())
        return list(info.item_ids)

    def ship_order(self, customer_order_number: str) -> list[str]:
        """All items -> ``shipped`` (updatedAt = now), for sensors waiting on shipment."""
        return self.set_order_status(customer_order_number, "shipped")

    def deliver_order(self, customer_order_number: str) -> list[str]:
        """All items -> ``delivered`` (updatedAt = now)."""
        return self.set_order_status(customer_order_number, "delivered")

    def cancel_order(self, customer_order_number: str) -> list[str]:
        """All items -> ``cancelled`` (updatedAt = now), as if cancelled outside the API."""
        return self.set_order_status(customer_order_number, "cancelled")

    def update_order_rows(
        self, order_item_ids: Iterable[str], updated_at: TimeArg = None, **changes: Any
    ) -> int:
        """Change rows (dotted keys via ``**{"customerDetails.shippingCity": ...}``); updatedAt = now
        unless ``updated_at`` is given. Returns the number of rows changed."""
        ids = [order_item_ids] if isinstance(order_item_ids, str) else list(order_item_ids)
        when = self.clock.now_ms() if updated_at is None else to_ms(updated_at)
        return self.store.update_rows(ids, changes, when)

    def set_stock(self, esin_or_sku: str, warehouse: str, **buckets: int) -> str:
        """Set stock buckets for (ESIN or SKU, warehouse); bumps the ESIN's updatedOn. Returns the ESIN."""
        esin = self.store.resolve_esin(esin_or_sku)
        self.store.set_stock(esin, warehouse, buckets, self.clock.now_ms())
        return esin

    # ---------------------------------------------------------- ground truth
    @staticmethod
    def _bounds(start: TimeArg, end: TimeArg) -> tuple[int | None, int | None]:
        return (None if start is None else to_ms(start), None if end is None else to_ms(end))

    def truth_order_item_ids(self, start: TimeArg = None, end: TimeArg = None) -> set[str]:
        """orderItemIDs with start <= updatedAt < end (datetimes or epoch ms; None = open)."""
        return set(self.store.ids_between(*self._bounds(start, end)))

    def truth_order_rows(self, start: TimeArg = None, end: TimeArg = None) -> list[dict[str, Any]]:
        """Full rows (copies) with start <= updatedAt < end, in updatedAt order."""
        store = self.store
        with store.lock:
            return [
                {k: (dict(v) if isinstance(v, dict) else v) for k, v in store.rows[i].items()}
                for i in store.ids_between(*self._bounds(start, end))
            ]

    def order(self, customer_order_number: str) -> dict[str, Any] | None:
        """The §3.2 shape of one order as the WMS GET would return it (None if unknown)."""
        return order_shape(self.store, customer_order_number)

    def inventory_rows(self) -> list[dict[str, Any]]:
        """Stock table flattened: one dict per (esin, warehouse) with sku, updatedOn and the buckets."""
        store = self.store
        with store.lock:
            return [
                {
                    "esin": esin,
                    "sku": store.products_by_esin[esin].sku,
                    "warehouse": wh,
                    "updatedOn": store.stock_updated_ms[esin],
                    **{b: buckets[b] for b in BUCKETS},
                }
                for esin in store.esins_sorted
                for wh, buckets in store.stock[esin].items()
            ]

    def esins_updated_between(self, start: TimeArg = None, end: TimeArg = None) -> set[str]:
        """ESINs with start <= updatedOn < end (half-open, like the other truth queries)."""
        lo, hi = self._bounds(start, end)
        with self.store.lock:
            return {
                e
                for e, ts in self.store.stock_updated_ms.items()
                if (lo is None or ts >= lo) and (hi is None or ts < hi)
            }

    def orders_created(self) -> dict[str, int]:
        """customerOrderNumber -> number of successful create POSTs (a correct client never exceeds 1)."""
        with self.store.lock:
            return dict(self.store.created_counts)

    def products(self) -> list[dict[str, Any]]:
        """The product catalogue in the product-engine shape."""
        return [p.to_api() for p in self.store.products]

    # ---------------------------------------------------------------- stats
    def stats(self) -> dict[str, Any]:
        """Counters: requests, by_route, by_status, token_exchanges, token_requests,
        missing_proxy_host, faults_injected, max_concurrent (and in_flight, dripping: drip replies
        still sending)."""
        return self.stats_counter.snapshot()

    def reset_stats(self) -> None:
        """Zero the counters."""
        self.stats_counter.reset()
