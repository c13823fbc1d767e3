"""The Eshopbox API catalog: hosts, paths, parameter names, paging rules and documented quirks.

Hooks and operators read these names instead of hard-coding them. The sandbox does NOT: it spells
paths and parameters out itself (sandbox/app.py, sandbox/streams.py), so a correction here is not
mirrored there, and a client/sandbox agreement proves nothing about the real API. Every undocumented
choice is a named constant or function tagged ``# ASSUMPTION (eshopbox-api.md §N)`` so that a
correction is a one-line change.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

HostKind = Literal["workspace", "wms", "auth"]
HOST_WORKSPACE: HostKind = "workspace"
HOST_WMS: HostKind = "wms"
HOST_AUTH: HostKind = "auth"

# Default base URLs (eshopbox-api.md §0, §2). The workspace base is a template on the slug.
DEFAULT_AUTH_URL = "https://auth.myeshopbox.com/api/v1/generateToken"
DEFAULT_API_URL = "https://{workspace}.myeshopbox.com"
DEFAULT_WMS_URL = "https://wms.eshopbox.com"
# Header sent on every workspace-host call (§1.5); 3p clients send it everywhere, docs on webhooks.
PROXY_HOST_HEADER = "ProxyHost"


@dataclass(frozen=True)
class Endpoint:
    """One API route: which host, which method, which path template (relative, no leading slash).

    ``items`` names the list of rows in the reply whose JSON text is kept as sent (see ``rawjson``).
    """

    name: str
    host: HostKind
    method: str
    path: str
    items: str | None = None

    @property
    def label(self) -> str:
        """Short human name for messages, e.g. ``GET api/order/{customerOrderNumber} (order_get)``."""
        return f"{self.method} {self.path or '<token url>'} ({self.name})"


# Token exchange: the auth URL is the full token URL, so the path is empty (§1.2).
TOKEN = Endpoint("token", HOST_AUTH, "POST", "")
TOKEN_PATH = "api/v1/generateToken"  # path of DEFAULT_AUTH_URL, for emulators
# ASSUMPTION (eshopbox-api.md §8.1, §3.1): order list path from the SDK/3p clients, not an official page.
# guard: parse_orders_page (a 200 with an error envelope or without hits/hasNext fails)
# probe: ORDERS_LIST
ORDERS_LIST = Endpoint("orders_list", HOST_WORKSPACE, "GET", "api/v1/orders/erp", items="hits")
ORDER_GET = Endpoint("order_get", HOST_WMS, "GET", "api/order/{customerOrderNumber}")
ORDER_CREATE = Endpoint("order_create", HOST_WMS, "POST", "api/order")
ORDER_CANCEL = Endpoint("order_cancel", HOST_WMS, "POST", "api/cancel-order")
INVENTORY_LIST = Endpoint("inventory_list", HOST_WORKSPACE, "GET", "api/v2/inventoryListing")
PRODUCT_GET = Endpoint("product_get", HOST_WORKSPACE, "GET", "product-engine/api/v1/products/{sku}")
PRODUCT_CREATE = Endpoint("product_create", HOST_WORKSPACE, "POST", "product-engine/api/v1/products")
PRODUCT_UPDATE = Endpoint("product_update", HOST_WORKSPACE, "PUT", "product-engine/api/v1/products/{sku}")
CHANNEL_AVAILABILITY = Endpoint(
    "channel_availability", HOST_WORKSPACE, "POST", "product-engine/api/v2/productListing"
)
# ASSUMPTION (eshopbox-api.md §3.6, §6): the list's rows are under "data" (Laravel paginator, [T1]).
# probe: SHIPMENTS_LIST
SHIPMENTS_LIST = Endpoint("shipments_list", HOST_WMS, "GET", "api/order/shipment", items="data")
SHIPMENT_CREATE = Endpoint("shipment_create", HOST_WMS, "POST", "api/order/shipment")
TRACKING = Endpoint("tracking", HOST_WMS, "GET", "api/v1/shipping/trackingDetails")
# ASSUMPTION (eshopbox-api.md §3.6, [S1]): the returns list is on the workspace host with the generic
# §6 envelope (no official page documents a returns list).
# probe: RETURNS_LIST
RETURNS_LIST = Endpoint("returns_list", HOST_WORKSPACE, "GET", "api/v1/returns", items="data")
# Documented (eshopbox-api.md §10, G/order/returns/get-a-return): one return is read on the WMS host by
# its customerReturnNumber. Its row keys differ from the list's: see RETURN_LIST_ONLY_FIELDS.
RETURN_GET = Endpoint("return_get", HOST_WMS, "GET", "api/return-shipment/{customerReturnNumber}")
# ASSUMPTION (eshopbox-api.md §5, [S1] "list GET .../products (fields, ids)"): generic §6 envelope.
# probe: PRODUCTS_LIST
PRODUCTS_LIST = Endpoint(
    "products_list", HOST_WORKSPACE, "GET", "product-engine/api/v1/products", items="data"
)
WEBHOOK_REGISTER = Endpoint("webhook_register", HOST_WORKSPACE, "POST", "api/v1/webhook")
ACCOUNT_LIST = Endpoint("account_list", HOST_WORKSPACE, "GET", "api/v1/account")

ENDPOINTS: tuple[Endpoint, ...] = (
    TOKEN,
    ORDERS_LIST,
    ORDER_GET,
    ORDER_CREATE,
    ORDER_CANCEL,
    INVENTORY_LIST,
    PRODUCT_GET,
    PRODUCT_CREATE,
    PRODUCT_UPDATE,
    CHANNEL_AVAILABILITY,
    SHIPMENTS_LIST,
    SHIPMENT_CREATE,
    TRACKING,
    RETURNS_LIST,
    RETURN_GET,
    PRODUCTS_LIST,
    WEBHOOK_REGISTER,
    ACCOUNT_LIST,
)

# --- token exchange (§1.2-1.4) -----------------------------------------------------------------
TOKEN_GRANT_TYPE = "refresh_token"
# ASSUMPTION (eshopbox-api.md §1.4): a reply without expires_in lives 24 h (samples show 86400).
# probe: TOKEN
DEFAULT_EXPIRES_IN = 86400.0
# ASSUMPTION (eshopbox-api.md §1.4): refresh two minutes early; proportional for short-lived tokens.
# probe: TOKEN
TOKEN_REFRESH_SKEW = 120.0


def token_request_body(client_id: str, client_secret: str, refresh_token: str) -> dict[str, str]:
    """JSON body of the refresh-token exchange exactly as the docs list it (§1.2)."""
    return {
        "grant_type": TOKEN_GRANT_TYPE,
        "client_id": client_id,
        "client_secret": client_secret,
        "refresh_token": refresh_token,
    }


def refresh_skew(expires_in: float) -> float:
    """Seconds before expiry to stop using a token: TOKEN_REFRESH_SKEW, or half the life if shorter."""
    return min(TOKEN_REFRESH_SKEW, expires_in / 2.0)


# --- orders list (§3.1) -------------------------------------------------------------------------
ORDERS_PARAM_FILTERS = "filters"
ORDERS_PARAM_FIELDS = "fields"
# ASSUMPTION (eshopbox-api.md §3.1, §8.3): the list honours page (a page repeating the one before
# it means the server ignores it).
# guard: WindowReader._check_reply, OrderPageGuard.check
ORDERS_PARAM_PAGE = "page"
ORDERS_PARAM_PER_PAGE = "per_page"
# ASSUMPTION (eshopbox-api.md §3.1, §8.3): 1-indexed pages ([T2]; [T1] used 0).
# guard: WindowReader._check_first_page, EshopboxHook.afilter_cross_check (once per server, token and
# host: EshopboxHook.aorders_first_page_known; an empty window is cross-checked on every read)
# guard: EshopboxHook.acheck_orders_first_page (the hook's page loops, as often)
# probe: ORDERS_FIRST_PAGE
ORDERS_FIRST_PAGE = 1
# ASSUMPTION (eshopbox-api.md §8.3): largest per_page the list accepts.
# guard: WindowReader._check_reply, OrderPageGuard.check (a short page with hasNext true fails)
# probe: ORDERS_PER_PAGE_MAX
ORDERS_PER_PAGE_MAX = 100
# ASSUMPTION (eshopbox-api.md §8.3): Algolia-style deep-paging cap; a window with this many hits
# or more may be silently truncated, so callers split it.
# guard: WindowReader._budget, OrderPageGuard.check (request and page budgets)
# probe: ORDERS_HIT_CAP
ORDERS_HIT_CAP = 1000
# ASSUMPTION (eshopbox-api.md §8.2): updatedAt is epoch milliseconds and filters use this grammar.
# guard: WindowReader._check_reply, WindowReader._cross_check_empty, EshopboxHook.afilter_cross_check
# probe: ORDERS_UPDATED_AT_FIELD, ORDERS_BAD_FILTER_4XX
# probe: orders_window_filter:lower, orders_window_filter:upper
ORDERS_UPDATED_AT_FIELD = "updatedAt"
# ASSUMPTION (eshopbox-api.md §8.2, §8.3): an update sets updatedAt to the time of the update, and
# the Algolia-style search shows it within this long. So rows of a millisecond older than this can
# only leave the search (an update moves them to now), never join it; younger ones may still be
# arriving while they are read (the slicer then reads such a millisecond twice over).
ORDERS_SEARCH_SETTLE_MS = 5 * 60 * 1000
# ASSUMPTION (eshopbox-api.md §8.2, §8.3), relied on by the deep reads of settled time (sync/slicing.py):
# ORDERS_SEARCH_ONE_PLACE: a row leaves a time range only by an update (rows are never deleted from
# the search), and the index moves it in one step: a row gone from its old updatedAt is already
# found under its new one. ORDERS_SEARCH_STABLE_ORDER: hits come in an order fixed per row, so rows
# joining a result push later rows down a place and paging a result that only grows (updatedAt >= t)
# skips nothing that was in it when paging began. A reply's hits and hasNext describe one state
# of the result (hasNext false on page k: it held (k-1) * per_page + len(hits) rows then).
ORDERS_SEARCH_ONE_PLACE = True
ORDERS_SEARCH_STABLE_ORDER = True
# ASSUMPTION (eshopbox-api.md §8.3: "unordered"), for speed only: the order of hits has nothing to do
# with updatedAt, so the first pages of a time range are a random sample of where its rows lie, and
# the slicer sizes slices from them (sync/slicing.py). Were hits sorted by time, slices would be
# sized badly (more requests), never read inexactly.
ORDERS_SEARCH_ORDER_UNRELATED_TO_TIME = True
# ASSUMPTION (eshopbox-api.md §8.3): if the real cap is lower than ORDERS_HIT_CAP, it is a whole
# number of pages and the same for every query, so a capped result ends on a full page with hasNext
# false. A deep slice (or the proof's list of rows updated since the read began) ending so is read
# again, unless a reply of the same read served a hit on a later page: the cap is then beyond it,
# and the slice is proven as any other. Were the cap to differ between queries, such a reply could
# vouch for a capped slice.
# probe: ORDERS_HIT_CAP
ORDERS_SEARCH_CAP_ON_A_PAGE = True


# ASSUMPTION (eshopbox-api.md §8.2, §10): the server honours both bounds of this filter, the upper
# one included; the guards name it ORDERS_WINDOW_FILTER when it does not.
# guard: WindowReader._check_reply, WindowReader._cross_check_empty, EshopboxHook.afilter_cross_check,
# guard: OrderPageGuard.check
def orders_window_filter(start_ms: int, end_ms: int) -> str:
    """Filter for rows updated in the half-open window ``[start_ms, end_ms)`` (epoch ms)."""
    if end_ms < start_ms:
        raise ValueError(f"orders window end {end_ms} is before start {start_ms}")
    f = ORDERS_UPDATED_AT_FIELD
    return f"({f} >= {int(start_ms)} AND {f} < {int(end_ms)})"


ORDERS_WINDOW_FILTER = orders_window_filter  # the name EshopboxContractError gives this assumption


def orders_filter_bounds(filters: str) -> tuple[float, float] | None:
    """The ``[lo, hi)`` of ``updatedAt`` (epoch ms) every hit of ``filters`` must lie in, when the filter
    is a conjunction (no OR, NOT) of terms that bound it; None when no row can be judged from the text."""
    if re.search(r"\b(OR|NOT)\b", filters, re.IGNORECASE):
        return None
    lo, hi = -math.inf, math.inf
    f = re.escape(ORDERS_UPDATED_AT_FIELD)
    for op, value in re.findall(rf"\b{f}\s*(>=|<=|>|<|=)\s*(-?\d+)\b", filters):
        n = int(value)
        if op in (">=", "="):
            lo = max(lo, n)
        if op in ("<=", "="):
            hi = min(hi, n + 1)
        if op == ">":
            lo = max(lo, n + 1)
        if op == "<":
            hi = min(hi, n)
    return None if (lo, hi) == (-math.inf, math.inf) else (lo, hi)


# Row keys the sync relies on: identity, version and what Algolia-style hits always carry.
ORDER_ROW_ID_FIELD = "orderItemID"  # unique per order item (§3.1)
ORDER_ROW_REQUIRED_FIELDS = ("objectID", ORDER_ROW_ID_FIELD, ORDERS_UPDATED_AT_FIELD)


def order_row_id(row: Mapping[str, Any]) -> str:
    """Identity of an order-item row (de-duplication key): a non-empty string, or an integer as text.

    Anything else raises ValueError saying what it is: such a row must never be merged with another.
    """
    value = row.get(ORDER_ROW_ID_FIELD, _MISSING)
    if (isinstance(value, str) and value) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    raise ValueError(f"{ORDER_ROW_ID_FIELD} is {_describe(value)}, not a non-empty string or an integer")


def order_row_updated_at(row: Mapping[str, Any]) -> int:
    """``updatedAt`` of an order-item row in epoch ms (the version of the row, and its time key).

    Anything but a JSON integer raises ValueError saying what it is.
    """
    value = row.get(ORDERS_UPDATED_AT_FIELD, _MISSING)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"{ORDERS_UPDATED_AT_FIELD} is {_describe(value)}, not an integer (epoch milliseconds)")


_MISSING = object()


def _describe(value: Any) -> str:
    """A field's value for a message: its JSON type, and the value itself when it is short."""
    if value is _MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a bool ({str(value).lower()})"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})" if value else "an empty string"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    return "a list" if isinstance(value, list) else "an object"


def order_row_sort_key(row: Mapping[str, Any]) -> tuple[int, str]:
    """Output order of synced rows: by update time, then id, so re-runs write identical files."""
    return order_row_updated_at(row), order_row_id(row)


# Order status (§3.2, §3.5): GET /api/order has no status field, so an order's status is read from
# the orderStatus of its item rows in the orders list.
ORDER_STATUS_FIELD = "orderStatus"
ORDER_NUMBER_FIELD = "customerOrderNumber"
ORDER_STATUS_LIST_FIELDS = (ORDER_NUMBER_FIELD, ORDER_ROW_ID_FIELD, ORDER_STATUS_FIELD)
# ASSUMPTION (eshopbox-api.md §3.5): no formal enum; case and spelling vary ("Canceled", "SHIPPED").
STATUS_ALIASES = {"canceled": "cancelled"}


def normalize_status(status: Any) -> str:
    """Comparable form of a status: casefolded, ``_``/``-`` as spaces, single spaces, aliases applied."""
    text = re.sub(r"[\s_\-]+", " ", str(status)).strip().casefold()
    return STATUS_ALIASES.get(text, text)


def order_status_filter(customer_order_number: str) -> str:
    """The orders-list ``filters`` value selecting the item rows of one order."""
    escaped = customer_order_number.replace("\\", "\\\\").replace('"', '\\"')
    return f'{ORDER_NUMBER_FIELD}:"{escaped}"'


def orders_pages_within_cap(per_page: int) -> int:
    """How many pages of ``per_page`` fit under ORDERS_HIT_CAP."""
    return max(1, math.ceil(ORDERS_HIT_CAP / per_page))


# --- inventory (§4.2) ---------------------------------------------------------------------------
INVENTORY_PARAM_UPDATED_ON = "updatedOn"
# ASSUMPTION (eshopbox-api.md §4.2, §8.5): paging params of inventoryListing are page/perPage.
# guard: InventoryPager (sync/inventory_guard.py: a page repeating read ESINs fails)
# probe: INVENTORY_PARAM_PAGE, INVENTORY_PER_PAGE_DEFAULT
INVENTORY_PARAM_PAGE = "page"
INVENTORY_PARAM_PER_PAGE = "perPage"
# ASSUMPTION (§8.5; the sandbox lists by ESIN): an inventoryListing WITHOUT filters lists ESINs in
# an order that stock changes do not alter, so paging it while stock changes skips no ESIN (the
# snapshot mode relies on this). With an updatedOn filter a change moves the ESIN out of the result
# and shifts the rest up a place: never offset-page a live updatedOn range across pages.
# guard: aprobe_paging, InventoryPager (sync/inventory_guard.py: one page=0 request; 0-based is paged from 0)
# probe: INVENTORY_FIRST_PAGE, INVENTORY_PARAM_PAGE
INVENTORY_FIRST_PAGE = 1
# ASSUMPTION (eshopbox-api.md §6): the generic documented default page size; a larger value risks a
# silent server cap that would look like "last page" under inventory_is_last_page.
# guard: InventoryPager, aprobe_paging (sync/inventory_guard.py: a short page is confirmed; a cap is paged by)
# probe: INVENTORY_PER_PAGE_DEFAULT
INVENTORY_PER_PAGE_DEFAULT = 25
# ASSUMPTION (eshopbox-api.md §4.2): inventoryListing filters by product field internal name; esin.
# guard: check_esin_reply (sync/inventory_guard.py: only the ESIN asked)
# probe: INVENTORY_PARAM_ESIN
INVENTORY_PARAM_ESIN = "esin"
UPDATED_ON_FORMAT = "%Y-%m-%d %H:%M:%S"  # the docs' yyyy-MM-dd HH:mm:ss, rendered in UTC
# ASSUMPTION (eshopbox-api.md §4.2 shows the range, not its edges; the sandbox does the same): both
# updatedOn bounds are inclusive and stamps have whole-second precision, so "a,b" selects a..b and a
# half-open [start, end) is asked as [ceil(start), ceil(end) - 1 s] (operators/inventory.py).
# guard: aprobe_filter (sync/inventory_guard.py: a range that must be empty)
# probe: INVENTORY_PARAM_UPDATED_ON
# ASSUMPTION (§8.5): inventoryListing can be paged as deep as it goes (no Algolia-style hit cap).
# Only a bound for the exact reader's paging of one crowded second: a second holding this many
# ESINs fails the read loudly rather than being trusted.
INVENTORY_HIT_CAP = 100_000
# ASSUMPTION (§4.2): a stock change stamps updatedOn with the server's "now" when it commits, so a
# second that ended this long ago (clock skew and commit delay included) can only LOSE ESINs. Paging
# such a second once is then proof; a more recent one is re-read until two passes agree.
INVENTORY_UPDATED_ON_SETTLE_MS = 5 * 60 * 1000


def format_updated_on(start: datetime | None, end: datetime | None) -> str:
    """``updatedOn`` range ``"start,end"`` in UTC; an empty side means open (§4.2)."""

    def one(value: datetime | None) -> str:
        if value is None:
            return ""
        if value.tzinfo is None:
            raise ValueError("updatedOn bounds must be timezone-aware datetimes")
        return value.astimezone(timezone.utc).strftime(UPDATED_ON_FORMAT)

    return f"{one(start)},{one(end)}"


# probe: INVENTORY_PER_PAGE_DEFAULT
def inventory_is_last_page(esin_count: int, per_page: int) -> bool:
    """ASSUMPTION (eshopbox-api.md §8.5): a page with fewer than perPage ESINs is the last one.

    guard: InventoryPager (the snapshot and hook loops end only at an empty page; the
    changed-mode reader pages by the size a probe saw served).
    """
    return esin_count < per_page


# --- errors and idempotency (§6) ----------------------------------------------------------------
# ASSUMPTION (eshopbox-api.md §3.3, §6): duplicate customerOrderNumber is a 422 field error whose
# message contains this phrase (Laravel "unique" wording shown in [E1]).
DUPLICATE_ORDER_STATUS = 422
DUPLICATE_ORDER_FIELD = "customerOrderNumber"
DUPLICATE_ORDER_PHRASE = "already been taken"
ERROR_MESSAGE_MAX_CHARS = 300
# ASSUMPTION (eshopbox-api.md §3.3, §6): a write that took effect answers an object naming the order it
# acted on; Eshopbox's sibling endpoints answer {"status": "SUCCESS"|"FAILED", ...} envelopes, so a 2xx
# carrying one of these statuses (or an error envelope) is a refusal, not a success.
# guard: write_reply_problem (hooks/eshopbox.py acreate_order and acancel_order confirm with a GET)
WRITE_FAILURE_STATUSES = frozenset({"failed", "failure", "error", "fail"})


def write_reply_problem(body: Any, customer_order_number: str, *, names_order: bool = True) -> str | None:
    """Why a 2xx write reply does not show the write took effect, or None when it does.

    ``names_order``: the reply must carry ``customerOrderNumber`` equal to the one sent (creates).
    """
    if not isinstance(body, Mapping):
        return f"the reply is {type(body).__name__}, not a JSON object"
    status = body.get("status")
    if isinstance(status, str) and status.strip().lower() in WRITE_FAILURE_STATUSES:
        said = body.get("message")
        text = " ".join(said.split())[:ERROR_MESSAGE_MAX_CHARS] if isinstance(said, str) else ""
        return f"status {status!r}: {text or 'no message'}"
    if isinstance(body.get("error"), Mapping) or body.get("success") is False:
        return f"an error reply: {error_message(body) or 'no message'}"
    if names_order:
        named = body.get(DUPLICATE_ORDER_FIELD)
        if named is None:
            return "the reply names no customerOrderNumber"
        if str(named) != customer_order_number:
            return f"the reply is about order {str(named)[:80]!r}"
    return None


# ASSUMPTION (eshopbox-api.md §3.2, §3.3, §6): a stored order shows on GET /api/order within this
# long. Past it, an order that Eshopbox calls a duplicate but GET cannot find is reported as
# ambiguous (never as rejected: re-sending it by hand could create it twice).
ORDER_VISIBLE_AFTER_CREATE_S = 60.0


def _messages(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def is_duplicate_order_error(status: int | None, body: Any) -> bool:
    """True if a create-order reply says the customerOrderNumber already exists."""
    if status != DUPLICATE_ORDER_STATUS or not isinstance(body, Mapping):
        return False
    texts = _messages(body.get(DUPLICATE_ORDER_FIELD)) or _messages(body.get("message"))
    return any(DUPLICATE_ORDER_PHRASE in t.lower() for t in texts)


def error_message(body: Any) -> str:
    """The server's message from any documented error shape (§6, OAuth §1.4), or ``""``."""
    text = ""
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            text = str(err.get("message") or "")
            if not text and isinstance(err.get("errors"), list) and err["errors"]:
                first = err["errors"][0]
                text = str(first.get("message", "")) if isinstance(first, Mapping) else ""
        elif isinstance(body.get("error_description"), str):
            text = (
                f"{err}: {body['error_description']}" if isinstance(err, str) else body["error_description"]
            )
        elif isinstance(body.get("message"), str):
            text = body["message"]
        elif isinstance(err, str):
            text = err
        else:  # 422 field errors: {"field": ["msg", ...]}
            parts = [f"{k}: {'; '.join(_messages(v))}" for k, v in body.items() if _messages(v)]
            text = " | ".join(parts)
    elif isinstance(body, str):
        text = body
    text = " ".join(text.split())
    if len(text) > ERROR_MESSAGE_MAX_CHARS:
        text = text[: ERROR_MESSAGE_MAX_CHARS - 3] + "..."
    return text


def utc_ms(value: datetime) -> int:
    """Epoch milliseconds of an aware datetime (the unit of ``updatedAt``)."""
    if value.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return int(value.timestamp() * 1000)


# --- shipments, tracking, returns, products (§3.6, §5, §6) --------------------------------------
# What the docs, the SDK [S1] and the third-party clients [T1][T2] show, and what is assumed:
# * shipments list: GET wms api/order/shipment with ``page`` [S1]; [T1] also sends ``per_page``,
#   ``status`` and ``expectedShipDate`` and follows ``next_page_url`` in a ``data`` envelope, and
#   notes NO updated-since filter. So a window cannot be asked for: the list is read whole and
#   filtered locally on ``updated_at`` (operators/streams.py says how that stays exact).
# * returns list: GET {ws} api/v1/returns with ``page`` [S1]; no filter is documented anywhere
#   ([T1] relies on webhooks), so it is read whole as well. One return by its number: the documented
#   GET wms api/return-shipment/{customerReturnNumber} (§10), whose row keys differ from the list's.
# * products: GET {ws} product-engine/api/v1/products with ``fields`` and ``ids`` [S1].
# * tracking: GET wms api/v1/shipping/trackingDetails?trackingIds=a,b (at most 50) [TR1].
# ASSUMPTION (§6 [P1], [S1]): every list honours ``page`` (a page repeating the one before it means
# the server ignores it).
# guard: read_list (sync/streams.py: a repeated page fails)
# probe: SHIPMENTS_LIST:page, RETURNS_LIST:page, PRODUCTS_LIST:page
LIST_PARAM_PAGE = "page"
# ASSUMPTION (§6 [P1] for the workspace host, [T1] for the WMS shipments list): page-size names.
# probe: SHIPMENTS_LIST:per_page, RETURNS_LIST:per_page, PRODUCTS_LIST:per_page
SHIPMENTS_PARAM_PER_PAGE = "per_page"
LIST_PARAM_PER_PAGE = "perPage"
# ASSUMPTION (§6: "default page 1"): every list is 1-indexed.
# guard: read_list (sync/streams.py: a page short of what its own total puts there fails)
# probe: SHIPMENTS_LIST:first_page, RETURNS_LIST:first_page, PRODUCTS_LIST:first_page
LIST_FIRST_PAGE = 1
# ASSUMPTION (§6: max page size undocumented; default 25): 100 per page, as the orders list takes.
# guard: read_list (sync/streams.py: a first page short of its total fails)
# probe: SHIPMENTS_LIST:per_page, RETURNS_LIST:per_page, PRODUCTS_LIST:per_page
LIST_PER_PAGE_MAX = 100
# ASSUMPTION (§6 [P1]: "total = matches for the filters", a string in the sample): every list reply
# carries ``total`` (string or integer); the readers use it to prove a read complete, and to bound
# it: a read takes at most the requests the first reply's total allows (sync/streams.py list_budget).
# guard: read_list, list_budget
# probe: SHIPMENTS_LIST, RETURNS_LIST, PRODUCTS_LIST
LIST_TOTAL_FIELD = "total"
LIST_ITEMS_FIELD = "data"
# ASSUMPTION (§3.6, §6; Laravel's default order, the sandbox's too): an UNFILTERED shipments, returns
# or products list is ordered by ``id`` ascending; a new row gets an id above every existing one and
# a row is never deleted (a cancelled shipment or return changes status in place). Then a row's
# position never changes while the list is paged: updates leave it where it is and new rows join at
# the end. The readers check the order on every page and ``total`` never shrinking, and re-read on a
# shrink; they fail loudly when the order is not as assumed.
# guard: read_list (sync/streams.py: ids ascending across pages)
# probe: SHIPMENTS_LIST:page, RETURNS_LIST:page, PRODUCTS_LIST:page
LIST_ORDER_FIELD = "id"
# ASSUMPTION (§3.2 ``updated_at`` format, §3.6 shipment keys): shipments and returns carry
# ``updated_at`` as ``YYYY-MM-DD HH:MM:SS`` in UTC, set to the time of every change.
# probe: SHIPMENTS_LIST, RETURNS_LIST
SHIPMENT_UPDATED_AT_FIELD = "updated_at"
RETURN_UPDATED_AT_FIELD = "updated_at"
WMS_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
SHIPMENT_ID_FIELD = "id"
SHIPMENT_TRACKING_FIELD = "trackingID"
# ASSUMPTION (§6: "presumably"): customerReturnNumber is unique per return, and a get by it answers
# that return (it is the only key the documented get row shares with the list's).
# guard: read_by_keys (sync/streams.py: the row got must carry the key)
# probe: RETURN_GET
RETURN_NUMBER_FIELD = "customerReturnNumber"
# Where the returns list and the get differ. The documented get row ("Get a Return", §10) carries
# customerReturnNumber, customerOrderNumber, order_id, externalChannelID, pickupType, status,
# latest_status, status_log, status_updated_at, refundAmount, isCOD, trackingID, courierName, pickup
# and drop addresses and items[{lineItemSequenceNumber, orderItemID, itemID, productName, quantity,
# returnReason, ...}], but no top-level id and no updated_at. ASSUMPTION (§3.6 [S1], the list is
# undocumented): list rows carry the same keys plus these, the list's order (LIST_ORDER_FIELD) and
# its window time (RETURN_UPDATED_AT_FIELD). So a return got by key has no window time and no list
# position: keyed reads are written in customerReturnNumber order (operators/streams.py).
# probe: RETURNS_LIST:page, RETURNS_LIST
RETURN_LIST_ONLY_FIELDS = ("id", "updated_at")
PRODUCT_ID_FIELD = "esin"
PRODUCTS_PARAM_IDS = "ids"
# ASSUMPTION (§5 [S1]): ``ids`` takes SKUs, comma-separated, at most this many per call.
# guard: read_by_keys (sync/streams.py: a row not asked for fails the read)
# probe: PRODUCTS_PARAM_IDS
PRODUCTS_IDS_MAX = 100
TRACKING_PARAM_IDS = "trackingIds"
TRACKING_IDS_MAX = 50  # documented (§3.6 [TR1])
# §3.6: [TR1] documents ``trackingDetails``, [T2] saw ``trackingDetailList``; both are accepted.
TRACKING_LIST_KEYS = ("trackingDetails", "trackingDetailList")
TRACKING_ID_FIELD = "trackingId"


# How each declared timestamp column (schemas.py) is sent; format="parquet" converts every one of them
# to an instant, timestamp[us, tz=UTC] (sync/formats.py).
TIME_EPOCH_MS = "epoch-ms"  # an integer of milliseconds since 1970-01-01 UTC
TIME_NAIVE_UTC = "naive-utc"  # 'YYYY-MM-DD HH:MM:SS' with no zone, read as UTC
TIME_ISO_OFFSET = "iso-offset"  # ISO-8601 with its offset ('Z' or '+05:30'); naive is refused
# ASSUMPTION (eshopbox-api.md §3.1, §8.2 [T1]): the orders list's updatedAt is epoch milliseconds.
# guard: parse_time (a value not in its declared encoding fails the Parquet write, naming the row)
ORDER_UPDATED_AT_TIME = TIME_EPOCH_MS
# ASSUMPTION (eshopbox-api.md §3.2, §9): orderDate (orderDetails.orderDate) is a naive
# 'YYYY-MM-DD HH:MM:SS' in UTC, not IST. No source names its zone; the §9 sample order has orderDate
# 10:15:00 and created_at 10:16:02, one minute apart, so it is read in created_at's zone, which the WMS
# stamps below are taken to be. Were it IST, every orderDate in Parquet would be 5 h 30 min late:
# correct this line (and TIME_NAIVE_UTC's reading) then. The encoding is checked (sandbox quirk
# offset_times sends it with an offset: the probe's ORDERS_LIST row and the Parquet write fail); the
# zone of a naive stamp is not checkable from one reply.
# guard: parse_time
# probe: ORDERS_LIST
ORDER_DATE_TIME = TIME_NAIVE_UTC
# ASSUMPTION (eshopbox-api.md §3.2, §3.6, §9): every other WMS stamp (shipments' and returns' created_at,
# status_updated_at, status_log values, return_request_date, tracking dateTime and
# expectedDeliveryDate) is sent like updated_at (SHIPMENT_UPDATED_AT_FIELD): naive, in UTC.
# The zone is checked where it can be: no stamp can be later than the server's own clock, the Date
# header of its replies. Naive IST read as UTC puts every row updated in the last 5 h 30 min up to
# that much after it, so a list read of an active workspace fails instead of filing rows 5 h 30 min
# off (quirk ist_times). A zone behind UTC would not show; none is likely for an Indian platform. A
# row further ahead than IST explains is filed by its stamp, and no Date header means no check.
# guard: parse_time
# guard: parse_wms_time (a list row's updated_at in another encoding fails the read; quirk offset_times)
# guard: check_server_clock (a list row's updated_at after the server's Date fails the read; quirk ist_times)
# probe: SHIPMENTS_LIST, RETURNS_LIST
WMS_TIME = TIME_NAIVE_UTC
#: How far a stamp may run ahead of the server's Date header (clocks of one service's machines).
SERVER_CLOCK_SKEW_MS = 10 * 60_000
IST_AHEAD_MS = 330 * 60_000
# ASSUMPTION (eshopbox-api.md §5, §9 sample "2024-06-01T08:00:00.000Z"): products' createdAt and
# updatedAt are ISO-8601 with an offset.
# guard: parse_time
PRODUCT_TIME = TIME_ISO_OFFSET
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def parse_time(value: Any, encoding: str) -> int:
    """Microseconds since the epoch (UTC) of a stamp sent in ``encoding`` (a ``TIME_*`` constant);
    ValueError saying what the value is otherwise."""
    if encoding == TIME_EPOCH_MS:
        if isinstance(value, int) and not isinstance(value, bool):
            return value * 1000
        raise ValueError(f"is {_describe(value)}, not epoch milliseconds")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if encoding == TIME_NAIVE_UTC and parsed is not None and len(value) == 19 and value[10] == " ":
            return (parsed.replace(tzinfo=timezone.utc) - _EPOCH) // _MICROSECOND
        if encoding == TIME_ISO_OFFSET and parsed is not None and parsed.tzinfo is not None:
            return (parsed - _EPOCH) // _MICROSECOND
    want = "'YYYY-MM-DD HH:MM:SS' (UTC)" if encoding == TIME_NAIVE_UTC else "ISO-8601 with an offset"
    raise ValueError(f"is {_describe(value)}, not {want}")


def list_per_page_param(endpoint: Endpoint) -> str:
    """The page-size parameter of a paged list: ``per_page`` on the WMS shipments list, else ``perPage``."""
    return SHIPMENTS_PARAM_PER_PAGE if endpoint is SHIPMENTS_LIST else LIST_PARAM_PER_PAGE


def parse_wms_time(value: Any) -> int:
    """Epoch ms of a ``YYYY-MM-DD HH:MM:SS`` (UTC) stamp; ValueError saying what it is otherwise."""
    if isinstance(value, str):
        try:
            parsed = datetime.strptime(value, WMS_TIME_FORMAT)
        except ValueError:
            pass
        else:
            return int(parsed.replace(tzinfo=timezone.utc).timestamp()) * 1000
    raise ValueError(f"is {_describe(value)}, not a 'YYYY-MM-DD HH:MM:SS' date-time")


def check_server_clock(value: Any, stamp_ms: int, server_ms: int | None) -> None:
    """ValueError when a stamp (``value``, read as ``stamp_ms``) runs ahead of the server's clock as
    naive IST read as UTC would: by more than the skew, and at most 5 h 30 min more (see WMS_TIME).

    A row stamped further ahead is no zone's doing: it is filed in the window of its stamp, as any
    row. No clock (no reply carried a Date) checks nothing: this worker's clock is not the server's.
    """
    if server_ms is None:
        return
    ahead = stamp_ms - server_ms
    if SERVER_CLOCK_SKEW_MS < ahead <= IST_AHEAD_MS + SERVER_CLOCK_SKEW_MS:
        said = datetime.fromtimestamp(server_ms / 1000, timezone.utc).strftime(WMS_TIME_FORMAT)
        raise ValueError(
            f"{value!r} is {ahead / 3_600_000:.1f} h after the server's own clock ({said} UTC by its "
            "Date header): its naive stamps are not UTC (IST runs 5 h 30 min ahead); correct api.WMS_TIME"
        )


def list_total(value: Any) -> int:
    """``total`` of a list reply as an int (the sample sends a string); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"total is {_describe(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise ValueError(f"total is {_describe(value)}, not a non-negative integer")
