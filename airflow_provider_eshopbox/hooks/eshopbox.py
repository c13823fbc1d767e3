"""EshopboxHook: the Eshopbox API for one connection, with token caching, retries and a rate limit.

Every call is written once, as an ``a*`` coroutine whose HTTP request is visible where it is made;
each sync method runs its coroutine on the hook's private event loop (``_loop.run_sync``). The
reply parsers below are pure functions, shared by every caller.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import quote

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.sdk.log import mask_secret

try:
    from airflow.sdk.log import amask_secret
except ImportError:  # Airflow 3.2 (task-sdk 1.2) has no async masker: the sync one, off the event loop.

    async def amask_secret(secret: str, name: str | None = None) -> None:
        """``mask_secret`` on a worker thread: its blocking send waits for the comms' thread lock
        while an ``asend`` in flight on this loop finishes, instead of deadlocking the loop."""
        await asyncio.to_thread(mask_secret, secret, name)


from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.connection import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    FIELD_LABELS,
    EshopboxConnectionConfig,
    config_from_connection,
)
from airflow_provider_eshopbox.exceptions import (
    EshopboxAmbiguousWriteError,
    EshopboxApiError,
    EshopboxAuthError,
    EshopboxConfigError,
    EshopboxContractError,
    EshopboxCredentialsRejectedError,
    EshopboxDeadlineError,
    EshopboxError,
    EshopboxRejectedWriteError,
)
from airflow_provider_eshopbox.hooks import _loop
from airflow_provider_eshopbox.hooks._http import HttpClient, Reply, RequestSpec, RetryPolicy, limiter_for
from airflow_provider_eshopbox.hooks.rawjson import RawItems
from airflow_provider_eshopbox.hooks.token_cache import (
    CachedToken,
    FileTokenStore,
    TokenCache,
    default_cache_dir,
)

T = TypeVar("T")
UpdatedOn = tuple[datetime | None, datetime | None] | str | None


class EshopboxConnectionNotFoundError(EshopboxConfigError):
    """The conn id names no Airflow connection: the task fails at once, never retried (a retry would
    find none either), before any network call."""

    def __init__(self, conn_id: str) -> None:
        env = "AIRFLOW_CONN_" + "".join(c if c.isalnum() else "_" for c in conn_id).upper()
        super().__init__(
            f"Eshopbox connection {conn_id!r} does not exist: no Airflow connection has that conn id. "
            f"Create it (Admin > Connections > Add, type Eshopbox; or `airflow connections add {conn_id} "
            f"--conn-type eshopbox ...`; or the environment variable {env}), or choose an existing "
            "Eshopbox connection (the trigger form's 'Eshopbox connection' field, or the task's "
            "eshopbox_conn_id). Not retried: a retry would fail the same way",
            field="eshopbox_conn_id",
            conn_id=conn_id,
        )


# --- results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OrdersPage:
    """One page of the order-item list.

    ``hits`` are decoded on first use: a sync reads only ``row_keys`` and ``hit_texts``.
    """

    page: int
    has_next: bool
    per_page: int = api.ORDERS_PER_PAGE_MAX
    #: each hit's JSON text (UTF-8) exactly as the API sent it: a sync writes rows without re-encoding
    hit_texts: list[bytes] | None = None
    #: ``(orderItemID, updatedAt)`` of each hit, read without decoding it; None if a hit lacks either
    row_keys: list[tuple[str, int]] | None = None
    _hits: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def hits(self) -> list[dict[str, Any]]:
        """The hits, decoded as ``json.loads`` decodes them."""
        if self._hits is None:
            object.__setattr__(self, "_hits", RawItems(self.hit_texts or []).decoded())
        assert self._hits is not None
        return self._hits

    @property
    def reached_hit_cap(self) -> bool:
        """True when this page ends at or beyond ORDERS_HIT_CAP: later rows may be unreachable."""
        return self.page * self.per_page >= api.ORDERS_HIT_CAP


@dataclass(frozen=True)
class CreateOrderResult:
    """Outcome of an idempotent create: ``created`` by this call, or ``existing`` already."""

    status: Literal["created", "existing"]
    order: dict[str, Any]


# --- pure interpretation shared by both paths --------------------------------------------------
def parse_token_reply(conn_id: str, reply: Reply) -> tuple[str, float, str | None]:
    """``(access_token, expires_in, new_refresh_token)`` from a token reply, or EshopboxAuthError."""
    label = api.TOKEN.label
    if reply.status in (400, 401, 403):
        reason = api.error_message(reply.data) or f"HTTP {reply.status}"
        raise EshopboxCredentialsRejectedError(
            f"Eshopbox rejected the credentials of connection {conn_id!r} at the token endpoint "
            f"(HTTP {reply.status}: {reason}); check client_id/client_secret/refresh_token, "
            "the app may have been uninstalled."
        )

    def unexpected(why: str) -> EshopboxAuthError:
        return EshopboxAuthError(
            f"Eshopbox token endpoint returned an unexpected reply for connection {conn_id!r} "
            f"({label}, HTTP {reply.status}): {why}."
        )

    if not 200 <= reply.status < 300:
        raise unexpected(api.error_message(reply.data) or f"not a success ({reply.content_type})")
    if not isinstance(reply.data, Mapping):
        raise unexpected("body is not a JSON object")
    access = reply.data.get("access_token")
    if not isinstance(access, str) or not access:
        raise unexpected("no access_token")
    raw = reply.data.get("expires_in")
    if raw is None:
        expires_in = api.DEFAULT_EXPIRES_IN
    else:
        try:
            expires_in = float(raw) if not isinstance(raw, bool) else float("nan")
        except (TypeError, ValueError):
            raise unexpected("expires_in is not a number") from None
        if not expires_in > 0 or expires_in == float("inf"):
            raise unexpected("expires_in is not a positive number")
    new_refresh = reply.data.get("refresh_token")
    return access, expires_in, new_refresh if isinstance(new_refresh, str) and new_refresh else None


def parse_orders_page(data: Any, page: int, per_page: int) -> OrdersPage:
    """Validate an orders/erp reply ``{"hits": [...], "hasNext": bool}``; errors name what is wrong."""

    def bad(problem: str) -> EshopboxApiError:
        return EshopboxApiError(
            200,
            api.ORDERS_LIST.label,
            f"unexpected response shape: {problem} (want 'hits' list of objects and 'hasNext' bool)",
        )

    if not isinstance(data, Mapping):
        raise bad(f"body is {_json_type(data)}, not an object")
    if "hits" not in data and "error" in data:  # a 200 carrying an error envelope (error_200)
        raise EshopboxContractError(
            api.ORDERS_LIST.label,
            "ORDERS_LIST",
            f"a 200 reply carries an error envelope instead of hits: {str(data['error'])[:200]}",
            hint="The server sends errors with status 200; the read cannot tell them from data.",
        )
    if "hits" not in data and data.get("hasNext") is False:
        raw: Any = []  # "nothing here": a 1-based server's page=0 reply, live-checked ([T2], §3.1)
    elif "hits" not in data:
        raise bad("'hits' is missing")
    else:
        raw = data["hits"]
    row_keys = hit_texts = None
    if isinstance(raw, RawItems):  # left undecoded by the transport: read only what a sync needs
        row_keys = raw.id_and_number(api.ORDER_ROW_ID_FIELD, api.ORDERS_UPDATED_AT_FIELD)
        hit_texts, raw = raw.texts, (None if row_keys is not None else raw.decoded())
    elif not isinstance(raw, list):
        raise bad(f"'hits' is not a list (got {_json_type(raw)})")
    if "hasNext" not in data:
        raise bad("'hasNext' is missing")
    if not isinstance(data["hasNext"], bool):
        raise bad(f"'hasNext' is not a bool (got {_json_type(data['hasNext'])})")
    hits = None
    if raw is not None:  # decoded: each hit must be an object (row keys prove it when read)
        for index, hit in enumerate(raw):
            if type(hit) is not dict and not isinstance(hit, Mapping):  # the exact check first: cheap
                raise bad(f"hit {index} is not an object (got {_json_type(hit)})")
        hits = list(raw)
    return OrdersPage(
        page=page,
        has_next=data["hasNext"],
        per_page=per_page,
        hit_texts=hit_texts,
        row_keys=row_keys,
        _hits=hits,
    )


def next_orders_page(result: OrdersPage) -> int | None:
    """The page to fetch after ``result``, or None when done."""
    if not result.has_next:
        return None
    if not result.hits:
        raise EshopboxApiError(
            200, api.ORDERS_LIST.label, "unexpected response shape (hasNext on an empty page)"
        )
    return result.page + 1


class OrderPageGuard:
    """guard: OrderPageGuard. Checks a page loop over one filter (issue 22): a page with hasNext is full
    (api.ORDERS_PER_PAGE_MAX), no page repeats the previous page's ids (api.ORDERS_PARAM_PAGE), the
    loop ends within the pages the hit cap allows plus one (api.ORDERS_HIT_CAP), and where the filter
    bounds ``updatedAt`` every hit lies inside (api.ORDERS_WINDOW_FILTER)."""

    def __init__(self, filters: str, per_page: int) -> None:
        self.filters = filters
        self.per_page = per_page
        self.bounds = api.orders_filter_bounds(filters)
        self.budget = api.orders_pages_within_cap(per_page) + 1
        self.pages = 0
        self._previous: frozenset[Any] | None = None

    def check(self, result: OrdersPage) -> None:
        self.pages += 1
        label = api.ORDERS_LIST.label
        if self.pages > self.budget:
            raise EshopboxContractError(
                label,
                "ORDERS_HIT_CAP",
                f"{self.pages} pages of {self.filters!r} at per_page={self.per_page}, over the budget of "
                f"{self.budget} the hit cap of {api.ORDERS_HIT_CAP} allows",
            )
        count = len(result.row_keys) if result.row_keys is not None else len(result.hits)
        reached = (result.page - 1) * self.per_page + count
        if result.has_next and 0 < count < self.per_page and reached < api.ORDERS_HIT_CAP:
            raise EshopboxContractError(
                label,
                "ORDERS_PER_PAGE_MAX",
                f"page {result.page} of {self.filters!r} served {count} hits with hasNext true for "
                f"per_page={self.per_page}: the server serves smaller pages than asked",
            )
        if result.row_keys is not None:
            ids = frozenset(key for key, _ in result.row_keys)
        else:
            ids = frozenset(repr(hit.get(api.ORDER_ROW_ID_FIELD, hit)) for hit in result.hits)
        if ids and ids == self._previous:
            raise EshopboxContractError(
                label,
                "ORDERS_PARAM_PAGE",
                f"pages {result.page - 1} and {result.page} of {self.filters!r} served the same {count} "
                "hits: the server ignores page",
            )
        self._previous = ids
        if self.bounds is not None:
            self._check_bounds(result)

    def _check_bounds(self, result: OrdersPage) -> None:
        lo, hi = self.bounds or (0, 0)
        if result.row_keys is not None:
            stamps = [(key, stamp) for key, stamp in result.row_keys]
        else:
            field = api.ORDERS_UPDATED_AT_FIELD
            stamps = [(hit.get(api.ORDER_ROW_ID_FIELD), hit.get(field)) for hit in result.hits]
        for key, stamp in stamps:
            if isinstance(stamp, int | float) and not lo <= stamp < hi:
                raise EshopboxContractError(
                    api.ORDERS_LIST.label,
                    "ORDERS_WINDOW_FILTER",
                    f"page {result.page} of {self.filters!r} served {key!r} with "
                    f"{api.ORDERS_UPDATED_AT_FIELD}={stamp}, outside what the filter asks: the server "
                    "ignores the filter or its bounds",
                )


def parse_inventory_page(data: Any) -> dict[str, dict[str, Any]]:
    """Validate an ESIN-keyed inventory reply; an empty list counts as an empty page."""
    if data in ([], None):
        return {}
    if not isinstance(data, Mapping):
        raise EshopboxApiError(
            200,
            api.INVENTORY_LIST.label,
            f"unexpected response shape (want ESIN-keyed object, got {_json_type(data)})",
        )
    for esin, value in data.items():
        if not isinstance(value, Mapping):
            raise EshopboxApiError(
                200,
                api.INVENTORY_LIST.label,
                f"unexpected response shape (want ESIN-keyed object; ESIN {str(esin)[:40]!r} maps to "
                f"{_json_type(value)}, not an object)",
            )
    return {str(k): dict(v) for k, v in data.items()}


def _json_type(value: Any) -> str:
    """JSON type name of a parsed value, for messages (never the value: it may be large)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, Mapping) else type(value).__name__


def _required_arg(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise EshopboxConfigError(f"argument {name} must be a non-empty string, got {value!r}", field=name)
    return value


class EshopboxHook(BaseHook):
    """Talks to Eshopbox for one connection: token caching, retries, rate limit, paging.

    :param eshopbox_conn_id: Airflow connection id of type ``eshopbox``.
    :param retry_policy: attempts and waits for transient failures (default: 5 attempts).
    """

    conn_name_attr = "eshopbox_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Eshopbox"

    _rotated_refresh_tokens: ClassVar[dict[str, str]] = {}
    _masked_digests: ClassVar[set[str]] = set()
    _warned_insecure: ClassVar[set[tuple[str, str]]] = set()  # (conn id, field): once per task process
    _mask_guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        eshopbox_conn_id: str = default_conn_name,
        *,
        retry_policy: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.eshopbox_conn_id = eshopbox_conn_id
        self.retry_policy = retry_policy or RetryPolicy()
        #: how long a created order may take to show on GET (see api.ORDER_VISIBLE_AFTER_CREATE_S)
        self.order_visible_wait = api.ORDER_VISIBLE_AFTER_CREATE_S
        #: epoch seconds by which every call must end, retries included (a sensor sets its timeout)
        self.deadline: float | None = None
        self._config: EshopboxConnectionConfig | None = None
        self._http: HttpClient | None = None
        self._cache: TokenCache | None = None
        self._pages_from_one = False  # page=0 of the orders list was seen empty (aorders_first_page_known)

    # --- configuration ---------------------------------------------------------------------------
    def _install(self, config: EshopboxConnectionConfig) -> EshopboxConnectionConfig:
        from airflow_provider_eshopbox.hooks.rate_control import deployment_limiter
        from airflow_provider_eshopbox.hooks.token_cache import DeploymentTokenStore

        self._http = HttpClient(
            timeout=config.timeout,
            policy=self.retry_policy,
            limiter=(deployment_limiter if config.token_cache == "deployment" else limiter_for)(
                config.cache_key,
                config.max_requests_per_second,
                default_cache_dir() if config.token_cache != "process" else None,
            ),
            verify=config.verify,
            secrets=config.secrets,
        )
        for name, why in config.insecure.items():
            if (config.conn_id, name) not in self._warned_insecure:
                self._warned_insecure.add((config.conn_id, name))
                self.log.warning(
                    "Eshopbox connection %r, form field %r (%s): %s",
                    config.conn_id,
                    FIELD_LABELS[name],
                    name,
                    why,
                )
        host = FileTokenStore() if config.token_cache != "process" else None
        self._cache = TokenCache(DeploymentTokenStore(host) if config.token_cache == "deployment" else host)
        self._config = config
        return config

    def get_config(self) -> EshopboxConnectionConfig:
        """Read, validate and cache the connection (sync; not for use inside an event loop)."""
        if self._config is None:
            try:
                conn = self.get_connection(self.eshopbox_conn_id)
            except AirflowNotFoundException:
                raise EshopboxConnectionNotFoundError(self.eshopbox_conn_id) from None
            config = config_from_connection(conn)
            for secret in config.secrets:
                mask_secret(secret)
            self._install(config)
        assert self._config is not None
        return self._config

    async def aget_config(self) -> EshopboxConnectionConfig:
        """Async ``get_config``, safe in a triggerer: one async connection read, cached on the hook."""
        if self._config is None:
            from airflow.providers.common.compat.connection import (
                get_async_connection,
                get_async_extra_dejson,
            )

            try:
                conn = await get_async_connection(self.eshopbox_conn_id, hook=self)
            except AirflowNotFoundException:
                raise EshopboxConnectionNotFoundError(self.eshopbox_conn_id) from None
            config = config_from_connection(conn, await get_async_extra_dejson(conn))
            for secret in config.secrets:
                await amask_secret(secret)
            if self._config is None:
                self._install(config)
        assert self._config is not None
        return self._config

    def get_conn(self) -> EshopboxConnectionConfig:
        """The validated connection config (the hook owns its HTTP clients)."""
        return self.get_config()

    def _sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one of this hook's coroutines for a sync caller (the connection is read here first)."""
        try:
            self.get_config()
        except BaseException:
            coro.close()
            raise
        return _loop.run_sync(coro)

    # --- tokens ----------------------------------------------------------------------------------
    async def _mask(self, value: str) -> None:
        """Register a new secret with Airflow's masker (once per process) and our own redaction."""
        assert self._http is not None
        self._http.secrets.add(value)
        digest = hashlib.sha256(value.encode()).hexdigest()
        with self._mask_guard:
            if digest in self._masked_digests:
                return
            self._masked_digests.add(digest)
        if _loop.on_private_loop():
            mask_secret(value)  # the caller's thread is blocked waiting: the sync path is safe here
        else:
            await amask_secret(value)

    async def _token(self) -> str:
        """A usable access token: cached per process and host, minted at most once at a time."""
        assert self._config is not None and self._cache is not None
        token = (await self._cache.aget(self._config.cache_key, self._exchange)).access_token
        await self._mask(token)
        return token

    async def _exchange(self) -> CachedToken:
        """Exchange the refresh token for an access token (POST, grant_type=refresh_token)."""
        config, http, cache = self._config, self._http, self._cache
        assert config is not None and http is not None and cache is not None
        refresh = self._rotated_refresh_tokens.get(config.cache_key, config.refresh_token)
        body = api.token_request_body(config.client_id, config.client_secret, refresh)
        reply = await http.send(RequestSpec(api.TOKEN, config.auth_url, json=body, idempotent=True))
        access, expires_in, new_refresh = parse_token_reply(config.conn_id, reply)
        await self._mask(access)
        if new_refresh and new_refresh != refresh:
            await self._mask(new_refresh)
            self._rotated_refresh_tokens[config.cache_key] = new_refresh
            self.log.warning(
                "Eshopbox returned a new refresh token for connection %r; using it in this process. "
                "If refresh tokens rotate, store the new one in the connection.",
                config.conn_id,
            )
        self.log.info(
            "Minted an Eshopbox access token for %r (expires in %.0f s)", config.conn_id, expires_in
        )
        return CachedToken.from_lifetime(access, expires_in, cache.clock())

    # --- the one authenticated call --------------------------------------------------------------
    def _spec(
        self,
        endpoint: api.Endpoint,
        token: str,
        path_params: Mapping[str, Any] | None,
        params: Mapping[str, Any] | None,
        json: Any,
    ) -> RequestSpec:
        config = self._config
        assert config is not None
        path = endpoint.path.format(**{k: quote(str(v), safe="") for k, v in (path_params or {}).items()})
        base = config.base_url(endpoint.host)
        headers = {"Authorization": f"Bearer {token}"}
        if endpoint.host == api.HOST_WORKSPACE:
            headers[api.PROXY_HOST_HEADER] = config.workspace
        return RequestSpec(
            endpoint,
            f"{base}/{path}" if path else base,
            params=params,
            json=json,
            headers=headers,
            idempotent=endpoint.method in ("GET", "HEAD", "PUT", "DELETE"),
        )

    async def _call(
        self,
        endpoint: api.Endpoint,
        *,
        path_params: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        allow_404: bool = False,
    ) -> Any:
        """The decoded JSON of one authenticated call (None for an allowed 404), within ``deadline``."""
        call = self._authorized_call(endpoint, path_params, params, json, allow_404)
        if self.deadline is None:
            return await call
        remaining = self.deadline - time.time()
        try:
            if remaining <= 0:
                raise TimeoutError
            return await asyncio.wait_for(call, remaining)
        except TimeoutError:
            call.close()  # never started if the deadline had already passed
            raise EshopboxDeadlineError(
                f"{endpoint.label}: no answer from Eshopbox before the caller's deadline"
            ) from None

    async def _authorized_call(
        self,
        endpoint: api.Endpoint,
        path_params: Mapping[str, Any] | None,
        params: Mapping[str, Any] | None,
        json: Any,
        allow_404: bool,
    ) -> Any:
        """One call with a bearer token; on a 401 the token is dropped everywhere and the call made
        once more with a fresh one."""
        config = await self.aget_config()
        assert self._http is not None and self._cache is not None
        token = await self._token()
        reply = await self._http.send(self._spec(endpoint, token, path_params, params, json))
        if reply.status == 401:
            self.log.warning("Eshopbox %s answered 401; refreshing the access token once", endpoint.label)
            await self._cache.ainvalidate(config.cache_key, token)
            token = await self._token()
            reply = await self._http.send(self._spec(endpoint, token, path_params, params, json))
            if reply.status == 401:
                raise EshopboxAuthError(
                    f"Eshopbox rejected a freshly minted token for connection {config.conn_id!r} on "
                    f"{endpoint.label} (HTTP 401: {api.error_message(reply.data) or 'unauthorized'}); "
                    "check client_id/client_secret/refresh_token, the app may have been uninstalled."
                )
        if allow_404 and reply.status == 404:
            return None
        if reply.status >= 300:
            message = api.error_message(reply.data) if reply.is_json else ""
            raise EshopboxApiError(
                reply.status,
                endpoint.label,
                message or f"request failed (body not JSON: {reply.content_type})",
                details=reply.data if reply.is_json else None,
            )
        return reply.data

    # --- the API, async ----------------------------------------------------------------------------
    def server_now_ms(self) -> int | None:
        """The server's clock by its replies' ``Date`` (None before any carried one): no stamp it sent
        is later."""
        now = self._http.server_now() if self._http is not None else None
        return None if now is None else int(1000 * now)

    async def acall(
        self,
        endpoint: api.Endpoint,
        *,
        path_params: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Any catalog endpoint, with auth and retries; returns the parsed JSON body."""
        return await self._call(endpoint, path_params=path_params, params=params, json=json)

    async def afetch_orders_page(
        self,
        filters: str,
        page: int = api.ORDERS_FIRST_PAGE,
        per_page: int = api.ORDERS_PER_PAGE_MAX,
        fields: str | Sequence[str] | None = None,
    ) -> OrdersPage:
        """One page of order items matching ``filters``; drive many concurrently with asyncio."""
        _required_arg("filters", filters)
        if not 1 <= per_page <= api.ORDERS_PER_PAGE_MAX:
            raise EshopboxConfigError(
                f"per_page must be 1..{api.ORDERS_PER_PAGE_MAX}, got {per_page}", field="per_page"
            )
        if page < api.ORDERS_FIRST_PAGE:
            raise EshopboxConfigError(f"page must be >= {api.ORDERS_FIRST_PAGE}, got {page}", field="page")
        params: dict[str, Any] = {
            api.ORDERS_PARAM_FILTERS: filters,
            api.ORDERS_PARAM_PAGE: page,
            api.ORDERS_PARAM_PER_PAGE: per_page,
        }
        if fields:
            params[api.ORDERS_PARAM_FIELDS] = fields if isinstance(fields, str) else ",".join(fields)
        return parse_orders_page(await self._call(api.ORDERS_LIST, params=params), page, per_page)

    async def afetch_orders_probe(
        self, filters: str | None, page: int, per_page: int = api.ORDERS_PER_PAGE_MAX
    ) -> OrdersPage:
        """A page for the read guards only: ``filters`` None sends none (a row known to exist, for the
        empty-window cross-check) and ``page`` may be 0 (to tell 0- from 1-based numbering)."""
        params: dict[str, Any] = {api.ORDERS_PARAM_PAGE: page, api.ORDERS_PARAM_PER_PAGE: per_page}
        if filters is not None:
            params[api.ORDERS_PARAM_FILTERS] = filters
        return parse_orders_page(await self._call(api.ORDERS_LIST, params=params), page, per_page)

    async def afetch_orders_page_zero(self, filters: str, per_page: int = 1) -> OrdersPage:
        """``page=0`` of ``filters``, for the first-page guards: a refusal (400, 404, 422) is an empty
        page, for a 1-based server may refuse page 0 instead of answering it empty."""
        try:
            return await self.afetch_orders_probe(filters, 0, per_page)
        except EshopboxApiError as exc:
            if exc.status not in (400, 404, 422):
                raise
            return parse_orders_page({"hasNext": False}, 0, per_page)

    async def afilter_cross_check(self) -> str | None:
        """What ``test_connection`` checks of the filter: the oldest row of an
        unfiltered first page, asked for by its exact updatedAt with ``orders_window_filter``, must come
        back and nothing outside that millisecond with it; page 0 must be empty (1-based pages).
        Returns the problem, or None when all holds (or there is no row to check with)."""
        known = await self.afetch_orders_probe(None, api.ORDERS_FIRST_PAGE)
        rows = [(api.order_row_id(hit), api.order_row_updated_at(hit)) for hit in known.hits]
        if not rows:
            return None
        wanted, ms = min(rows, key=lambda row: row[1])
        window = api.orders_window_filter(ms, ms + 1)
        got = await self.afetch_orders_page(window, api.ORDERS_FIRST_PAGE, api.ORDERS_PER_PAGE_MAX)
        got_rows = [(api.order_row_id(hit), api.order_row_updated_at(hit)) for hit in got.hits]
        outside = [t for _, t in got_rows if t != ms]
        if outside:
            return (
                f"ORDERS_WINDOW_FILTER: {len(outside)} of {len(got_rows)} hits for {window} have updatedAt "
                f"outside it (e.g. {outside[0]}): the server ignores the filter or its upper bound"
            )
        zero = await self.afetch_orders_page_zero(window)
        if zero.hits:
            return f"ORDERS_FIRST_PAGE: page=0 of {window} served {len(zero.hits)} hits: pages count from 0"
        await self.aremember_orders_first_page()
        if wanted not in {row_id for row_id, _ in got_rows} and not got.has_next:
            return (
                f"ORDERS_WINDOW_FILTER: order item {wanted!r} (updatedAt={ms}) exists but {window} did not "
                "return it: the server does not honour the filter"
            )
        return None

    async def acheck_orders_first_page(self, filters: str) -> None:
        """``page=0`` of ``filters`` once per server and token on this host
        (``aorders_first_page_known``): a 1-based server answers it empty (api.ORDERS_FIRST_PAGE); one
        that serves hits numbers pages from 0, and a page loop from 1 would skip its first page."""
        if await self.aorders_first_page_known():
            return
        zero = await self.afetch_orders_page_zero(filters)
        if zero.hits:
            raise EshopboxContractError(
                api.ORDERS_LIST.label,
                "ORDERS_FIRST_PAGE",
                f"page=0 of {filters!r} served {len(zero.hits)} hits, so pages count from 0 and a page "
                "loop from page 1 would skip the first page",
            )
        await self.aremember_orders_first_page()

    def _first_page_fact(self) -> str:
        config = self.get_config()
        return f"orders pages count from 1: {config.api_url} {config.workspace}"

    async def aorders_first_page_known(self) -> bool:
        """Whether page=0 of the orders list came back empty from this server (API URL and workspace)
        on this host while the current token lives (api.ORDERS_FIRST_PAGE), so a read may skip it.

        Checked once per token (24 h) and host instead of once per read: how a server numbers its
        pages is its API, which does not change between two queries under one token; a new token (or
        another server) checks again, and an empty window is still cross-checked on every read."""
        if self._pages_from_one:
            return True
        config = self.get_config()
        assert self._cache is not None
        token = await self._cache.aget(config.cache_key, self._exchange)
        self._pages_from_one = self._cache.knows(config.cache_key, token, self._first_page_fact())
        return self._pages_from_one

    async def aremember_orders_first_page(self) -> None:
        """Record that page=0 of the orders list came back empty (``aorders_first_page_known``)."""
        config = self.get_config()
        assert self._cache is not None
        token = await self._cache.aget(config.cache_key, self._exchange)
        self._cache.learn(config.cache_key, token, self._first_page_fact())
        self._pages_from_one = True

    async def aiter_order_pages(
        self, filters: str, fields: str | Sequence[str] | None = None, per_page: int = api.ORDERS_PER_PAGE_MAX
    ) -> AsyncIterator[OrdersPage]:
        """Pages 1, 2, ... until ``hasNext`` is false; each checked by ``OrderPageGuard`` (and page 0
        once per hook, ``acheck_orders_first_page``)."""
        await self.acheck_orders_first_page(filters)
        guard = OrderPageGuard(filters, per_page)
        page: int | None = api.ORDERS_FIRST_PAGE
        while page is not None:
            result = await self.afetch_orders_page(filters, page, per_page, fields)
            guard.check(result)
            yield result
            page = next_orders_page(result)

    async def afetch_inventory_page(
        self,
        updated_on: UpdatedOn = None,
        page: int = api.INVENTORY_FIRST_PAGE,
        per_page: int = api.INVENTORY_PER_PAGE_DEFAULT,
        esin: str | None = None,
    ) -> dict[str, dict[str, Any]]:
        """One ESIN-keyed inventory page; ``updated_on`` is ``(start, end)`` (either may be None)."""
        params: dict[str, Any] = {api.INVENTORY_PARAM_PAGE: page, api.INVENTORY_PARAM_PER_PAGE: per_page}
        if updated_on:
            params[api.INVENTORY_PARAM_UPDATED_ON] = (
                updated_on if isinstance(updated_on, str) else api.format_updated_on(*updated_on)
            )
        if esin:
            params[api.INVENTORY_PARAM_ESIN] = esin
        return parse_inventory_page(await self._call(api.INVENTORY_LIST, params=params))

    async def aiter_inventory_pages(
        self, updated_on: UpdatedOn = None, per_page: int = api.INVENTORY_PER_PAGE_DEFAULT
    ) -> AsyncIterator[dict[str, dict[str, Any]]]:
        """Non-empty ESIN-keyed pages until an empty one, checked (``sync/inventory_guard.py``).

        A short page is not taken as the last (a server may cap ``perPage``), a page that repeats
        ESINs or a 200 error envelope raises ``EshopboxContractError``, and a server numbering pages
        from 0 is paged from 0.
        """
        from airflow_provider_eshopbox.sync.inventory_guard import aiter_guarded_pages

        async def fetch(page: int) -> dict[str, dict[str, Any]]:
            return await self.afetch_inventory_page(updated_on, page, per_page)

        async for _page, items in aiter_guarded_pages(fetch, per_page):
            yield items

    async def aget_order(self, customer_order_number: str) -> dict[str, Any] | None:
        """The WMS order, or None if Eshopbox answers 404."""
        number = _required_arg("customer_order_number", customer_order_number)
        order = await self._call(api.ORDER_GET, path_params={"customerOrderNumber": number}, allow_404=True)
        if order is not None and not isinstance(order, Mapping):
            raise EshopboxApiError(
                200,
                api.ORDER_GET.label,
                f"unexpected response shape: order {number!r} is not a JSON object (got {_json_type(order)})",
            )
        return order

    async def acreate_order(self, order: Mapping[str, Any]) -> CreateOrderResult:
        """Create an order exactly once.

        An unknown outcome (timeout, 5xx, dropped connection) is checked with a GET before anything
        is sent again; a duplicate-422 is confirmed with a GET. When Eshopbox cannot say whether the
        order exists, ``EshopboxAmbiguousWriteError`` is raised: never re-send such an order blindly.
        """
        config = await self.aget_config()
        body = dict(order)
        number = _required_arg("order['customerOrderNumber']", body.get("customerOrderNumber"))
        if not body.get("externalChannelID") and config.external_channel_id:
            body["externalChannelID"] = config.external_channel_id
        unsure = False
        for attempt in range(1, self.retry_policy.max_attempts + 1):
            try:
                reply = await self._call(api.ORDER_CREATE, json=body)
            except EshopboxAmbiguousWriteError as exc:
                self.log.warning(
                    "Create of order %r had an unknown outcome (%s); checking with a GET", number, exc
                )
                unsure = True
                existing = await self.aget_order(number)
                if existing is not None:
                    return CreateOrderResult("created", existing)
                await asyncio.sleep(self.retry_policy.wait(attempt, None))
                continue
            except EshopboxApiError as exc:
                if not api.is_duplicate_order_error(exc.status, exc.details):
                    raise
                existing = await self._await_order(number)
                if existing is None:
                    raise EshopboxAmbiguousWriteError(
                        exc.status,
                        exc.endpoint,
                        f"order {number!r} is reported as existing, but GET has not found it for "
                        f"{self.order_visible_wait:.0f} s; check it in Eshopbox before sending it again",
                    ) from exc
                return CreateOrderResult("created" if unsure else "existing", existing)
            problem = api.write_reply_problem(reply, number)
            if problem is None:
                return CreateOrderResult("created", reply)
            return await self._confirm_create(number, problem, reply)  # never re-sent: GET decides
        # Every attempt failed and every GET found nothing: an outage, not an answer about this order.
        # Re-running is safe (a stored order gives the duplicate-422 and is confirmed by GET).
        raise EshopboxApiError(
            None,
            api.ORDER_CREATE.label,
            f"order {number!r} not created: {self.retry_policy.max_attempts} attempts failed and GET did "
            "not find it; Eshopbox looks unavailable, re-run later (creates are idempotent)",
        )

    async def _confirm_create(self, number: str, problem: str, reply: Any) -> CreateOrderResult:
        """A 2xx create reply that does not show the order was stored: believe only a GET."""
        self.log.warning("Create of order %r answered 2xx but %s; checking with a GET", number, problem)
        label = api.ORDER_CREATE.label
        said_failed = api.write_reply_problem(reply, number, names_order=False) is not None
        existing = await (self.aget_order(number) if said_failed else self._await_order(number))
        if existing is not None and str(existing.get(api.DUPLICATE_ORDER_FIELD)) == number:
            return CreateOrderResult("created", existing)
        if said_failed:  # the server said no, and GET agrees: a refusal of this order
            raise EshopboxRejectedWriteError(200, label, problem, details=reply)
        raise EshopboxAmbiguousWriteError(
            200,
            label,
            f"order {number!r}: the create answered 2xx but {problem}, and GET has not found it for "
            f"{self.order_visible_wait:.0f} s; check it in Eshopbox before sending it again",
        )

    async def _await_order(self, number: str) -> dict[str, Any] | None:
        """GET an order that Eshopbox says exists, for as long as GET may lag behind a create."""
        deadline = time.monotonic() + self.order_visible_wait
        attempt = 0
        while True:
            existing = await self.aget_order(number)
            attempt += 1
            remaining = deadline - time.monotonic()
            if existing is not None or remaining <= 0:
                return existing
            await asyncio.sleep(min(remaining, self.retry_policy.wait(attempt, None)))

    async def acancel_order(
        self,
        customer_order_number: str,
        reason: str,
        items: Sequence[Mapping[str, Any]],
        *,
        external_channel_id: str | None = None,
        cancellation_time: str | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Cancel order items (not retried on an unknown outcome: EshopboxAmbiguousWriteError)."""
        config = await self.aget_config()
        channel = external_channel_id or config.external_channel_id
        if not channel:
            raise EshopboxConfigError(
                f"Eshopbox connection {config.conn_id!r}: external_channel_id is needed to "
                "cancel orders; set the extra or pass external_channel_id=",
                field="external_channel_id",
                conn_id=config.conn_id,
            )
        body: dict[str, Any] = {
            "externalChannelID": channel,
            "reason": _required_arg("reason", reason),
            "items": [dict(i) for i in items],
            "customerOrderNumber": _required_arg("customer_order_number", customer_order_number),
        }
        if cancellation_time:
            body["cancellationTime"] = cancellation_time
        if actor:
            body["actor"] = actor
        reply = await self._call(api.ORDER_CANCEL, json=body)
        problem = api.write_reply_problem(reply, customer_order_number, names_order=False)
        if problem is not None:
            raise EshopboxRejectedWriteError(200, api.ORDER_CANCEL.label, problem, details=reply)
        return reply

    async def aget_product(self, sku: str) -> dict[str, Any] | None:
        """The product by SKU, or None on 404."""
        return await self._call(
            api.PRODUCT_GET, path_params={"sku": _required_arg("sku", sku)}, allow_404=True
        )

    async def aget_inventory(
        self, *, sku: str | None = None, esin: str | None = None
    ) -> dict[str, Any] | None:
        """Inventory record of one ESIN (or of a SKU's ESIN), or None if unknown."""
        if not esin:
            product = await self.aget_product(_required_arg("sku or esin", sku))
            esin = product.get("esin") if isinstance(product, Mapping) else None
            if not esin:
                return None
        from airflow_provider_eshopbox.sync.inventory_guard import check_esin_reply

        page = await self.afetch_inventory_page(
            None, api.INVENTORY_FIRST_PAGE, api.INVENTORY_PER_PAGE_DEFAULT, esin
        )
        check_esin_reply(page, esin, page=api.INVENTORY_FIRST_PAGE)
        if not page:
            # Unknown, or a server that numbers pages from 0 served its second page: page 0 decides
            # (a 1-based server refuses it). Costs a request only while the ESIN is not found.
            try:
                page = await self.afetch_inventory_page(None, 0, api.INVENTORY_PER_PAGE_DEFAULT, esin)
            except EshopboxApiError as exc:
                if exc.status not in (400, 404, 422):
                    raise
                return None
            check_esin_reply(page, esin, page=0)
        return page.get(esin)

    async def aclose(self) -> None:
        """Close the HTTP connections of the running loop and of the hook's private loop."""
        if self._http is not None:
            await self._http.aclose()
            await _loop.arun_private(self._http.aclose())

    async def __aenter__(self) -> EshopboxHook:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- the API, sync: each runs its coroutine above ----------------------------------------------
    def call(
        self,
        endpoint: api.Endpoint,
        *,
        path_params: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Sync ``acall``."""
        return self._sync(self.acall(endpoint, path_params=path_params, params=params, json=json))

    def fetch_orders_page(
        self,
        filters: str,
        page: int = api.ORDERS_FIRST_PAGE,
        per_page: int = api.ORDERS_PER_PAGE_MAX,
        fields: str | Sequence[str] | None = None,
    ) -> OrdersPage:
        """Sync ``afetch_orders_page``."""
        return self._sync(self.afetch_orders_page(filters, page, per_page, fields))

    def iter_order_pages(
        self, filters: str, fields: str | Sequence[str] | None = None, per_page: int = api.ORDERS_PER_PAGE_MAX
    ) -> Iterator[OrdersPage]:
        """Sync ``aiter_order_pages``."""
        self._sync(self.acheck_orders_first_page(filters))
        guard = OrderPageGuard(filters, per_page)
        page: int | None = api.ORDERS_FIRST_PAGE
        while page is not None:
            result = self.fetch_orders_page(filters, page, per_page, fields)
            guard.check(result)
            yield result
            page = next_orders_page(result)

    def fetch_inventory_page(
        self,
        updated_on: UpdatedOn = None,
        page: int = api.INVENTORY_FIRST_PAGE,
        per_page: int = api.INVENTORY_PER_PAGE_DEFAULT,
    ) -> dict[str, dict[str, Any]]:
        """Sync ``afetch_inventory_page``."""
        return self._sync(self.afetch_inventory_page(updated_on, page, per_page))

    def iter_inventory_pages(
        self, updated_on: UpdatedOn = None, per_page: int = api.INVENTORY_PER_PAGE_DEFAULT
    ) -> Iterator[dict[str, dict[str, Any]]]:
        """Sync ``aiter_inventory_pages``."""
        from airflow_provider_eshopbox.sync.inventory_guard import iter_guarded_pages

        for _page, items in iter_guarded_pages(
            lambda page: self.fetch_inventory_page(updated_on, page, per_page), per_page
        ):
            yield items

    def get_order(self, customer_order_number: str) -> dict[str, Any] | None:
        """Sync ``aget_order``."""
        return self._sync(self.aget_order(customer_order_number))

    def create_order(self, order: Mapping[str, Any]) -> CreateOrderResult:
        """Sync ``acreate_order``."""
        return self._sync(self.acreate_order(order))

    def cancel_order(
        self,
        customer_order_number: str,
        reason: str,
        items: Sequence[Mapping[str, Any]],
        *,
        external_channel_id: str | None = None,
        cancellation_time: str | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Sync ``acancel_order``."""
        return self._sync(
            self.acancel_order(
                customer_order_number,
                reason,
                items,
                external_channel_id=external_channel_id,
                cancellation_time=cancellation_time,
                actor=actor,
            )
        )

    def get_product(self, sku: str) -> dict[str, Any] | None:
        """Sync ``aget_product``."""
        return self._sync(self.aget_product(sku))

    def get_inventory(self, *, sku: str | None = None, esin: str | None = None) -> dict[str, Any] | None:
        """Sync ``aget_inventory``."""
        return self._sync(self.aget_inventory(sku=sku, esin=esin))

    def test_connection(self) -> tuple[bool, str]:
        """Token exchange plus one tiny authenticated orders query on the workspace host; never raises."""
        try:
            config = self.get_config()
            now_ms = int(time.time() * 1000)
            self.fetch_orders_page(api.orders_window_filter(now_ms - 1, now_ms), page=1, per_page=1)
            problem = self._sync(self.afilter_cross_check())
            if problem is not None:
                return False, f"The orders API does not behave as this provider assumes: {problem}"
        except EshopboxError as exc:
            return False, str(exc)
        except Exception as exc:
            return False, f"Unexpected error: {type(exc).__name__}: {exc}"
        return True, f"Connected to Eshopbox workspace {config.workspace!r} (token + orders query OK)."

    def close(self) -> None:
        """Close pooled HTTP connections of the sync methods."""
        if self._http is not None:
            _loop.run_private(self._http.aclose())

    def __enter__(self) -> EshopboxHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
