"""Self-verifying inventory page loops (issue 22, item 1): the server's paging is checked, not trusted.

An inventoryListing reply carries no total and no "last page" flag (eshopbox-api.md §4.2, §8.5), so
the loops here believe nothing the replies cannot show:

* ``INVENTORY_FIRST_PAGE``: one request for ``page=0`` tells a 1-based server (400, or 200 ``{}``,
  or the same ESINs as page 1) from a 0-based one (other ESINs); a 0-based server is then paged
  from 0, so no first page is lost.
* ``INVENTORY_PER_PAGE_DEFAULT`` / ``inventory_is_last_page``: a short page is never taken as the
  last; the loop ends only at an empty page. A server that caps ``perPage`` (and pages by its cap)
  is thus read exactly, at no extra cost on a normal read whose last page is short but one request.
* ``INVENTORY_PARAM_PAGE``: a page that repeats ESINs already read (a server ignoring ``page``)
  fails the read instead of looping for ever.
* ``INVENTORY_LIST``: a 200 whose body is an error envelope (``{"error": {...}}``) or whose
  rows lack the inventory fields fails; it is not an ESIN called "error".
* A request budget: every page but the last must bring a new ESIN, so a read costs at most
  ``ESINs read + INVENTORY_REQUEST_FLOOR`` requests; past that it fails with the figures.

Every deviation is an ``EshopboxContractError`` (no retry); callers write nothing when it is raised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.exceptions import EshopboxApiError, EshopboxContractError

ENDPOINT = api.INVENTORY_LIST.label
# Requests a read may spend beyond one per ESIN read: the page-0 probe, the page-1 comparison, the
# empty page that proves the end, and one spare.
INVENTORY_REQUEST_FLOOR = 4
# Keys of an error envelope: never ESINs.
_ERROR_KEYS = frozenset({"error", "errors"})
# Any one of these marks an inventory row (the operator reads them).
_ROW_KEYS = ("warehouseInventories", "inventories")


def check_inventory_reply(items: Mapping[str, Mapping[str, Any]], *, page: int) -> None:
    """Fail on an error envelope served with 200, or rows that are not inventory rows."""
    bad = _ERROR_KEYS.intersection(items)
    if bad:
        raise EshopboxContractError(
            ENDPOINT,
            "INVENTORY_LIST",
            f"page {page} answered 200 with an error envelope (key {sorted(bad)[0]!r}), not ESIN-keyed rows",
        )
    for esin, value in items.items():
        if not any(k in value for k in _ROW_KEYS):
            raise EshopboxContractError(
                ENDPOINT,
                "INVENTORY_LIST",
                f"page {page}: ESIN {str(esin)[:40]!r} maps to an object without "
                f"{' or '.join(_ROW_KEYS)} (keys: {sorted(value)[:5]})",
            )


def check_esin_reply(items: Mapping[str, Mapping[str, Any]], esin: str, *, page: int) -> None:
    """A reply to ``esin=<esin>`` must be checked rows of that ESIN only (INVENTORY_PARAM_ESIN)."""
    check_inventory_reply(items, page=page)
    others = sorted(set(items) - {esin})
    if others:
        raise EshopboxContractError(
            ENDPOINT,
            "INVENTORY_PARAM_ESIN",
            f"esin={esin!r} answered {len(items)} ESINs, {len(others)} of them others (e.g. {others[0]!r}): "
            "the server does not honour the esin filter",
        )


def _first_page_is_zero(page0: Mapping[str, Any] | None, page1: Mapping[str, Any]) -> bool:
    """True if ``page=0`` served ESINs other than page 1's: the server numbers pages from 0."""
    return bool(page0) and set(page0) != set(page1)


@dataclass
class InventoryPager:
    """State of one guarded page loop; ``feed`` each page, it says whether to ask for the next."""

    per_page: int
    seen: set[str] = field(default_factory=set)
    requests: int = 0
    last_ids: frozenset[str] = frozenset()
    short_pages: int = 0

    def feed(self, page: int, items: Mapping[str, Mapping[str, Any]]) -> bool:
        check_inventory_reply(items, page=page)
        ids = frozenset(items)
        if len(ids) > self.per_page:
            raise EshopboxContractError(
                ENDPOINT,
                "INVENTORY_PER_PAGE_DEFAULT",
                f"page {page} served {len(ids)} ESINs for perPage={self.per_page}",
            )
        repeated = ids & self.seen
        if repeated:
            what = "repeats the previous page" if ids == self.last_ids else "repeats ESINs of earlier pages"
            raise EshopboxContractError(
                ENDPOINT,
                "INVENTORY_PARAM_PAGE",
                f"page {page} {what} ({len(repeated)} of {len(ids)} ESINs already read, e.g. "
                f"{sorted(repeated)[0]!r}): the server does not honour page",
            )
        if ids and len(ids) < self.per_page:
            self.short_pages += 1
        self.seen |= ids
        self.last_ids = ids
        budget = len(self.seen) + INVENTORY_REQUEST_FLOOR
        if self.requests > budget:
            raise EshopboxContractError(
                ENDPOINT,
                "INVENTORY_PARAM_PAGE",
                f"{self.requests} requests for {len(self.seen)} ESINs exceed the budget of {budget}",
            )
        # Only an empty page ends the read: a short one may be a server's silent perPage cap.
        return bool(ids)


def _is_page_refusal(exc: EshopboxApiError) -> bool:
    return exc.status in (400, 404, 422)


def iter_guarded_pages(
    fetch: Callable[[int], Mapping[str, Mapping[str, Any]]],
    per_page: int,
    pager: InventoryPager | None = None,
) -> Iterator[tuple[int, dict[str, dict[str, Any]]]]:
    """``(page, items)`` of the unfiltered listing, checked; ``fetch(page)`` makes one request."""
    pager = pager or InventoryPager(per_page)

    def one(page: int) -> dict[str, dict[str, Any]]:
        pager.requests += 1
        return dict(fetch(page))

    try:
        page0: dict[str, dict[str, Any]] | None = one(0)
    except EshopboxApiError as exc:
        if not _is_page_refusal(exc):
            raise
        page0 = None
    if page0:
        check_inventory_reply(page0, page=0)
    page1 = one(1)
    check_inventory_reply(page1, page=1)
    if _first_page_is_zero(page0, page1):
        assert page0 is not None
        pages = [(0, page0), (1, page1)]
    else:
        pages = [(1, page1)]
    for page, items in pages:
        if not pager.feed(page, items):
            return
        yield page, items
    page = pages[-1][0] + 1
    while True:
        items = one(page)
        if not pager.feed(page, items):
            return
        yield page, items
        page += 1


async def aiter_guarded_pages(
    fetch: Callable[[int], Awaitable[Mapping[str, Mapping[str, Any]]]],
    per_page: int,
    pager: InventoryPager | None = None,
):
    """Async twin of ``iter_guarded_pages``."""
    pager = pager or InventoryPager(per_page)

    async def one(page: int) -> dict[str, dict[str, Any]]:
        pager.requests += 1
        return dict(await fetch(page))

    try:
        page0: dict[str, dict[str, Any]] | None = await one(0)
    except EshopboxApiError as exc:
        if not _is_page_refusal(exc):
            raise
        page0 = None
    if page0:
        check_inventory_reply(page0, page=0)
    page1 = await one(1)
    check_inventory_reply(page1, page=1)
    pages = [(0, page0), (1, page1)] if _first_page_is_zero(page0, page1) else [(1, page1)]
    for page, items in pages:
        assert items is not None
        if not pager.feed(page, items):
            return
        yield page, items
    page = pages[-1][0] + 1
    while True:
        items = await one(page)
        if not pager.feed(page, items):
            return
        yield page, items
        page += 1


@dataclass(frozen=True)
class InventoryPaging:
    """What one probe of the unfiltered listing showed: the first page's number and the page size."""

    first_page: int
    page_size: int
    requests: int


async def aprobe_paging(
    fetch: Callable[[int, int], Awaitable[Mapping[str, Mapping[str, Any]]]], per_page: int
) -> InventoryPaging:
    """Pages 0, 1 (and the next one after a short first page) of the unfiltered listing.

    ``fetch(page, per_page)`` makes one request. A 0-based server shows other ESINs on page 0; a
    server capping ``perPage`` shows a short first page followed by a non-empty one: the cap is the
    page size the changed-mode reader then pages by (it relies on "a short page is the last").
    """
    requests = 0

    async def one(page: int) -> dict[str, dict[str, Any]]:
        nonlocal requests
        requests += 1
        items = dict(await fetch(page, per_page))
        check_inventory_reply(items, page=page)
        return items

    try:
        page0: dict[str, dict[str, Any]] | None = await one(0)
    except EshopboxApiError as exc:
        if not _is_page_refusal(exc):
            raise
        page0 = None
    page1 = await one(1)
    first_page = 0 if _first_page_is_zero(page0, page1) else 1
    first = page0 if first_page == 0 else page1
    assert first is not None
    if len(first) > per_page:
        raise EshopboxContractError(
            ENDPOINT,
            "INVENTORY_PER_PAGE_DEFAULT",
            f"page {first_page} served {len(first)} ESINs for perPage={per_page}",
        )
    if first_page == 0:
        following = page1
    elif 0 < len(first) < per_page:
        following = await one(2)  # a short first page: the last one, or a capped perPage?
    else:
        following = {}  # full (a repeat of it is caught per slice) or empty (an empty store)
    repeated = set(following) & set(first)
    if repeated:
        raise EshopboxContractError(
            ENDPOINT,
            "INVENTORY_PARAM_PAGE",
            f"page {first_page + 1} repeats {len(repeated)} ESINs of page {first_page} (e.g. "
            f"{sorted(repeated)[0]!r}): the server does not honour page",
        )
    page_size = per_page
    if first and len(first) < per_page and following:
        page_size = len(first)
    return InventoryPaging(first_page, page_size, requests)


# A range no stock change can fall in (before any stamp, with a lower bound in the past): a server
# that honours updatedOn answers it empty; one that ignores the filter, or its upper bound, does not.
CANARY_UPDATED_ON = "1970-01-01 00:00:00,1970-01-01 00:00:01"


async def aprobe_filter(fetch: Callable[[str], Awaitable[Mapping[str, Mapping[str, Any]]]]) -> int:
    """One request for ``CANARY_UPDATED_ON``; fails typed unless it is empty. Returns requests made."""
    items = dict(await fetch(CANARY_UPDATED_ON))
    check_inventory_reply(items, page=1)
    if items:
        raise EshopboxContractError(
            ENDPOINT,
            "INVENTORY_PARAM_UPDATED_ON",
            f"updatedOn={CANARY_UPDATED_ON!r}, a range no stock change can be in, answered "
            f"{len(items)} ESINs (e.g. {sorted(items)[0]!r}): "
            "the server ignores the filter or its upper bound",
        )
    return 1


def check_rows_in_window(items: Mapping[str, Mapping[str, Any]], lo: datetime, hi: datetime) -> None:
    """Every row that carries ``updatedOn`` must lie in the inclusive whole-second ``[lo, hi]`` asked."""
    for esin, value in items.items():
        stamp = value.get("updatedOn")
        if not isinstance(stamp, str):
            continue  # the reply does not say (the documented rows carry no updatedOn)
        try:
            when = datetime.strptime(stamp[:19], api.UPDATED_ON_FORMAT).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
        if not lo <= when <= hi:
            raise EshopboxContractError(
                ENDPOINT,
                "INVENTORY_PARAM_UPDATED_ON",
                f"ESIN {esin!r} has updatedOn={stamp!r}, outside the asked {api.format_updated_on(lo, hi)!r}",
            )
