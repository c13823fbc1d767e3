"""Stream catalogue and the exact reader of an id-ordered, offset-paged, unfilterable list.

Shipments, returns and the product catalogue are lists that take no updated-since filter
(``api.py``). Each is read WHOLE and filtered locally. Exactness rests on the ASSUMPTION in
``api.py``: an unfiltered list is ordered by its id ascending, a new row gets an id above every
other, and no row is deleted. Then a row's position never changes during a read (an update leaves
it in place; a new row joins at the end), so paging by offset neither skips nor repeats a row.

The reader checks what it can see of that on every read, and does not trust a read that breaks it
(a broken ASSUMPTION is an ``EshopboxContractError``, not retried):

* ids strictly ascending across the concatenated pages (else: the order is not as assumed, fail:
  no amount of re-reading makes offset paging exact), and no page repeating the one before (the
  server ignores ``page``);
* every page holding what its own reply's ``total`` puts at its offset (else the server caps the page
  size or numbers pages from 0);
* at most ``list_budget`` requests, from the first reply's ``total``;
* ``total`` never below the first page's, and at least that many rows read (else a row left the
  list during the read and a row after it may have been skipped: read the whole list again, up to
  ``READ_PASSES`` times).

What it cannot see: a row deleted and another created between two page reads leave ``total`` and
the count unchanged. Eshopbox deletes neither shipments nor returns (cancelled ones change status),
so this is the assumption, named, not a gap in the checks.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.concurrency import run_all
from airflow_provider_eshopbox.exceptions import (
    EshopboxApiError,
    EshopboxContractError,
    EshopboxIncompleteReadError,
)

if TYPE_CHECKING:
    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook

READ_PASSES = 3
LIST_REQUEST_FLOOR = 2  # requests a pass may take beyond the pages its first total promises


@dataclass(frozen=True)
class Stream:
    """One list stream: its endpoint, the field it is ordered by, its identity and its time."""

    name: str
    endpoint: api.Endpoint
    order_field: str
    key_field: str
    time_field: str | None  # None: a snapshot (no window)
    time_parser: Callable[[Any], int] | None = None
    time_assumption: str = "WMS_TIME"  # the api.py ASSUMPTION a value time_parser refuses breaks
    get_one: api.Endpoint | None = None  # by-key reads (``keys=``), one request per key
    ids_param: str | None = None  # by-key reads in batches, ``ids_max`` keys per request
    ids_max: int = 0
    keys_field: str = ""  # the field ``keys=`` names rows by
    tracking: bool = False


STREAMS: dict[str, Stream] = {
    "shipments": Stream(
        "shipments",
        api.SHIPMENTS_LIST,
        api.LIST_ORDER_FIELD,
        api.SHIPMENT_ID_FIELD,
        api.SHIPMENT_UPDATED_AT_FIELD,
        api.parse_wms_time,
        tracking=True,
    ),
    "returns": Stream(
        "returns",
        api.RETURNS_LIST,
        api.LIST_ORDER_FIELD,
        api.RETURN_NUMBER_FIELD,
        api.RETURN_UPDATED_AT_FIELD,
        api.parse_wms_time,
        get_one=api.RETURN_GET,
        keys_field=api.RETURN_NUMBER_FIELD,
    ),
    "products": Stream(
        "products",
        api.PRODUCTS_LIST,
        api.PRODUCT_ID_FIELD,
        api.PRODUCT_ID_FIELD,
        None,
        ids_param=api.PRODUCTS_PARAM_IDS,
        ids_max=api.PRODUCTS_IDS_MAX,
        keys_field="sku",
    ),
}


@dataclass
class ListRead:
    """What a whole-list read saw: its rows as ``(row, text as sent)`` and its cost."""

    rows: list[tuple[dict[str, Any], bytes]] = field(default_factory=list)
    requests: int = 0
    passes: int = 0
    listed: int = 0  # rows in the list (the pass that was kept)
    budget: int = 0  # the requests the replies allow (list_budget), set from the first page


def list_budget(total: int, per_page: int) -> int:
    """Requests a whole read of a list of ``total`` rows may take: the pages ``total`` promises, plus
    LIST_REQUEST_FLOOR and a tenth for rows joining while it is read, on each of READ_PASSES passes."""
    pages = max(1, math.ceil(total / per_page))
    return READ_PASSES * (pages + max(LIST_REQUEST_FLOOR, pages // 10))


def _bad(endpoint: api.Endpoint, problem: str) -> EshopboxApiError:
    return EshopboxApiError(200, endpoint.label, f"unexpected response shape: {problem}")


_ERROR_KEYS = frozenset({"error", "errors", "message"})


def _check_not_error(endpoint: api.Endpoint, data: dict[str, Any], *expected: str) -> None:
    """A 200 carrying an error envelope instead of the ``expected`` keys breaks the endpoint's contract."""
    if not any(k in data for k in expected) and _ERROR_KEYS.intersection(data):
        raise EshopboxContractError(
            endpoint.label,
            endpoint.name.upper(),
            f"a 200 reply carries an error envelope instead of {' or '.join(expected)}: "
            f"{api.error_message(data)[:200] or sorted(data)[:5]}",
            hint="The server sends errors with status 200; the read cannot tell them from data.",
        )


def parse_list_page(endpoint: api.Endpoint, data: Any) -> tuple[list[tuple[dict[str, Any], bytes]], int]:
    """The rows (decoded, and their JSON text as sent) and ``total`` of one list reply."""
    from airflow_provider_eshopbox.hooks.rawjson import RawItems
    from airflow_provider_eshopbox.sync.storage import one_line

    if not isinstance(data, dict):
        raise _bad(endpoint, "the body is not a JSON object")
    _check_not_error(endpoint, data, api.LIST_ITEMS_FIELD)
    items = data.get(api.LIST_ITEMS_FIELD)
    if isinstance(items, RawItems):
        texts: list[bytes | None] = list(items.texts)
        decoded = items.decoded()
    elif isinstance(items, list):
        texts, decoded = [None] * len(items), items
    else:
        raise _bad(endpoint, f"'{api.LIST_ITEMS_FIELD}' is missing or not a list")
    try:
        total = api.list_total(data.get(api.LIST_TOTAL_FIELD))
    except ValueError as problem:
        raise _bad(endpoint, f"{problem} (want the number of rows in the list)") from None
    rows = []
    for position, (row, text) in enumerate(zip(decoded, texts, strict=True)):
        if not isinstance(row, dict):
            raise _bad(endpoint, f"row {position} of '{api.LIST_ITEMS_FIELD}' is not an object")
        rows.append((row, one_line(row, text)))
    return rows, total


async def read_list(
    hook: EshopboxHook,
    stream: Stream,
    *,
    keep: Callable[[dict[str, Any]], bool],
    max_concurrency: int,
    per_page: int = api.LIST_PER_PAGE_MAX,
    log: Any = None,
) -> ListRead:
    """Every row of the unfiltered list for which ``keep`` is true, exactly once (see module doc)."""
    result = ListRead()
    for attempt in range(1, READ_PASSES + 1):
        result.passes = attempt
        pages = await _one_pass(hook, stream, per_page, max_concurrency, result)
        problem = _check(stream, pages, per_page)
        if problem is None:
            result.listed = sum(len(rows) for rows, _ in pages)
            result.rows = [pair for rows, _ in pages for pair in rows if keep(pair[0])]
            return result
        if log is not None:
            log.warning("%s list, pass %d: %s; reading the whole list again", stream.name, attempt, problem)
    raise EshopboxIncompleteReadError(
        f"the {stream.name} list changed in a way offset paging cannot survive on {READ_PASSES} reads in "
        f"a row (rows left it while it was read); nothing was written. Re-run the task later"
    )


Page = tuple[list[tuple[dict[str, Any], bytes]], int]


async def _one_pass(
    hook: EshopboxHook, stream: Stream, per_page: int, max_concurrency: int, result: ListRead
) -> list[Page]:
    """Page 1, then the pages its ``total`` announces concurrently, then on until a short page."""
    limit = asyncio.Semaphore(max_concurrency)
    size_param = api.list_per_page_param(stream.endpoint)

    async def fetch(page: int) -> Page:
        async with limit:
            if result.budget and result.requests >= result.budget:
                raise EshopboxContractError(
                    stream.endpoint.label,
                    "LIST_TOTAL_FIELD",
                    f"{result.requests} requests made and page {page} still to read, over the budget of "
                    f"{result.budget} that the first reply's total allows ({READ_PASSES} passes over its "
                    f"pages of {per_page}, plus a floor of {LIST_REQUEST_FLOOR})",
                )
            result.requests += 1
            data = await hook.acall(stream.endpoint, params={api.LIST_PARAM_PAGE: page, size_param: per_page})
        return parse_list_page(stream.endpoint, data)

    first = await fetch(api.LIST_FIRST_PAGE)
    result.budget = result.budget or list_budget(first[1], per_page)
    _check_page(stream, 1, first, per_page)
    planned = max(1, math.ceil(first[1] / per_page))
    pages = [first, *await run_all(fetch(p) for p in range(2, planned + 1))]
    # Rows that joined during the read extend the list: read on while the last page was full and
    # its total says there is more (a short page, or total reached, ends the list).
    while len(pages[-1][0]) == per_page and len(pages) * per_page < pages[-1][1]:
        pages.append(await fetch(len(pages) + 1))
    return pages


def _check_page(stream: Stream, number: int, page: Page, per_page: int) -> None:
    """A page must hold what its own reply's ``total`` puts at its offset (one reply is one state of
    the list, so rows joining or leaving between pages cannot explain a shortfall)."""
    rows, total = page
    due = min(per_page, max(0, total - (number - 1) * per_page))
    if len(rows) >= due:
        return
    capped = number == 1 and rows
    raise EshopboxContractError(
        stream.endpoint.label,
        "LIST_PER_PAGE_MAX" if capped else "LIST_FIRST_PAGE",
        f"page {number} holds {len(rows)} rows for a page size of {per_page} while its total of {total} "
        f"puts {due} there: the server "
        + ("caps the page size" if capped else f"does not number pages from {api.LIST_FIRST_PAGE}"),
    )


def _check(stream: Stream, pages: list[Page], per_page: int) -> str | None:
    """Why a pass cannot be trusted (a row may have been skipped), or None; raises on a contract broken."""
    first_total = pages[0][1]
    previous: Any = None
    previous_ids: list[Any] = []
    count = 0
    for number, (rows, total) in enumerate(pages, start=1):
        if total < first_total:
            return f"total fell from {first_total} to {total} by page {number}"
        _check_page(stream, number, (rows, total), per_page)
        ids = [row.get(stream.order_field) for row, _text in rows]
        if ids and ids == previous_ids:
            raise EshopboxContractError(
                stream.endpoint.label,
                "LIST_PARAM_PAGE",
                f"page {number} repeats page {number - 1} ({len(ids)} rows, {stream.order_field} "
                f"{str(ids[0])[:40]}..{str(ids[-1])[:40]}): the server ignores '{api.LIST_PARAM_PAGE}'",
            )
        for value in ids:
            if value is None or isinstance(value, bool) or not isinstance(value, (int, str)):
                raise _bad(stream.endpoint, f"a row on page {number} has no usable '{stream.order_field}'")
            if previous is not None and (type(value) is not type(previous) or value <= previous):
                raise EshopboxContractError(
                    stream.endpoint.label,
                    "LIST_ORDER_FIELD",
                    f"the {stream.name} list is not ordered by {stream.order_field} ascending "
                    f"({previous!r} then {value!r} on page {number}), so paging it cannot be proven exact",
                )
            previous = value
        previous_ids = ids
        count += len(rows)
    if count < first_total:
        return f"{count} rows read but the list had {first_total} when the read began"
    return None


async def read_tracking(
    hook: EshopboxHook, tracking_ids: list[str], max_concurrency: int
) -> tuple[dict[str, dict[str, Any]], int]:
    """Tracking details by AWB, ``api.TRACKING_IDS_MAX`` per request; returns (details, requests)."""
    limit = asyncio.Semaphore(max_concurrency)
    unique = sorted(set(tracking_ids))
    batches = [unique[i : i + api.TRACKING_IDS_MAX] for i in range(0, len(unique), api.TRACKING_IDS_MAX)]
    found: dict[str, dict[str, Any]] = {}

    async def one(batch: list[str]) -> None:
        async with limit:
            data = await hook.acall(api.TRACKING, params={api.TRACKING_PARAM_IDS: ",".join(batch)})
        entries = None
        if isinstance(data, dict):
            _check_not_error(api.TRACKING, data, *api.TRACKING_LIST_KEYS)
            entries = next((data[k] for k in api.TRACKING_LIST_KEYS if isinstance(data.get(k), list)), None)
        if entries is None:
            raise _bad(api.TRACKING, f"no {' or '.join(api.TRACKING_LIST_KEYS)} list")
        wanted = set(batch)
        for entry in entries:
            tid = entry.get(api.TRACKING_ID_FIELD) if isinstance(entry, dict) else None
            if tid in wanted:
                found[tid] = entry

    await run_all(one(b) for b in batches)
    return found, len(batches)


async def read_by_keys(
    hook: EshopboxHook, stream: Stream, keys: list[str], max_concurrency: int
) -> tuple[list[tuple[dict[str, Any], bytes]], int]:
    """The rows of the given keys (one GET each, or ``ids`` batches); a key not found is an error."""
    import json

    from airflow_provider_eshopbox.sync.storage import one_line

    limit = asyncio.Semaphore(max_concurrency)
    rows: list[tuple[dict[str, Any], bytes]] = []
    unique = sorted(set(keys))
    if stream.get_one is not None:
        endpoint = stream.get_one
        name = endpoint.path.rsplit("{", 1)[1].rstrip("}")

        async def one(key: str) -> None:
            async with limit:
                try:
                    data = await hook.acall(endpoint, path_params={name: key})
                except EshopboxApiError as error:
                    if error.status != 404:
                        raise
                    raise EshopboxApiError(
                        404, endpoint.label, f"no {stream.name} row has {name} {key!r}; check keys="
                    ) from None
            if not isinstance(data, dict):
                raise _bad(endpoint, f"{stream.key_field} {key!r} is not a JSON object")
            _check_not_error(endpoint, data, stream.key_field)
            got = data.get(stream.key_field)
            if got is None or str(got) != key:
                # a 200 for another row (a server ignoring the path key) or an error envelope
                raise EshopboxContractError(
                    endpoint.label,
                    "RETURN_NUMBER_FIELD",
                    f"asked for {stream.key_field} {key!r}, got a row with {stream.key_field}="
                    f"{str(got)[:60]!r} (keys: {sorted(data)[:6]})",
                )
            rows.append((data, json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()))

        await run_all(one(k) for k in unique)
        return rows, len(unique)
    assert stream.ids_param is not None
    batches = [unique[i : i + stream.ids_max] for i in range(0, len(unique), stream.ids_max)]

    async def batch(ids: list[str]) -> None:
        params = {stream.ids_param: ",".join(ids), api.LIST_PARAM_PER_PAGE: len(ids)}
        params[api.LIST_PARAM_PAGE] = api.LIST_FIRST_PAGE
        async with limit:
            page, total = parse_list_page(stream.endpoint, await hook.acall(stream.endpoint, params=params))
        _check_page(stream, api.LIST_FIRST_PAGE, (page, total), len(ids))  # a cap or 0-based pages
        asked = set(ids)
        # ``ids`` takes SKUs (api.py PRODUCTS_IDS_MAX, §5), whatever the stream's key field is
        strays = sorted({str(row.get("sku")) for row, _text in page} - asked)
        if strays:
            # a server ignoring ``ids`` answers rows nobody asked for: none is kept
            raise EshopboxContractError(
                stream.endpoint.label,
                "PRODUCTS_IDS_MAX",
                f"{stream.ids_param}= asked {len(asked)} SKUs, the reply holds {len(page)} "
                f"rows,"
                f" {len(strays)} of them not asked for (e.g. {strays[0][:60]!r})",
            )
        rows.extend((row, one_line(row, text)) for row, text in page)

    await run_all(batch(b) for b in batches)
    missing = sorted(set(unique) - {str(row.get(stream.keys_field)) for row, _ in rows})
    if missing:
        raise EshopboxApiError(
            200,
            stream.endpoint.label,
            f"no {stream.name} row has {stream.keys_field} {missing[:10]}; check keys=",
        )
    return rows, len(batches)
