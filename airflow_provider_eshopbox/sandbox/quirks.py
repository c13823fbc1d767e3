"""Quirk modes: the sandbox departing from ``api.py``'s ASSUMPTIONs the way a real server may (api doc §10).

Faults (``faults.py``) are transient: a retry heals them. A quirk is a standing difference in what the
server *means*, which no retry heals, and which a client that trusts its guesses turns into a wrong
file with a green task. Each quirk exists to show that a guard notices it:

``ignore_page``            every list serves its first page, whatever ``page`` says
``clamp_per_page=N``       orders and the lists serve at most N rows per page (and page by N), while
                           an envelope that echoes the page size still echoes the size asked for
``ignore_filters``         orders ``filters`` and inventory ``updatedOn`` are ignored (every row matches)
``ignore_upper_bound``     the upper bound is dropped: ``updatedAt <``/``<=`` and ``updatedOn``'s end
``bad_filter_200_empty``   a filter the server does not understand is answered 200
                           ``{"hits": [], "hasNext": false}`` instead of 400; "does not understand"
                           covers any ``updatedAt`` comparison (``>= > < <=``) as well as a parse error
``error_200``              every error reply of an API route (4xx, 5xx, injected faults) keeps its body
                           but is sent with HTTP 200
``zero_indexed_pages``     pages count from 0 on every list: ``page=0`` is the first page
``inventory_per_page_cap=N``  inventoryListing serves (and pages by) at most N ESINs per page
``ignore_ids``             the products list ignores ``ids``; a return fetched by number is another one
``offset_times``           every naive 'YYYY-MM-DD HH:MM:SS' stamp of a reply (orders' orderDate, the WMS
                           lists' and gets' stamps) is sent as ISO-8601 in IST with its offset, the same
                           instant (api.ORDER_DATE_TIME, api.WMS_TIME)
``ist_times``              every naive stamp is sent naive still, but in IST wall-clock (5 h 30 min
                           ahead of the UTC api.WMS_TIME assumes); the Date header stays the true clock
``create_200_failed``      a create stores nothing and answers 200 ``{"status": "FAILED", "message": …}``
``create_other_order``     a create stores nothing and answers 200 with another order's body

Set them at start (``python -m airflow_provider_eshopbox.sandbox --quirk ignore_page --quirk
clamp_per_page=20``), in code (``EshopboxSandbox(quirks={"clamp_per_page": 20})`` or
``sb.quirks.configure(ignore_page=True)``), or over HTTP: ``POST /__sandbox__/quirks`` with a JSON
object replaces them, ``GET`` shows them, ``DELETE`` clears them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

FLAGS = (
    "ignore_page",
    "ignore_filters",
    "ignore_upper_bound",
    "bad_filter_200_empty",
    "error_200",
    "zero_indexed_pages",
    "ignore_ids",
    "offset_times",
    "ist_times",
    "create_200_failed",
    "create_other_order",
)
SIZES = ("clamp_per_page", "inventory_per_page_cap")
NAMES = FLAGS + SIZES


@dataclass(frozen=True)
class PageCut:
    """Where a list page starts and ends in the full result, as this server understands the request."""

    start: int
    stop: int
    per_page: int  # the page size actually served

    def rows(self, items: list[Any]) -> list[Any]:
        return items[self.start : self.stop]

    def has_next(self, total: int) -> bool:
        return self.stop < total


class QuirkConfig:
    """The active quirks, thread-safe; read by the routes on every request."""

    def __init__(self, initial: Mapping[str, Any] | Iterable[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._on: dict[str, int | bool] = {}
        if initial:
            self.apply(parse_specs(initial) if not isinstance(initial, Mapping) else initial)

    # ------------------------------------------------------------------ settings
    def configure(self, **settings: Any) -> None:
        """Replace every quirk with ``settings`` (unnamed ones are off)."""
        self.apply(settings)

    def apply(self, body: Mapping[str, Any]) -> None:
        """Replace the quirks from a mapping, as ``POST /__sandbox__/quirks`` does; refuse unknown names."""
        chosen: dict[str, int | bool] = {}
        for name, value in body.items():
            if name not in NAMES:
                raise ValueError(f"unknown quirk {name!r}; known: {', '.join(NAMES)}")
            if name in FLAGS:
                if not isinstance(value, bool):
                    raise ValueError(f"quirk {name} takes true or false, got {value!r}")
                if value:
                    chosen[name] = True
            else:
                if value is None or value is False:
                    continue
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"quirk {name} takes a page size >= 1, got {value!r}")
                chosen[name] = value
        with self._lock:
            self._on = chosen

    def clear(self) -> None:
        with self._lock:
            self._on = {}

    def snapshot(self) -> dict[str, int | bool]:
        with self._lock:
            return dict(self._on)

    def on(self, name: str) -> bool:
        return bool(self._on.get(name))

    def size(self, name: str) -> int | None:
        value = self._on.get(name)
        return None if value is None or isinstance(value, bool) else value

    # ------------------------------------------------------------------ paging
    def first_page(self) -> int:
        """The number this server gives its first page."""
        return 0 if self.on("zero_indexed_pages") else 1

    def cut(self, page: int, per_page: int, *, cap: str = "clamp_per_page") -> PageCut:
        """Offsets of ``page`` (already validated against ``first_page()``) with ``per_page`` asked."""
        limit = self.size(cap)
        served = min(per_page, limit) if limit else per_page
        index = 0 if self.on("ignore_page") else page - self.first_page()
        return PageCut(index * served, (index + 1) * served, served)


def parse_specs(specs: Iterable[str]) -> dict[str, int | bool]:
    """``["ignore_page", "clamp_per_page=20"]`` -> ``{"ignore_page": True, "clamp_per_page": 20}``."""
    out: dict[str, int | bool] = {}
    for spec in specs:
        name, sep, raw = spec.strip().partition("=")
        name = name.strip().replace("-", "_")
        if name not in NAMES:
            raise ValueError(f"unknown quirk {name!r}; known: {', '.join(NAMES)}")
        if name in SIZES:
            if not sep or not raw.strip().isdigit():
                raise ValueError(f"quirk {name} needs a page size: {name}=N")
            out[name] = int(raw)
        else:
            if sep:
                raise ValueError(f"quirk {name} takes no value")
            out[name] = True
    return out


__all__ = ["FLAGS", "NAMES", "SIZES", "PageCut", "QuirkConfig", "parse_specs"]
