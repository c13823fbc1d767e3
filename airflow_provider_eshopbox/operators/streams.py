"""Land the shipments, returns and product catalogue streams (JSONL or Parquet), exactly and atomically.

One operator over the stream catalogue (``sync/streams.py``), and one named subclass per stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_eshopbox.lineage import EshopboxLineageMixin
from airflow_provider_eshopbox.sync.stopping import EshopboxStopOnKillMixin

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_eshopbox.sync.formats import Output


class EshopboxStreamToStorageOperator(EshopboxStopOnKillMixin, EshopboxLineageMixin, BaseOperator):
    """Write one Eshopbox stream to ``destination``: ``shipments``, ``returns`` or ``products``.

    ``shipments`` and ``returns``: every row whose ``updated_at`` lies in ``[start, end)`` (default:
    the data interval widened by ``lookback``). Neither list can be filtered by update time
    (``api.py``), so the whole list is paged (an id-ordered list whose rows keep their places, so
    offset paging is exact; checked on every read, re-read if rows left it) and filtered locally.
    Cost: one request per ``api.LIST_PER_PAGE_MAX`` rows of the WHOLE list, whatever the window.
    Shipments also get their tracking (``tracking`` column), ``api.TRACKING_IDS_MAX`` AWBs per request.
    Contract, for a window that is over: every row whose ``updated_at`` was in the window at the start
    and that did not change during the read is written exactly once; a row that changed during the
    read is written with its values from before the change, or is absent (its new ``updated_at`` lies
    after ``end``: the next window covers it); nothing else.

    ``products``: the whole catalogue, each product once, with its values as of when its page was read.

    ``keys``: instead of a window, exactly these rows: returns by ``customerReturnNumber`` (one GET
    each, the documented WMS "Get a Return": its rows lack the list's ``id`` and ``updated_at``), products
    by SKU (``api.PRODUCTS_IDS_MAX`` per request), written in key order. A key that does not exist fails.

    Rows are de-duplicated on the stream's identity, sorted (``schemas.py``: file order) and written
    atomically; a re-run over the same data writes the same bytes. JSON Lines are the rows as the API
    sent them, unless ``fields`` keeps fewer columns or the operator adds ``tracking``; Parquet has the
    stream's declared column types (``schemas.py``, ``sync/formats.py``).

    :param stream: ``shipments``, ``returns`` or ``products`` (fixed by the named subclasses). Templated.
    :param destination: object-storage URL or ``ObjectStoragePath`` (``.jsonl``, ``.jsonl.gz`` or
        ``.parquet``). Templated.
    :param format: ``jsonl`` or ``parquet`` (extra ``[parquet]``); default: ``parquet`` for a
        ``.parquet`` destination, else ``jsonl``. Templated.
    :param start: window start, ISO-8601 or datetime; default ``data_interval_start``. Templated.
    :param end: window end (exclusive); default ``data_interval_end``. Templated.
    :param lookback: extra time before ``start`` (timedelta or seconds).
    :param fields: columns to keep, validated against the stream's schema (identity always kept). Templated.
    :param keys: return numbers or SKUs to land instead of a window or snapshot. Templated.
    :param max_concurrency: requests in flight at once.
    :param eshopbox_conn_id: the Eshopbox connection. Templated (e.g. ``"{{ params.conn_id }}"``).
    """

    template_fields: Sequence[str] = (
        "stream",
        "destination",
        "format",
        "start",
        "end",
        "fields",
        "keys",
        "eshopbox_conn_id",
    )
    ui_color = "#fff4e8"
    stream: str = ""

    def __init__(
        self,
        *,
        destination: str | ObjectStoragePath,
        format: str | None = None,
        stream: str | None = None,
        start: Any = None,
        end: Any = None,
        lookback: timedelta | float | None = None,
        fields: Sequence[str] | str | None = None,
        keys: Sequence[str] | str | None = None,
        max_concurrency: int = 8,
        eshopbox_conn_id: str = "eshopbox_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.stream = stream or type(self).stream
        self.destination = destination
        self.format = format
        self.start = start
        self.end = end
        self.lookback = lookback
        self.fields = fields
        self.keys = keys
        self.max_concurrency = max_concurrency
        self.eshopbox_conn_id = eshopbox_conn_id

    @property
    def lineage_stream(self) -> str:
        return self.stream

    def execute(self, context: Context) -> dict[str, Any]:
        import asyncio
        import time

        from airflow_provider_eshopbox.exceptions import EshopboxConfigError
        from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
        from airflow_provider_eshopbox.schemas import resolve_fields, schema_of
        from airflow_provider_eshopbox.sync.arguments import check_max_concurrency
        from airflow_provider_eshopbox.sync.formats import resolve_output
        from airflow_provider_eshopbox.sync.outlets import attach_to_outlet_events
        from airflow_provider_eshopbox.sync.streams import STREAMS
        from airflow_provider_eshopbox.sync.window import resolve_window

        # Everything local is checked before the first request.
        stream = STREAMS.get(self.stream)
        if stream is None:
            raise EshopboxConfigError(
                f"stream must be one of {', '.join(STREAMS)}, got {self.stream!r}", field="stream"
            )
        schema = schema_of(stream.name)
        fields = resolve_fields(stream.name, self.fields)
        keys = _resolve_keys(self.keys)
        if keys and stream.get_one is None and stream.ids_param is None:
            raise EshopboxConfigError(
                f"keys= is not supported by the {stream.name} stream (only returns and products)",
                field="keys",
            )
        window = None
        if stream.time_field is not None and not keys:
            window = resolve_window(self.start, self.end, self.lookback, context)
        check_max_concurrency(self.max_concurrency)
        output = resolve_output(self.destination, self.format, stream.name)
        hook = EshopboxHook(eshopbox_conn_id=self.eshopbox_conn_id)
        self.lineage_workspace = hook.get_config().workspace
        if keys:
            what = f"{len(keys)} keys"
        elif window is not None:
            what = f"updated in [{window.start.isoformat()}, {window.end.isoformat()})"
        else:
            what = "snapshot"
        self.log.info("Landing %s (%s) to %s", stream.name, what, output.destination)
        started = time.monotonic()
        counts = asyncio.run(self._read_and_write(hook, stream, window, keys, fields, output))
        manifest: dict[str, Any] = {
            **output.manifest(counts["rows"]),
            "stream": stream.name,
            **(window.as_manifest() if window is not None else {}),
            **({"keys": len(keys)} if keys else {}),
            **{k: v for k, v in counts.items() if k != "rows"},
            "seconds": round(time.monotonic() - started, 3),
        }
        self.log.info(
            "Wrote %d %s rows to %s (%d requests; file order %s)",
            counts["rows"],
            stream.name,
            output.destination,
            counts["requests"],
            schema.order,
        )
        attach_to_outlet_events(self, context, manifest)
        return manifest

    async def _read_and_write(
        self,
        hook: Any,
        stream: Any,
        window: Any,
        keys: list[str],
        fields: list[str] | None,
        output: Output,
    ) -> dict[str, int]:
        """Read the rows, add tracking, then spool, sort and write them; returns the counts."""
        import json
        import operator

        from airflow_provider_eshopbox import api
        from airflow_provider_eshopbox.exceptions import EshopboxApiError, EshopboxContractError
        from airflow_provider_eshopbox.sync.storage import RowSpool
        from airflow_provider_eshopbox.sync.streams import read_by_keys, read_list, read_tracking

        counts = {"rows": 0, "requests": 0}
        parse = stream.time_parser

        def stamp(row: dict[str, Any]) -> int:
            try:
                if parse is None:
                    return 0
                ms = parse(row.get(stream.time_field))
                api.check_server_clock(row.get(stream.time_field), ms, hook.server_now_ms())
                return ms
            except ValueError as problem:
                raise EshopboxContractError(
                    stream.endpoint.label,
                    stream.time_assumption,
                    f"{stream.name} {stream.key_field}={row.get(stream.key_field)!r}: {stream.time_field} "
                    f"{problem}, so the row cannot be placed in a window",
                ) from None

        def keep(row: dict[str, Any]) -> bool:
            return window is None or window.start_ms <= stamp(row) < window.end_ms

        try:
            if keys:
                pairs, counts["requests"] = await read_by_keys(hook, stream, keys, self.max_concurrency)
            else:
                listed = await read_list(
                    hook, stream, keep=keep, max_concurrency=self.max_concurrency, log=self.log
                )
                pairs = listed.rows
                counts.update(requests=listed.requests, listed=listed.listed, passes=listed.passes)
            if stream.tracking:  # the row gains a column, so its line is encoded afresh (b"")
                awb = api.SHIPMENT_TRACKING_FIELD
                ids = [str(r[awb]) for r, _ in pairs if r.get(awb)]
                details, requests = await read_tracking(hook, ids, self.max_concurrency)
                counts.update(tracking_requests=requests, tracked=len(details))
                counts["requests"] += requests
                pairs = [({**r, "tracking": details.get(str(r.get(awb)))}, b"") for r, _ in pairs]
        finally:
            await hook.aclose()

        encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        spool = RowSpool(
            key=operator.itemgetter(0), version=operator.itemgetter(2), sort_key=operator.itemgetter(1)
        )
        with spool:
            batch = []
            for seq, (row, text) in enumerate(pairs):
                identity = row.get(stream.key_field)
                if identity is None or identity == "":
                    raise EshopboxApiError(
                        200, stream.endpoint.label, f"a {stream.name} row has no {stream.key_field}"
                    )
                # a row got by key has no list position or window time (api.RETURN_LIST_ONLY_FIELDS)
                place = (0, str(identity)) if keys else (stamp(row), row.get(stream.order_field))
                line = text
                if fields is not None:
                    line = encode({k: row[k] for k in fields if k in row}).encode()
                elif not text:
                    line = encode(row).encode()
                batch.append(((str(identity), place, seq), line))
            spool.extend(batch)
            # In this thread, not a worker's: on_kill's SIGTERM interrupts this thread, and nothing else
            # runs on the loop any more.
            counts["rows"] = spool.write_to(output.destination, output.writer)
        return counts


def _resolve_keys(keys: Sequence[str] | str | None) -> list[str]:
    """``keys`` as a list of non-empty strings (comma-separated string or list)."""
    from airflow_provider_eshopbox.exceptions import EshopboxConfigError

    if keys is None or keys == "" or keys == []:
        return []
    names = (
        keys.split(",") if isinstance(keys, str) else list(keys) if isinstance(keys, (list, tuple)) else None
    )
    if names is None or not all(isinstance(k, str) and k.strip() for k in names):
        raise EshopboxConfigError(
            f"keys must be a comma-separated string or a list of non-empty strings, got {keys!r}",
            field="keys",
        )
    return [k.strip() for k in names]


class EshopboxShipmentsToStorageOperator(EshopboxStreamToStorageOperator):
    """Shipments updated in the window, with their tracking (see ``EshopboxStreamToStorageOperator``)."""

    stream = "shipments"


class EshopboxReturnsToStorageOperator(EshopboxStreamToStorageOperator):
    """RTOs and customer returns updated in the window, or ``keys`` by customerReturnNumber."""

    stream = "returns"


class EshopboxProductsToStorageOperator(EshopboxStreamToStorageOperator):
    """The product catalogue as a snapshot, or ``keys`` by SKU."""

    stream = "products"
