"""EshopboxInventoryToStorageOperator: land stock as one row per (ESIN, warehouse), JSONL or Parquet."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_eshopbox.lineage import EshopboxLineageMixin
from airflow_provider_eshopbox.sync.stopping import EshopboxStopOnKillMixin

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
    from airflow_provider_eshopbox.sync.window import Window

MODES = ("snapshot", "changed")
ON_TOTALS_MISMATCH = ("warn", "fail")
# The four stock buckets of eshopbox-api.md §4.1, in output order.
BUCKETS = ("sellable", "nonSellable", "inwardInProcess", "outwardInProcess")


class EshopboxInventoryToStorageOperator(EshopboxStopOnKillMixin, EshopboxLineageMixin, BaseOperator):
    """Write stock to ``destination``: every ESIN (``mode="snapshot"``) or those changed in a window.

    Each row is one (ESIN, warehouse) of ``warehouseInventories``: ``esin``, ``sku`` (null where the
    API does not give it), ``warehouse``, the four buckets and ``snapshot_at`` (the run's start time,
    ISO-8601 UTC, the same for every row of a run). Rows are de-duplicated on (ESIN, warehouse) (an
    ESIN read twice because pages shifted keeps its last read), sorted, and written atomically.

    ``mode="changed"`` reads the ESINs whose ``updatedOn`` lies in ``[start, end)`` (default: the
    run's data interval widened by ``lookback``). ``updatedOn`` has whole-second precision and the API
    bounds are inclusive, so a request asks for ``[ceil(start), ceil(end) - 1 s]``, which is exactly
    ``[start, end)`` on whole-second stamps. A stock change moves an ESIN's ``updatedOn`` to now, out
    of a past window, so offset paging the window would skip the ESIN that the others shift over.
    The window is therefore read like the orders sync reads its own (``sync/slicing.py``): in time
    slices that each fit one page, a single request being a consistent answer; a second holding more
    than a page is paged and proven complete. Contract, for a window that is over when the read
    starts: every ESIN whose ``updatedOn`` was in the window at the start and that did not change
    during the read is written, with those values, exactly once; an ESIN that changed during the read
    is written with its values from before the change, or is absent (its new ``updatedOn`` lies after
    ``end``: the next window covers it); nothing else is written. For a window that is not over yet
    (``end`` in the future, or server clock skew: use ``lookback``), an ESIN changing during the read
    may stay inside it and be missed; a warning says so.

    ``mode="snapshot"`` pages the unfiltered listing, whose order stock changes do not alter
    (ASSUMPTION in ``api.py``): every ESIN is written exactly once, with its values as of the moment
    its page was read (an ESIN that changed during the read may have old or new values).

    Totals check: for every ESIN the warehouse buckets are summed and compared with ``inventories``.
    By default a mismatch is logged as a warning naming the ESIN and counted in the manifest
    (``totals_mismatches``): the per-warehouse rows are the data this operator lands and the totals
    are a derived aggregate the API may refresh separately, so one stale total should not stop a
    15-minute stock feed. ``on_totals_mismatch="fail"`` makes it an error (nothing is written).

    :param destination: object-storage URL or ``ObjectStoragePath`` (``.jsonl``, ``.jsonl.gz`` or
        ``.parquet``). Templated.
    :param format: ``jsonl`` or ``parquet`` (extra ``[parquet]``); default: ``parquet`` for a
        ``.parquet`` destination, else ``jsonl``. Templated.
    :param mode: ``snapshot`` (default) or ``changed``. Templated.
    :param start: window start for ``changed``; default ``data_interval_start``. Templated.
    :param end: window end (exclusive) for ``changed``; default ``data_interval_end``. Templated.
    :param lookback: extra time before ``start`` (timedelta or seconds), ``changed`` only.
    :param on_totals_mismatch: ``warn`` (default) or ``fail``.
    :param max_concurrency: requests in flight at once (``changed`` mode).
    :param eshopbox_conn_id: the Eshopbox connection. Templated (e.g. ``"{{ params.conn_id }}"``).
    """

    template_fields: Sequence[str] = ("destination", "format", "mode", "start", "end", "eshopbox_conn_id")
    ui_color = "#e8fff0"

    def __init__(
        self,
        *,
        destination: str | ObjectStoragePath,
        format: str | None = None,
        mode: str = "snapshot",
        start: Any = None,
        end: Any = None,
        lookback: timedelta | float | None = None,
        on_totals_mismatch: str = "warn",
        max_concurrency: int = 4,
        eshopbox_conn_id: str = "eshopbox_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.destination = destination
        self.format = format
        self.mode = mode
        self.start = start
        self.end = end
        self.lookback = lookback
        self.on_totals_mismatch = on_totals_mismatch
        self.max_concurrency = max_concurrency
        self.eshopbox_conn_id = eshopbox_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        import asyncio
        import time

        from airflow_provider_eshopbox.exceptions import EshopboxIncompleteReadError
        from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
        from airflow_provider_eshopbox.sync.arguments import check_choice, check_max_concurrency
        from airflow_provider_eshopbox.sync.formats import resolve_output
        from airflow_provider_eshopbox.sync.outlets import attach_to_outlet_events
        from airflow_provider_eshopbox.sync.window import resolve_window

        # Everything local is checked before the first request.
        check_choice(self.mode, MODES, "mode")
        check_choice(self.on_totals_mismatch, ON_TOTALS_MISMATCH, "on_totals_mismatch")
        check_max_concurrency(self.max_concurrency)
        window = None
        if self.mode == "changed":
            window = resolve_window(self.start, self.end, self.lookback, context)
        output = resolve_output(self.destination, self.format, "inventory")
        hook = EshopboxHook(eshopbox_conn_id=self.eshopbox_conn_id)
        hook.get_config()
        self._log_start(window, output.destination)

        started = time.monotonic()
        with _StockSpool(_snapshot_at(context), self.log) as stock:
            if window is None:
                requests = self._read_snapshot(hook, stock.add, stock.progress)
            else:
                requests = asyncio.run(self._read_changed(hook, window, stock.add, stock.progress))
            if stock.mismatches and self.on_totals_mismatch == "fail":
                raise EshopboxIncompleteReadError(
                    f"{len(stock.mismatches)} ESIN(s) have warehouse buckets that do not add up to their "
                    f"inventories totals (first: {', '.join(sorted(stock.mismatches)[:10])}); nothing written"
                )
            rows = stock.spool.write_to(output.destination, output.writer)
            stock.progress(requests, rows=rows)
        manifest: dict[str, Any] = {
            **output.manifest(rows),
            "esins": len(stock.esins),
            "mode": self.mode,
            **(window.as_manifest() if window is not None else {}),
            "snapshot_at": stock.snapshot_at,
            "totals_mismatches": len(stock.mismatches),
            "requests": requests,
            "seconds": round(time.monotonic() - started, 3),
        }
        self.log.info(
            "Wrote %d rows (%d ESINs) to %s (%d requests, %d totals mismatches)",
            rows,
            len(stock.esins),
            output.destination,
            requests,
            len(stock.mismatches),
        )
        attach_to_outlet_events(self, context, manifest)
        return manifest

    def _log_start(self, window: Window | None, destination: ObjectStoragePath) -> None:
        import time

        if window is None:
            self.log.info("Reading the full stock snapshot to %s", destination)
            return
        self.log.info(
            "Reading stock changed in [%s, %s) to %s",
            window.start.isoformat(),
            window.end.isoformat(),
            destination,
        )
        if window.end.timestamp() > time.time():
            self.log.warning(
                "The window ends in the future (%s): an ESIN whose stock changes during the read stays "
                "inside it and may be missed; read windows that are over",
                window.end.isoformat(),
            )

    @staticmethod
    def _read_snapshot(
        hook: EshopboxHook, add: Callable[[str, dict[str, Any]], None], progress: Callable[[int], None]
    ) -> int:
        """Page the unfiltered listing (stable under stock changes, see api.py); returns requests made."""
        from airflow_provider_eshopbox import api
        from airflow_provider_eshopbox.sync.inventory_guard import InventoryPager, iter_guarded_pages

        per_page = api.INVENTORY_PER_PAGE_DEFAULT
        pager = InventoryPager(per_page)
        try:
            # Checked paging (sync/inventory_guard.py): ends only at an empty page, fails typed on
            # a repeated page or a 200 error envelope, pages a 0-based server from 0.
            for _page, items in iter_guarded_pages(
                lambda page: hook.fetch_inventory_page(None, page, per_page), per_page, pager
            ):
                for esin, value in items.items():
                    add(esin, value)
                progress(pager.requests)
            return pager.requests
        finally:
            hook.close()

    async def _read_changed(
        self,
        hook: EshopboxHook,
        window: Window,
        add: Callable[[str, dict[str, Any]], None],
        progress: Callable[[int], None],
    ) -> int:
        """Read ``window`` exactly with the orders' WindowReader, seconds mapped to milliseconds.

        The reader asks for ``[start_ms, end_ms)`` slices; a slice holding no whole second cannot
        hold a stamp and costs no request. Replies carry no ``updatedOn``, while the reader sizes
        slices from row stamps (never its exactness): each row gets a stand-in stamp, the slice's
        rows spread evenly over its whole seconds (see ``_stand_in_stamps``).
        """
        from airflow_provider_eshopbox import api
        from airflow_provider_eshopbox.exceptions import EshopboxContractError
        from airflow_provider_eshopbox.sync.inventory_guard import (
            ENDPOINT,
            aprobe_filter,
            aprobe_paging,
            check_inventory_reply,
            check_rows_in_window,
        )
        from airflow_provider_eshopbox.sync.slicing import WindowReader

        # One probe of the unfiltered listing (sync/inventory_guard.py): which number the first page
        # has and whether perPage is capped; the reader then pages by what the server really serves.
        paging = await aprobe_paging(
            lambda page, size: hook.afetch_inventory_page(None, page, size), api.INVENTORY_PER_PAGE_DEFAULT
        )
        per_page = paging.page_size
        shift = paging.first_page - 1  # the reader numbers pages from 1
        # And one request for a range that must be empty: a server ignoring updatedOn (or its upper
        # bound) would otherwise have every ESIN written as "changed", green.
        canary = await aprobe_filter(
            lambda updated_on: hook.afetch_inventory_page(updated_on, shift + 1, per_page)
        )
        requests = paging.requests + canary
        previous: dict[tuple[int, int], tuple[int, frozenset[str]]] = {}

        async def fetch(start_ms: int, end_ms: int, page: int) -> tuple[list[_Stamped], bool]:
            nonlocal requests
            bounds = updated_on_bounds(_from_ms(start_ms), _from_ms(end_ms))
            if bounds is None:
                return [], False
            requests += 1
            items = await hook.afetch_inventory_page(bounds, page + shift, per_page)
            check_inventory_reply(items, page=page + shift)
            check_rows_in_window(items, *bounds)
            if len(items) > per_page:
                raise EshopboxContractError(
                    ENDPOINT,
                    "INVENTORY_PER_PAGE_DEFAULT",
                    f"page {page + shift} served {len(items)} ESINs for perPage={per_page}",
                )
            ids = frozenset(items)
            before = previous.get((start_ms, end_ms))
            if before is not None and before[0] == page - 1 and ids and ids == before[1]:
                raise EshopboxContractError(
                    ENDPOINT,
                    "INVENTORY_PARAM_PAGE",
                    f"page {page + shift} of updatedOn={api.format_updated_on(*bounds)} repeats the previous "
                    f"page ({len(ids)} ESINs): the server does not honour page",
                )
            previous[(start_ms, end_ms)] = (page, ids)
            return _stand_in_stamps(items, bounds), not api.inventory_is_last_page(len(items), per_page)

        def on_rows(rows: list[_Stamped]) -> None:
            for esin, _stamp, value in rows:
                add(esin, value)
            progress(requests)

        reader = WindowReader(
            fetch,
            timestamp=lambda row: row[1],
            row_id=lambda row: row[0],
            per_page=per_page,
            hit_cap=api.INVENTORY_HIT_CAP,
            max_concurrency=self.max_concurrency,
            on_rows=on_rows,
            settle_ms=api.INVENTORY_UPDATED_ON_SETTLE_MS,
            # One-page slices: a deep slice is proven by a query of rows updated since the read
            # began, which needs real update times; these replies carry none (stand-in stamps).
            deep=False,
        )
        try:
            await reader.read(window.start_ms, window.end_ms)
        finally:
            await hook.aclose()
        return requests


class _StockSpool:
    """The run's rows, one per (ESIN, warehouse), spooled as each ESIN arrives; counts ESINs, totals
    mismatches (logged as warnings) and reports progress."""

    def __init__(self, snapshot_at: str, log: Any) -> None:
        import itertools

        from airflow_provider_eshopbox.sync.progress import ProgressLog
        from airflow_provider_eshopbox.sync.storage import RowSpool

        reads = itertools.count()  # version of a row: later reads of an ESIN win
        self.spool = RowSpool(
            key=lambda row: f"{row['esin']}\x00{row['warehouse']}",
            version=lambda _row: next(reads),
            sort_key=lambda row: (row["esin"], row["warehouse"]),
        )
        self.snapshot_at = snapshot_at
        self.esins: set[str] = set()
        self.mismatches: list[str] = []
        self._log = log
        self._progress = ProgressLog(log, "inventory")

    def add(self, esin: str, value: dict[str, Any]) -> None:
        self.esins.add(esin)
        rows, mismatch = flatten_esin(esin, value, self.snapshot_at)
        if mismatch:
            self.mismatches.append(esin)
            self._log.warning("Stock totals of ESIN %s disagree: %s", esin, mismatch)
        for row in rows:
            self.spool.add(row)

    def progress(self, requests: int, *, rows: int | None = None) -> None:
        done = rows is not None
        self._progress.update(
            len(self.spool) if rows is None else rows, force=done, esins=len(self.esins), requests=requests
        )

    def __enter__(self) -> _StockSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.spool.close()


# One ESIN of a reply as the changed-mode reader handles it: (ESIN, stand-in stamp in ms, value).
_Stamped = tuple[str, int, dict[str, Any]]


def _stand_in_stamps(items: dict[str, dict[str, Any]], bounds: tuple[datetime, datetime]) -> list[_Stamped]:
    """The ESINs of a reply, spread evenly over the whole seconds of ``bounds`` (inclusive).

    The API does not say when each ESIN changed; a uniform spread is the guess that assumes
    nothing, and a one-second slice gets its true stamp (so a crowded second is found and paged).
    """
    first = int(bounds[0].timestamp())
    seconds = int(bounds[1].timestamp()) - first + 1
    count = len(items)
    return [
        (esin, (first + (2 * i + 1) * seconds // (2 * count)) * 1000, value)
        for i, (esin, value) in enumerate(items.items())
    ]


def _from_ms(ms: int) -> datetime:
    from datetime import timezone

    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)


def updated_on_bounds(start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
    """Inclusive whole-second ``updatedOn`` bounds selecting exactly the stamps in ``[start, end)``.

    None when no whole second lies in the window (nothing can have changed there).
    """
    first = _ceil_second(start)
    last = _ceil_second(end) - timedelta(seconds=1)
    return None if last < first else (first, last)


def _ceil_second(value: datetime) -> datetime:
    floor = value.replace(microsecond=0)
    return floor if floor == value else floor + timedelta(seconds=1)


def flatten_esin(esin: str, value: dict[str, Any], snapshot_at: str) -> tuple[list[dict[str, Any]], str]:
    """Rows of one ESIN (one per warehouse) and a description of any totals mismatch ('' if none)."""
    from airflow_provider_eshopbox import api
    from airflow_provider_eshopbox.exceptions import EshopboxApiError

    per_warehouse = value.get("warehouseInventories") or {}
    if not isinstance(per_warehouse, dict) or not all(isinstance(b, dict) for b in per_warehouse.values()):
        raise EshopboxApiError(
            200, api.INVENTORY_LIST.label, f"ESIN {esin}: warehouseInventories is not an object of objects"
        )
    sku = value.get("sku")
    rows = [
        {
            "esin": esin,
            "sku": sku if isinstance(sku, str) and sku else None,
            "warehouse": str(warehouse),
            **{bucket: buckets.get(bucket) for bucket in BUCKETS},
            "snapshot_at": snapshot_at,
        }
        for warehouse, buckets in sorted(per_warehouse.items())
    ]
    totals = value.get("inventories")
    problems: list[str] = []
    if isinstance(totals, dict):
        for bucket in BUCKETS:
            summed = sum(row[bucket] or 0 for row in rows)
            if totals.get(bucket, 0) != summed:
                said = totals.get(bucket)
                problems.append(f"{bucket}: warehouses sum to {summed}, inventories says {said!r}")
    elif totals is not None:
        problems.append(f"inventories is not an object: {totals!r}")
    return rows, "; ".join(problems)


def _snapshot_at(context: Any) -> str:
    """The run's start time as ISO-8601 UTC (one value for every row of a run)."""
    from datetime import timezone

    started = None
    dag_run = context.get("dag_run") if context else None
    if dag_run is not None:
        started = getattr(dag_run, "start_date", None)
    if started is None:
        ti = context.get("ti") if context else None
        started = getattr(ti, "start_date", None) if ti is not None else None
    if started is None:
        started = datetime.now(timezone.utc)
    if started.tzinfo is None:
        started = started.replace(tzinfo=timezone.utc)
    utc = started.astimezone(timezone.utc)
    return datetime(*utc.timetuple()[:6], utc.microsecond, tzinfo=timezone.utc).isoformat()
