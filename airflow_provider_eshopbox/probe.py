"""Contract probe: check ``api.py``'s ASSUMPTIONs against a real workspace before the first sync.

``python -m airflow_provider_eshopbox.probe --conn-id eshopbox_default [--json]``

Read-only (GETs and the token exchange only) and at most ``BUDGET`` HTTP requests in all, retries
included: every request the hook's transport sends is counted by an httpx event hook and the probe
stops before the budget would be exceeded. Each check is one function returning one or more rows
``(assumption, observed, result)``; ``result`` is ``ok``, ``deviates`` or ``unknown`` (the workspace
cannot show it, e.g. too few rows). The row names are what ``# probe: NAME`` tags in api.py refer to.

Exit code: 0 all ok/unknown, 1 any deviates, 2 configuration or connection error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.exceptions import EshopboxApiError, EshopboxConfigError
from airflow_provider_eshopbox.hooks._http import RetryPolicy
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook, parse_inventory_page, parse_orders_page
from airflow_provider_eshopbox.hooks.rawjson import RawItems

BUDGET = 50
OK, DEVIATES, UNKNOWN = "ok", "deviates", "unknown"
#: a far-future bound for "everything" filters (epoch ms, year 2286)
FAR_MS = 9_999_999_999_999
LISTS = (api.SHIPMENTS_LIST, api.RETURNS_LIST, api.PRODUCTS_LIST)
RATE_HEADERS = ("retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "ratelimit-limit", "ratelimit")


@dataclass
class Row:
    assumption: str
    observed: str
    result: str


class BudgetExceeded(Exception):
    """The next request would pass the probe's request budget."""


def _rows(value: Any) -> list[Any]:
    if isinstance(value, RawItems):
        return value.decoded()
    return list(value) if isinstance(value, list) else []


def _is_error_body(data: Any) -> bool:
    return isinstance(data, Mapping) and "error" in data


def _bad_order_date(hits: list[Any]) -> str | None:
    """What is wrong with the first orderDate not sent as api.ORDER_DATE_TIME says, if any."""
    for hit in hits:
        details = hit.get("orderDetails") if isinstance(hit, Mapping) else None
        if isinstance(details, Mapping) and details.get("orderDate") is not None:
            try:
                api.parse_time(details["orderDate"], api.ORDER_DATE_TIME)
            except ValueError as exc:
                return f"orderDetails.orderDate {exc}"
    return None


def row_names() -> tuple[str, ...]:
    """Every row name the probe prints, in order (what ``# probe:`` tags may name)."""
    names = [
        "TOKEN",
        "ORDERS_LIST",
        "ORDERS_PER_PAGE_MAX",
        "ORDERS_PARAM_PAGE",
        "ORDERS_FIRST_PAGE",
        "ORDERS_UPDATED_AT_FIELD",
        "orders_window_filter:lower",
        "orders_window_filter:upper",
        "ORDERS_BAD_FILTER_4XX",
        "ORDERS_HIT_CAP",
        "INVENTORY_LIST",
        "INVENTORY_PARAM_PAGE",
        "INVENTORY_PER_PAGE_DEFAULT",
        "INVENTORY_FIRST_PAGE",
        "INVENTORY_PARAM_ESIN",
        "INVENTORY_PARAM_UPDATED_ON",
    ]
    for ep in LISTS:
        name = ep.name.upper()
        names += [name, f"{name}:first_page", f"{name}:per_page", f"{name}:page"]
    return (*names, "PRODUCTS_PARAM_IDS", "RETURN_GET", "RATE_HEADERS")


class Probe:
    """One probe run over one connection; ``requests`` counts HTTP requests actually sent."""

    def __init__(self, conn_id: str, budget: int = BUDGET) -> None:
        # few, short retries: a flaky request must not spend the budget
        policy = RetryPolicy(max_attempts=2, max_throttled_attempts=2, max_total_wait=30.0)
        self.hook = EshopboxHook(conn_id, retry_policy=policy)
        self.budget = budget
        self.requests = 0
        self.headers_seen: set[str] = set()
        self.first_page = api.ORDERS_FIRST_PAGE
        self.sample: list[dict[str, Any]] = []  # unfiltered first orders page

    # --- transport ---------------------------------------------------------------------------
    async def _count(self, request: httpx.Request) -> None:
        if self.requests >= self.budget:
            raise BudgetExceeded(f"request budget of {self.budget} spent")
        self.requests += 1

    async def _seen(self, response: httpx.Response) -> None:
        self.headers_seen.update(h for h in response.headers if h.lower() in RATE_HEADERS)

    async def _install(self) -> None:
        await self.hook.aget_config()
        http = self.hook._http
        assert http is not None
        make = http._client

        def counted() -> httpx.AsyncClient:
            client = make()
            if self._count not in client.event_hooks["request"]:
                client.event_hooks["request"].append(self._count)
                client.event_hooks["response"].append(self._seen)
            return client

        http._client = counted  # type: ignore[method-assign]

    async def get(self, endpoint: api.Endpoint, **kwargs: Any) -> tuple[int, Any]:
        """(status, body) of one GET; a 4xx is returned, not raised."""
        try:
            return 200, await self.hook.acall(endpoint, **kwargs)
        except EshopboxApiError as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status != 401:
                return exc.status, getattr(exc, "details", None)
            raise

    async def orders(self, filters: str | None, page: int, per_page: int = 100) -> tuple[int, Any]:
        params: dict[str, Any] = {api.ORDERS_PARAM_PAGE: page, api.ORDERS_PARAM_PER_PAGE: per_page}
        if filters is not None:
            params[api.ORDERS_PARAM_FILTERS] = filters
        status, data = await self.get(api.ORDERS_LIST, params=params)
        if status == 200 and isinstance(data, Mapping) and "hits" in data:
            data = dict(data, hits=_rows(data["hits"]))
        return status, data

    # --- token -------------------------------------------------------------------------------
    async def check_token(self) -> list[Row]:
        from airflow_provider_eshopbox.hooks._http import RequestSpec
        from airflow_provider_eshopbox.hooks.eshopbox import parse_token_reply

        config = self.hook._config
        http = self.hook._http
        assert config is not None and http is not None
        body = api.token_request_body(config.client_id, config.client_secret, config.refresh_token)
        reply = await http.send(RequestSpec(api.TOKEN, config.auth_url, json=body, idempotent=True))
        has_expiry = isinstance(reply.data, Mapping) and "expires_in" in reply.data
        _, expires_in, _ = parse_token_reply(config.conn_id, reply)
        if not has_expiry:
            return [
                Row("TOKEN", f"exchanged; no expires_in (assumed {api.DEFAULT_EXPIRES_IN:.0f} s)", UNKNOWN)
            ]
        skew = api.refresh_skew(expires_in)
        seen = f"exchanged; expires_in={expires_in:.0f} s, refreshed {skew:.0f} s early"
        return [Row("TOKEN", seen, OK if expires_in > 0 else DEVIATES)]

    # --- orders ------------------------------------------------------------------------------
    async def check_orders_paging(self) -> list[Row]:
        status, one = await self.orders(None, api.ORDERS_FIRST_PAGE)
        rows: list[Row] = []
        if status != 200 or not isinstance(one, Mapping) or _is_error_body(one):
            # a workspace that wants a filter: an all-time window instead
            status, one = await self.orders(api.orders_window_filter(0, FAR_MS), api.ORDERS_FIRST_PAGE)
            self.unfiltered = api.orders_window_filter(0, FAR_MS)
        else:
            self.unfiltered = None
        try:
            first = parse_orders_page(one, 1, 100)
        except EshopboxApiError as exc:
            return [Row("ORDERS_LIST", f"HTTP {status}: {exc}", DEVIATES)]
        hits = first.hits
        self.sample = hits
        bad_date = _bad_order_date(hits)
        seen = f"hits list ({len(hits)}) + hasNext={first.has_next}" + (f"; {bad_date}" if bad_date else "")
        rows.append(Row("ORDERS_LIST", seen, DEVIATES if bad_date else OK))
        id_field = api.ORDER_ROW_ID_FIELD
        ids1 = [h.get(id_field) for h in hits]
        # per_page honoured or clamped
        if len(hits) >= 100 or not first.has_next:
            rows.append(Row("ORDERS_PER_PAGE_MAX", f"per_page=100 served {len(hits)}", OK))
        else:
            rows.append(
                Row("ORDERS_PER_PAGE_MAX", f"per_page=100 clamped to {len(hits)} (hasNext true)", DEVIATES)
            )
        # page honoured
        if not first.has_next:
            rows.append(Row("ORDERS_PARAM_PAGE", "only one page of orders", UNKNOWN))
        else:
            _, two = await self.orders(self.unfiltered, api.ORDERS_FIRST_PAGE + 1)
            ids2 = (
                [h.get(id_field) for h in _rows(two.get("hits")) if isinstance(h, Mapping)]
                if isinstance(two, Mapping)
                else []
            )
            if not ids2:
                rows.append(Row("ORDERS_PARAM_PAGE", "page 2 empty although page 1 said hasNext", DEVIATES))
            elif set(ids2) & set(ids1):
                same = len(set(ids2) & set(ids1))
                rows.append(Row("ORDERS_PARAM_PAGE", f"page 2 repeats {same} of page 1's rows", DEVIATES))
            else:
                rows.append(
                    Row("ORDERS_PARAM_PAGE", f"page 2 differs from page 1 ({len(ids2)} new rows)", OK)
                )
        # 0- or 1-based
        status, zero = await self.orders(self.unfiltered, 0)
        zero_hits = _rows(zero.get("hits")) if isinstance(zero, Mapping) else []
        if status != 200 or not zero_hits:
            rows.append(Row("ORDERS_FIRST_PAGE", f"page=0 answered HTTP {status} with no hits: 1-based", OK))
        else:
            self.first_page = 0
            rows.append(
                Row("ORDERS_FIRST_PAGE", f"page=0 served {len(zero_hits)} hits: pages count from 0", DEVIATES)
            )
        return rows

    def _stamps(self) -> list[int]:
        field = api.ORDERS_UPDATED_AT_FIELD
        return sorted(h[field] for h in self.sample if isinstance(h.get(field), int))

    async def check_orders_filter(self) -> list[Row]:
        field, id_field = api.ORDERS_UPDATED_AT_FIELD, api.ORDER_ROW_ID_FIELD
        names = ("ORDERS_UPDATED_AT_FIELD", "orders_window_filter:lower", "orders_window_filter:upper")
        stamps = self._stamps()
        if len(stamps) < 2 or stamps[0] == stamps[-1]:
            return [Row(n, "too few orders rows with distinct updatedAt", UNKNOWN) for n in names]
        mid = stamps[len(stamps) // 2]
        exact = next(h for h in self.sample if h.get(field) == mid)
        rows: list[Row] = []
        # a row asked for by its exact updatedAt is returned
        status, got = await self.orders(api.orders_window_filter(mid, mid + 1), self.first_page)
        hits = _rows(got.get("hits")) if isinstance(got, Mapping) else []
        if status != 200:
            rows.append(Row(names[0], f"window filter refused: HTTP {status}", DEVIATES))
        elif not hits:
            rows.append(Row(names[0], f"200 + empty for the exact updatedAt={mid} of a listed row", DEVIATES))
        elif exact.get(id_field) not in {h.get(id_field) for h in hits}:
            rows.append(
                Row(names[0], f"the row at updatedAt={mid} is missing from its exact window", DEVIATES)
            )
        else:
            rows.append(Row(names[0], f"row at updatedAt={mid} returned by its exact window", OK))

        async def bound(name: str, lo: int, hi: int, expected: int) -> Row:
            status, got = await self.orders(api.orders_window_filter(lo, hi), self.first_page)
            hits = _rows(got.get("hits")) if isinstance(got, Mapping) else []
            if status != 200:
                return Row(name, f"HTTP {status}", DEVIATES)
            if not hits:
                return Row(name, f"200 + empty; {expected} listed rows lie in [{lo}, {hi})", DEVIATES)
            outside = [h.get(field) for h in hits if not lo <= h.get(field, -1) < hi]
            if outside:
                return Row(
                    name,
                    f"{len(outside)} of {len(hits)} rows outside [{lo}, {hi}), e.g. {outside[0]}",
                    DEVIATES,
                )
            return Row(name, f"{len(hits)} rows, all inside [{lo}, {hi})", OK)

        rows.append(await bound(names[1], mid, FAR_MS, sum(s >= mid for s in stamps)))
        rows.append(await bound(names[2], 0, mid, sum(s < mid for s in stamps)))
        return rows

    async def check_orders_bad_filter(self) -> list[Row]:
        status, data = await self.orders(
            f"({api.ORDERS_UPDATED_AT_FIELD} >>> not-a-number", api.ORDERS_FIRST_PAGE
        )
        name = "ORDERS_BAD_FILTER_4XX"
        if 400 <= status < 500:
            return [Row(name, f"malformed filter answered HTTP {status}", OK)]
        if _is_error_body(data):
            return [Row(name, "malformed filter answered 200 with an error body", DEVIATES)]
        return [
            Row(
                name,
                "malformed filter answered 200 + empty (a filter it misreads looks like no rows)",
                DEVIATES,
            )
        ]

    async def check_orders_hit_cap(self) -> list[Row]:
        name = "ORDERS_HIT_CAP"
        last = api.ORDERS_HIT_CAP // 100 - (1 - self.first_page)  # the cap's last page of 100
        status, data = await self.orders(self.unfiltered, last)
        try:
            page = parse_orders_page(data, last, 100)
        except EshopboxApiError as exc:
            return [Row(name, f"HTTP {status}: {exc}", UNKNOWN)]
        n = len(page.hits)
        if n == 100 and not page.has_next:
            return [Row(name, f"hits end at {api.ORDERS_HIT_CAP} on a full page (cap as assumed)", OK)]
        if n == 100 and page.has_next:
            return [Row(name, f"hits go on past {api.ORDERS_HIT_CAP} (cap deeper: harmless)", OK)]
        return [Row(name, f"page {last} holds {n} hits: fewer rows than the cap, or a lower cap", UNKNOWN)]

    # --- inventory ---------------------------------------------------------------------------
    async def inventory(
        self, page: int, per_page: int = api.INVENTORY_PER_PAGE_DEFAULT, **extra: Any
    ) -> tuple[int, Any]:
        params = {api.INVENTORY_PARAM_PAGE: page, api.INVENTORY_PARAM_PER_PAGE: per_page, **extra}
        return await self.get(api.INVENTORY_LIST, params=params)

    async def check_inventory(self) -> list[Row]:
        per = api.INVENTORY_PER_PAGE_DEFAULT
        status, data = await self.inventory(api.INVENTORY_FIRST_PAGE)
        if status != 200 or _is_error_body(data):
            return [Row("INVENTORY_LIST", f"HTTP {status}, body {str(data)[:80]}", DEVIATES)]
        try:
            one = parse_inventory_page(data)
        except EshopboxApiError as exc:
            return [Row("INVENTORY_LIST", str(exc), DEVIATES)]
        rows = [Row("INVENTORY_LIST", f"ESIN-keyed object ({len(one)} ESINs)", OK)]
        self.esins = list(one)
        _, data2 = await self.inventory(api.INVENTORY_FIRST_PAGE + 1)
        two = parse_inventory_page(data2) if not _is_error_body(data2) else {}
        # page honoured
        if not one or (len(one) < per and not two):
            rows.append(Row("INVENTORY_PARAM_PAGE", f"one page only ({len(one)} ESINs)", UNKNOWN))
        elif set(one) & set(two):
            rows.append(
                Row(
                    "INVENTORY_PARAM_PAGE",
                    f"page 2 repeats {len(set(one) & set(two))} ESINs of page 1",
                    DEVIATES,
                )
            )
        elif not two:
            rows.append(Row("INVENTORY_PARAM_PAGE", f"page 1 full ({len(one)}), page 2 empty", OK))
        else:
            rows.append(Row("INVENTORY_PARAM_PAGE", f"page 2 differs ({len(two)} other ESINs)", OK))
        # perPage honoured
        if len(one) < per and two and not set(one) & set(two):
            rows.append(
                Row(
                    "INVENTORY_PER_PAGE_DEFAULT",
                    f"perPage={per} capped to {len(one)}: a short page is not the last",
                    DEVIATES,
                )
            )
        else:
            rows.append(Row("INVENTORY_PER_PAGE_DEFAULT", f"perPage={per} served {len(one)}", OK))
        # 1-based
        status, zero = await self.inventory(0)
        inventory_first = api.INVENTORY_FIRST_PAGE
        if status == 200 and isinstance(zero, Mapping) and not _is_error_body(zero) and zero:
            inventory_first = 0  # the filtered checks below ask the page this server calls first
            rows.append(
                Row("INVENTORY_FIRST_PAGE", f"page=0 served {len(zero)} ESINs: pages count from 0", DEVIATES)
            )
        else:
            rows.append(
                Row("INVENTORY_FIRST_PAGE", f"page=0 answered HTTP {status} without ESINs: 1-based", OK)
            )
        # esin filter
        if self.esins:
            esin = self.esins[0]
            _, got = await self.inventory(inventory_first, **{api.INVENTORY_PARAM_ESIN: esin})
            keys = set(got) if isinstance(got, Mapping) else set()
            if keys == {esin}:
                rows.append(Row("INVENTORY_PARAM_ESIN", f"esin={esin} answered that ESIN only", OK))
            elif esin in keys:  # the hook picks the asked ESIN out of the page (aget_inventory)
                rows.append(Row("INVENTORY_PARAM_ESIN", f"esin={esin} answered it among {len(keys)}", OK))
            else:
                rows.append(Row("INVENTORY_PARAM_ESIN", f"esin={esin} missing from the answer", DEVIATES))
        else:
            rows.append(Row("INVENTORY_PARAM_ESIN", "no ESIN to ask for", UNKNOWN))
        rows.append(await self.check_inventory_range())
        return rows

    async def check_inventory_range(self) -> Row:
        name = "INVENTORY_PARAM_UPDATED_ON"
        fmt = api.UPDATED_ON_FORMAT
        long_ago = "2000-01-01 00:00:00,2000-01-01 00:00:01"
        now = time.strftime(fmt, time.gmtime(time.time() + 86400))
        _, empty = await self.inventory(
            api.INVENTORY_FIRST_PAGE, **{api.INVENTORY_PARAM_UPDATED_ON: long_ago}
        )
        if isinstance(empty, Mapping) and empty and not _is_error_body(empty):
            return Row(name, f"updatedOn={long_ago!r} served {len(empty)} ESINs: range ignored", DEVIATES)
        _, full = await self.inventory(
            api.INVENTORY_FIRST_PAGE, **{api.INVENTORY_PARAM_UPDATED_ON: f"2000-01-01 00:00:00,{now}"}
        )
        if self.esins and not (isinstance(full, Mapping) and full and not _is_error_body(full)):
            return Row(name, "an all-time updatedOn range served no ESINs", DEVIATES)
        return Row(name, "year-2000 range empty, all-time range served ESINs", OK)

    # --- lists -------------------------------------------------------------------------------
    async def list_page(self, ep: api.Endpoint, page: int, per_page: int, **extra: Any) -> tuple[int, Any]:
        params = {api.LIST_PARAM_PAGE: page, api.list_per_page_param(ep): per_page, **extra}
        return await self.get(ep, params=params)

    async def check_list(self, ep: api.Endpoint) -> list[Row]:
        name = ep.name.upper()
        key = api.PRODUCT_ID_FIELD if ep is api.PRODUCTS_LIST else api.LIST_ORDER_FIELD
        status, zero = await self.list_page(ep, 0, 10)
        zrows = _rows(zero.get(api.LIST_ITEMS_FIELD)) if isinstance(zero, Mapping) else []
        first = api.LIST_FIRST_PAGE
        if status == 200 and zrows:
            first = self.list_first_page = 0
            first_row = Row(
                f"{name}:first_page", f"page=0 served {len(zrows)} rows: pages count from 0", DEVIATES
            )
        else:
            first_row = Row(f"{name}:first_page", f"page=0 answered HTTP {status} without rows: 1-based", OK)
        status, big = await self.list_page(ep, first, api.LIST_PER_PAGE_MAX)
        if status != 200 or not isinstance(big, Mapping) or _is_error_body(big):
            return [Row(name, f"HTTP {status}: not a list envelope", DEVIATES), first_row]
        data = _rows(big.get(api.LIST_ITEMS_FIELD))
        try:
            total = api.list_total(big.get(api.LIST_TOTAL_FIELD))
        except ValueError as exc:
            return [Row(name, f"'data' {len(data)} rows; {exc}", DEVIATES), first_row]
        stamp_field = {
            api.SHIPMENTS_LIST.name: api.SHIPMENT_UPDATED_AT_FIELD,
            api.RETURNS_LIST.name: api.RETURN_UPDATED_AT_FIELD,
        }.get(ep.name)
        bad_stamp = None
        if stamp_field:
            for r in data:
                try:  # the encoding, then the zone: no stamp after the server's own clock
                    stamp = r.get(stamp_field)
                    api.check_server_clock(stamp, api.parse_wms_time(stamp), self.hook.server_now_ms())
                except ValueError as exc:
                    bad_stamp = f"{stamp_field} {exc}"
                    break
        rows = [
            Row(
                name,
                f"'data' + total={total}" + (f"; {bad_stamp}" if bad_stamp else ""),
                DEVIATES if bad_stamp else OK,
            )
        ]
        if ep is api.PRODUCTS_LIST:
            self.skus = [r.get("sku") for r in data if r.get("sku")]
        if ep is api.RETURNS_LIST:
            self.return_numbers = [
                r.get(api.RETURN_NUMBER_FIELD) for r in data if r.get(api.RETURN_NUMBER_FIELD)
            ]
        # per page
        want = min(api.LIST_PER_PAGE_MAX, total)
        asked = f"{api.list_per_page_param(ep)}={api.LIST_PER_PAGE_MAX}"
        if len(data) >= want:
            rows.append(
                Row(
                    f"{name}:per_page",
                    f"{asked} served {len(data)} of total {total}",
                    OK,
                )
            )
        else:
            rows.append(
                Row(
                    f"{name}:per_page",
                    f"{asked} clamped to {len(data)} (total {total})",
                    DEVIATES,
                )
            )
        # paging and order, by 10
        if total <= 10:
            rows.append(Row(f"{name}:page", f"total {total}: one page of 10", UNKNOWN))
        else:
            _, p1 = await self.list_page(ep, first, 10)
            _, p2 = await self.list_page(ep, first + 1, 10)
            k1 = [r.get(key) for r in _rows(p1.get(api.LIST_ITEMS_FIELD))] if isinstance(p1, Mapping) else []
            k2 = [r.get(key) for r in _rows(p2.get(api.LIST_ITEMS_FIELD))] if isinstance(p2, Mapping) else []
            both = k1 + k2
            try:
                ascending = all(a < b for a, b in itertools.pairwise(both))
            except TypeError:
                ascending = False
            if not k2:
                rows.append(Row(f"{name}:page", f"page 2 empty with total {total}", DEVIATES))
            elif set(k1) & set(k2):
                rows.append(
                    Row(f"{name}:page", f"page 2 repeats {len(set(k1) & set(k2))} rows of page 1", DEVIATES)
                )
            elif not ascending:
                rows.append(Row(f"{name}:page", f"pages 1-2 not in ascending {key} order", DEVIATES))
            else:
                rows.append(Row(f"{name}:page", f"pages 1-2 differ, {key} ascending", OK))
        return [*rows[:1], first_row, *rows[1:]]

    async def check_product_ids(self) -> list[Row]:
        name = "PRODUCTS_PARAM_IDS"
        skus = getattr(self, "skus", [])[:2]
        if not skus:
            return [Row(name, "no products to ask for", UNKNOWN)]
        first = getattr(self, "list_first_page", api.LIST_FIRST_PAGE)
        _, got = await self.list_page(
            api.PRODUCTS_LIST, first, api.LIST_PER_PAGE_MAX, **{api.PRODUCTS_PARAM_IDS: ",".join(skus)}
        )
        seen = (
            {r.get("sku") for r in _rows(got.get(api.LIST_ITEMS_FIELD))}
            if isinstance(got, Mapping)
            else set()
        )
        if seen == set(skus):
            return [Row(name, f"ids={len(skus)} SKUs answered exactly those", OK)]
        return [
            Row(
                name,
                f"ids={len(skus)} SKUs answered {len(seen)} rows ({len(seen - set(skus))} not asked for)",
                DEVIATES,
            )
        ]

    async def check_return_get(self) -> list[Row]:
        name = "RETURN_GET"
        numbers = getattr(self, "return_numbers", [])
        if not numbers:
            return [Row(name, "no returns to ask for", UNKNOWN)]
        status, got = await self.get(api.RETURN_GET, path_params={api.RETURN_NUMBER_FIELD: numbers[0]})
        number = got.get(api.RETURN_NUMBER_FIELD) if isinstance(got, Mapping) else None
        if status == 200 and number == numbers[0]:
            return [Row(name, f"return {numbers[0]} answered itself", OK)]
        return [
            Row(
                name,
                f"return {numbers[0]} answered HTTP {status}, {api.RETURN_NUMBER_FIELD}={number!r}",
                DEVIATES,
            )
        ]

    def check_rate_headers(self) -> list[Row]:
        if self.headers_seen:
            return [Row("RATE_HEADERS", f"seen: {', '.join(sorted(self.headers_seen))}", OK)]
        return [Row("RATE_HEADERS", "no Retry-After or rate-limit header seen (no 429 met)", UNKNOWN)]

    # --- the run -----------------------------------------------------------------------------
    async def run(self) -> list[Row]:
        await self._install()
        checks: list[Callable[[], Any]] = [
            self.check_token,
            self.check_orders_paging,
            self.check_orders_filter,
            self.check_orders_bad_filter,
            self.check_orders_hit_cap,
            self.check_inventory,
            *[lambda ep=ep: self.check_list(ep) for ep in LISTS],
            self.check_product_ids,
            self.check_return_get,
        ]
        rows: list[Row] = []
        try:
            for check in checks:
                try:
                    rows += await check()
                except BudgetExceeded:
                    raise
                except EshopboxApiError as exc:
                    if "budget" in str(exc):
                        raise BudgetExceeded(str(exc)) from None
                    rows.append(Row(getattr(check, "__name__", "check"), f"error: {exc}", UNKNOWN))
        except BudgetExceeded:
            rows.append(Row("BUDGET", f"stopped: {self.budget} requests spent", UNKNOWN))
        finally:
            await self.hook.aclose()
        return rows + self.check_rate_headers()


def render_table(rows: list[Row]) -> str:
    w1 = max(len("assumption"), *(len(r.assumption) for r in rows))
    w3 = len("deviates")
    lines = [f"{'assumption':<{w1}}  {'result':<{w3}}  observed", f"{'-' * w1}  {'-' * w3}  {'-' * 8}"]
    lines += [f"{r.assumption:<{w1}}  {r.result:<{w3}}  {r.observed}" for r in rows]
    return "\n".join(lines)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send whatever writes to stdout (Airflow's log handler holds the stream) to stderr for a while."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real fd 1 (e.g. under pytest's capture)
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_eshopbox.probe",
        description="Check api.py's ASSUMPTIONs against a workspace (read-only, at most 50 requests).",
    )
    parser.add_argument("--conn-id", default=EshopboxHook.default_conn_name)
    parser.add_argument("--json", action="store_true", help="print a JSON report instead of the table")
    args = parser.parse_args(argv)
    probe = Probe(args.conn_id)
    try:
        with _stdout_to_stderr():  # log lines to stderr: stdout is the report
            rows = asyncio.run(probe.run())
    except (EshopboxConfigError, EshopboxApiError, OSError) as exc:
        print(f"probe: cannot check connection {args.conn_id!r}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # an auth failure or anything else that stops the run
        print(f"probe: connection {args.conn_id!r} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    deviates = any(r.result == DEVIATES for r in rows)
    if args.json:
        report = {
            "conn_id": args.conn_id,
            "requests": probe.requests,
            "budget": probe.budget,
            "rows": [asdict(r) for r in rows],
        }
        print(json.dumps(report, indent=2))
    else:
        print(render_table(rows))
        print(
            f"\n{probe.requests} requests (budget {probe.budget}); "
            f"{sum(r.result == DEVIATES for r in rows)} deviate"
        )
    return 1 if deviates else 0


if __name__ == "__main__":
    sys.exit(main())
