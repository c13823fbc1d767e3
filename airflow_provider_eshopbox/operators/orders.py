"""EshopboxOrdersToStorageOperator: land the order-item rows updated in ``[start, end)``, JSONL or Parquet."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_eshopbox.lineage import EshopboxLineageMixin
from airflow_provider_eshopbox.sync.stopping import EshopboxStopOnKillMixin

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook, OrdersPage
    from airflow_provider_eshopbox.sync.slicing import SliceStats
    from airflow_provider_eshopbox.sync.storage import RowSpool
    from airflow_provider_eshopbox.sync.window import Window


class EshopboxOrdersToStorageOperator(EshopboxStopOnKillMixin, EshopboxLineageMixin, BaseOperator):
    """Sync the order-item rows whose ``updatedAt`` lies in ``[start, end)`` to ``destination``.

    The window defaults to the run's data interval, widened by ``lookback``. Rows are read in time
    slices that each fit one page (see ``slicing``), ``max_concurrency`` at a time within the
    connection's rate limit, de-duplicated on ``orderItemID`` (newest ``updatedAt`` wins), sorted,
    and written atomically: nothing appears at ``destination`` unless every row was read. In JSON
    Lines each line is the row's JSON exactly as the API sent it (re-encoded only if it spanned lines);
    in Parquet the columns are typed from ``schemas.py`` (``sync/formats.py``). Returns a small
    manifest; with ``outlets=[Asset(...)]`` the manifest also rides on the asset event.

    :param destination: object-storage URL or ``ObjectStoragePath`` of the output file
        (``.jsonl``, ``.jsonl.gz`` or ``.parquet``). Templated.
    :param format: ``jsonl`` or ``parquet`` (extra ``[parquet]``); default: ``parquet`` for a
        ``.parquet`` destination, else ``jsonl``. Templated.
    :param start: window start, ISO-8601 or datetime; default ``data_interval_start``. Templated.
    :param end: window end (exclusive); default ``data_interval_end``. Templated.
    :param lookback: extra time before ``start`` (timedelta or seconds) for late updates.
    :param fields: row keys to fetch (dotted for nested); ``objectID``, ``orderItemID`` and
        ``updatedAt`` are always added. Default: every field. Templated.
    :param max_concurrency: requests in flight at once.
    :param eshopbox_conn_id: the Eshopbox connection. Templated (e.g. ``"{{ params.conn_id }}"``).
    """

    template_fields: Sequence[str] = ("destination", "format", "start", "end", "fields", "eshopbox_conn_id")
    ui_color = "#e8f4ff"

    def __init__(
        self,
        *,
        destination: str | ObjectStoragePath,
        format: str | None = None,
        start: Any = None,
        end: Any = None,
        lookback: timedelta | float | None = None,
        fields: Sequence[str] | str | None = None,
        max_concurrency: int = 16,
        eshopbox_conn_id: str = "eshopbox_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.destination = destination
        self.format = format
        self.start = start
        self.end = end
        self.lookback = lookback
        self.fields = fields
        self.max_concurrency = max_concurrency
        self.eshopbox_conn_id = eshopbox_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        import asyncio
        import operator
        import time

        from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
        from airflow_provider_eshopbox.sync.arguments import check_max_concurrency, pace
        from airflow_provider_eshopbox.sync.formats import resolve_output
        from airflow_provider_eshopbox.sync.outlets import attach_to_outlet_events
        from airflow_provider_eshopbox.sync.storage import RowSpool
        from airflow_provider_eshopbox.sync.window import resolve_window

        # Everything local is checked before the first request.
        window = resolve_window(self.start, self.end, self.lookback, context)
        fields = _resolve_fields(self.fields)
        check_max_concurrency(self.max_concurrency)
        output = resolve_output(self.destination, self.format, "orders")
        destination = output.destination
        hook = EshopboxHook(eshopbox_conn_id=self.eshopbox_conn_id)
        config = hook.get_config()
        self.log.info(
            "Syncing orders updated in [%s, %s) to %s, %s",
            window.start.isoformat(),
            window.end.isoformat(),
            destination,
            pace(self.max_concurrency, config.max_requests_per_second),
        )

        started = time.monotonic()
        # A row is (orderItemID, updatedAt, its JSON line): see _rows. The output is in the order of
        # api.order_row_sort_key: by updatedAt (the version), then orderItemID (the key): no sort_key.
        spool = RowSpool(key=operator.itemgetter(0), version=operator.itemgetter(1))
        with spool:
            stats = asyncio.run(self._read(hook, window, fields, spool))
            rows = spool.write_to(destination, output.writer)
        manifest = {
            **output.manifest(rows),
            **window.as_manifest(),
            "requests": stats.requests,
            "slices": stats.slices,
            "seconds": round(time.monotonic() - started, 3),  # reading and writing
        }
        self.log.info(
            "Wrote %d rows to %s (%d requests, %d slices, %d rows seen twice, read in %.1f s)",
            rows,
            destination,
            stats.requests,
            stats.slices,
            stats.rows - rows,
            stats.seconds,
        )
        attach_to_outlet_events(self, context, manifest)
        return manifest

    async def _read(
        self,
        hook: EshopboxHook,
        window: Window,
        fields: list[str] | None,
        spool: RowSpool,
    ) -> SliceStats:
        import asyncio
        import operator

        from airflow_provider_eshopbox import api
        from airflow_provider_eshopbox.sync.progress import ProgressLog
        from airflow_provider_eshopbox.sync.slicing import ReadContract, WindowReader

        progress = ProgressLog(self.log, "orders", every=_PROGRESS_EVERY)

        async def fetch(start_ms: int, end_ms: int, page: int) -> tuple[list[Row], bool]:
            result = await hook.afetch_orders_page(
                api.orders_window_filter(start_ms, end_ms),
                page=page,
                per_page=api.ORDERS_PER_PAGE_MAX,
                fields=fields,
            )
            return _rows(result, f" of updatedAt in [{start_ms}, {end_ms})"), result.has_next

        async def reference() -> list[Row]:  # a few rows known to exist, for the empty-window cross-check
            known = await hook.afetch_orders_probe(None, api.ORDERS_FIRST_PAGE, per_page=10)
            return _rows(known, " (unfiltered)")

        async def fetch_guarded(start_ms: int, end_ms: int, page: int) -> tuple[list[Row], bool]:
            if page != 0:
                return await fetch(start_ms, end_ms, page)
            result = await hook.afetch_orders_page_zero(api.orders_window_filter(start_ms, end_ms))
            return _rows(result), result.has_next

        def on_rows(rows: list[Row]) -> None:
            spool.extend((row, row[2]) for row in rows)

        def on_progress(stats: SliceStats) -> None:
            progress.update(
                stats.rows, window_read=stats.done, slices_done=stats.slices, requests=stats.requests
            )

        reader = WindowReader(
            fetch_guarded,
            timestamp=operator.itemgetter(1),
            row_id=operator.itemgetter(0),
            per_page=api.ORDERS_PER_PAGE_MAX,
            hit_cap=api.ORDERS_HIT_CAP,
            max_concurrency=self.max_concurrency,
            paced_by=hook.get_config().max_requests_per_second,
            on_rows=on_rows,
            on_progress=on_progress,
            contract=ReadContract(
                reference=reference,
                zero_page_known=hook.aorders_first_page_known,
                zero_page_passed=hook.aremember_orders_first_page,
            ),
        )

        async def heartbeat() -> None:
            # Rows arrive a slice at a time; under sustained throttling a slice can take longer
            # than a progress interval, so the log is told the request count all the same.
            while True:
                await asyncio.sleep(_PROGRESS_EVERY)
                on_progress(reader.stats)

        beat = asyncio.ensure_future(heartbeat())
        try:
            stats = await reader.read(window.start_ms, window.end_ms)
        finally:
            beat.cancel()
            await hook.aclose()
        progress.update(
            stats.rows, force=True, window_read=stats.done, slices_done=stats.slices, requests=stats.requests
        )
        return stats


_PROGRESS_EVERY = 5.0  # seconds between progress lines, whether rows arrive or not

# One order-item row as the sync handles it: (orderItemID, updatedAt, its JSON line as sent).
Row = tuple[str, int, bytes]


def _rows(page: OrdersPage, where: str = "") -> list[Row]:
    """The rows of a page: identity and version read without decoding the hits, when they allow.

    A hit without a usable ``orderItemID`` or ``updatedAt`` fails the sync (it would be merged with
    another row or lost); ``where`` names its slice in the error.
    """
    from airflow_provider_eshopbox import api
    from airflow_provider_eshopbox.exceptions import EshopboxApiError
    from airflow_provider_eshopbox.sync.storage import fits_one_line, one_line

    texts, keys = page.hit_texts, page.row_keys
    if (
        keys is not None
        and texts is not None
        and all(key for key, _ in keys)
        and all(map(fits_one_line, texts))
    ):
        return [(row_id, updated_at, text) for (row_id, updated_at), text in zip(keys, texts, strict=True)]
    hits = page.hits  # unusual: a hit without a plain id or time, or a row sent over several lines
    lines = texts if texts is not None else [None] * len(hits)
    rows = []
    for position, (hit, text) in enumerate(zip(hits, lines, strict=True)):
        try:
            rows.append((api.order_row_id(hit), api.order_row_updated_at(hit), one_line(hit, text)))
        except ValueError as problem:
            raise EshopboxApiError(
                200,
                api.ORDERS_LIST.label,
                f"hit {position} (objectID {hit.get('objectID')!r}) of page {page.page}{where}: {problem}. "
                "The sync cannot key this row without merging it with another or losing it, so nothing "
                "was written; have the row fixed in Eshopbox, then re-run the task",
            ) from None
    return rows


def _resolve_fields(fields: Sequence[str] | str | None) -> list[str] | None:
    """The ``fields`` to request, always including what slicing and de-duplication need."""
    from airflow_provider_eshopbox import api
    from airflow_provider_eshopbox.exceptions import EshopboxConfigError

    if fields is None or fields == "" or fields == []:
        return None
    if not isinstance(fields, (str, list, tuple)):
        raise EshopboxConfigError(
            f"fields must be a comma-separated string or a list of names, got {fields!r}", field="fields"
        )
    names = fields.split(",") if isinstance(fields, str) else list(fields)
    cleaned = [name.strip() for name in names if isinstance(name, str) and name.strip()]
    if len(cleaned) != len(names):
        raise EshopboxConfigError(f"fields must be non-empty strings, got {fields!r}", field="fields")
    for required in api.ORDER_ROW_REQUIRED_FIELDS:
        if required not in cleaned:
            cleaned.append(required)
    return cleaned
