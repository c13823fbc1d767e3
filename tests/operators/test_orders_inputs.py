"""Local checks of the orders sync: window, destination, fields, atomic writes, de-duplication."""

from __future__ import annotations

import gzip
import json
import random
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pendulum
import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.exceptions import EshopboxConfigError
from airflow_provider_eshopbox.operators.orders import _resolve_fields
from airflow_provider_eshopbox.sync.destination import atomic_open, resolve_destination
from airflow_provider_eshopbox.sync.slicing import paced_workers
from airflow_provider_eshopbox.sync.storage import RowSpool
from airflow_provider_eshopbox.sync.window import resolve_window

UTC = timezone.utc
MIDNIGHT = pendulum.datetime(2026, 11, 3)
ZERO_LENGTH_INTERVAL = {"data_interval_start": MIDNIGHT, "data_interval_end": MIDNIGHT}


def test_window_defaults_to_the_data_interval_widened_by_lookback() -> None:
    context = {
        "data_interval_start": pendulum.datetime(2026, 11, 3, 12),
        "data_interval_end": pendulum.datetime(2026, 11, 3, 13),
    }
    window = resolve_window(None, None, timedelta(minutes=15), context)
    assert (window.start, window.end) == (
        datetime(2026, 11, 3, 11, 45, tzinfo=UTC),
        datetime(2026, 11, 3, 13, tzinfo=UTC),
    )
    assert (window.start_ms, window.end_ms) == (1793706300000, 1793710800000)


def test_explicit_iso_strings_win_and_naive_means_utc() -> None:
    window = resolve_window("2026-11-01T05:30:00+05:30", "2026-11-02T00:00:00", None, {})
    assert window.start == datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    assert window.end == datetime(2026, 11, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "lookback", "context", "message"),
    [
        (None, None, None, ZERO_LENGTH_INTERVAL, "CronDataIntervalTimetable"),
        ("2026-11-03T00:00:00Z", "2026-11-02T00:00:00Z", None, {}, "is after end"),
        (None, None, None, {"data_interval_start": None, "data_interval_end": None}, "no data interval"),
        ("last tuesday", "2026-11-02T00:00:00Z", None, {}, "start='last tuesday' is not an ISO-8601"),
        ("2026-11-01T00:00:00Z", 12, None, {}, "end must be an ISO-8601 string"),
        ("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", -5, {}, "lookback must not be negative"),
        ("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "1h", {}, "lookback must be a timedelta or seconds"),
    ],
)  # fmt: skip
def test_bad_windows_say_what_to_change(start, end, lookback, context, message) -> None:
    with pytest.raises(EshopboxConfigError, match=message):
        resolve_window(start, end, lookback, context)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/data/orders.jsonl", "has no scheme"),
        ("nosuch://bucket/orders.jsonl", "no filesystem is registered for scheme 'nosuch'"),
        ("file:///data/orders/", "must name a file"),
        ("", "must be an object-storage URL"),
        (None, "must be an object-storage URL"),
    ],
)
def test_bad_destinations_are_rejected_with_the_reason(value: object, message: str) -> None:
    with pytest.raises(EshopboxConfigError, match=message):
        resolve_destination(value)


def test_fields_always_carry_what_slicing_and_dedup_need() -> None:
    assert _resolve_fields(None) is None
    assert _resolve_fields("orderStatus, customerDetails.shippingCity") == [
        "orderStatus",
        "customerDetails.shippingCity",
        *api.ORDER_ROW_REQUIRED_FIELDS,
    ]
    with pytest.raises(EshopboxConfigError, match="fields must be non-empty strings"):
        _resolve_fields(["orderStatus", ""])


def test_a_failed_write_leaves_nothing_at_the_destination(tmp_path: Path) -> None:
    destination = ObjectStoragePath(f"file://{tmp_path}/out/orders.jsonl.gz")
    with pytest.raises(RuntimeError), atomic_open(destination) as out:
        out.write(b'{"a": 1}\n')
        raise RuntimeError("killed half-way")
    assert not Path(destination.path).exists()
    assert list(Path(destination.path).parent.iterdir()) == []


def test_spool_keeps_the_newest_version_and_writes_sorted_deterministic_gzip(tmp_path: Path) -> None:
    rows = [
        {"orderItemID": "b", "updatedAt": 5, "v": "old"},
        {"orderItemID": "a", "updatedAt": 7, "v": "only"},
        {"orderItemID": "b", "updatedAt": 9, "v": "new"},
        {"orderItemID": "b", "updatedAt": 6, "v": "stale, arrives late"},
    ]
    outputs = []
    for name in ("one", "two"):
        destination = ObjectStoragePath(f"file://{tmp_path}/{name}.jsonl.gz")
        with RowSpool(
            key=api.order_row_id, version=api.order_row_updated_at, sort_key=api.order_row_sort_key
        ) as spool:
            for row in rows:
                spool.add(row)
            assert spool.write_to(destination) == 2
        outputs.append(Path(destination.path).read_bytes())
    assert outputs[0] == outputs[1]
    # One standard member; no time or file name in the header (a re-run writes the same bytes).
    assert outputs[0][:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    reader = zlib.decompressobj(zlib.MAX_WBITS | 16)
    reader.decompress(outputs[0])
    assert reader.eof and reader.unused_data == b""
    lines = [json.loads(line) for line in gzip.decompress(outputs[0]).splitlines()]
    assert lines == [
        {"orderItemID": "a", "updatedAt": 7, "v": "only"},
        {"orderItemID": "b", "updatedAt": 9, "v": "new"},
    ]


def test_a_batch_that_fails_half_way_leaves_the_spool_as_it_was(tmp_path: Path) -> None:
    destination = ObjectStoragePath(f"file://{tmp_path}/rows.jsonl")
    with RowSpool(
        key=api.order_row_id, version=api.order_row_updated_at, sort_key=api.order_row_sort_key
    ) as spool:
        spool.extend([({"orderItemID": "a", "updatedAt": 1}, None)])
        with pytest.raises(ValueError, match="orderItemID is missing"):
            spool.extend([({"orderItemID": "b", "updatedAt": 2}, None), ({"updatedAt": 3}, None)])
        spool.extend([({"orderItemID": "c", "updatedAt": 4}, b'{"orderItemID": "c", "updatedAt": 4}')])
        assert spool.write_to(destination) == 2
    assert Path(destination.path).read_text().splitlines() == [
        '{"orderItemID":"a","updatedAt":1}',
        '{"orderItemID": "c", "updatedAt": 4}',
    ]


@pytest.mark.parametrize("seed", range(6))
def test_spooled_pages_in_any_order_and_overlap_come_out_sorted_newest_only(
    tmp_path: Path, seed: int
) -> None:
    """Rows are read back a page-run at a time; pages that overlap in time, or hold rows far apart,
    and newer versions arriving in later pages must not change what is written."""
    rng = random.Random(seed)
    pages: list[list[dict[str, object]]] = []
    truth: dict[str, dict[str, object]] = {}
    for page in range(30):
        base = rng.choice([page * 100, rng.randrange(3000)])  # mostly time-local, some overlapping
        rows = []
        for _ in range(rng.randint(1, 40)):
            row = {
                "orderItemID": f"i{rng.randrange(400)}",
                "updatedAt": base + rng.randrange(100 if rng.random() < 0.9 else 5000),
                "pad": "x" * rng.randrange(300),
            }
            rows.append(row)
        pages.append(rows)
    rng.shuffle(pages)
    for rows in pages:
        for row in rows:
            known = truth.get(str(row["orderItemID"]))
            if known is None or int(known["updatedAt"]) < int(row["updatedAt"]):  # type: ignore[call-overload]
                truth[str(row["orderItemID"])] = row
    destination = ObjectStoragePath(f"file://{tmp_path}/rows.jsonl")
    with RowSpool(
        key=api.order_row_id, version=api.order_row_updated_at, sort_key=api.order_row_sort_key
    ) as spool:
        for rows in pages:
            spool.extend((row, json.dumps(row).encode()) for row in rows)
        assert spool.write_to(destination) == len(truth)
    written = [json.loads(line) for line in Path(destination.path).read_text().splitlines()]
    assert written == sorted(truth.values(), key=api.order_row_sort_key)


def test_rows_are_read_from_row_keys_and_texts_without_decoding_or_else_from_the_hits() -> None:
    from airflow_provider_eshopbox.exceptions import EshopboxApiError
    from airflow_provider_eshopbox.hooks.eshopbox import parse_orders_page
    from airflow_provider_eshopbox.hooks.rawjson import loads_leaving_items
    from airflow_provider_eshopbox.operators.orders import _rows

    first = b'{"orderItemID": "1-1", "updatedAt": 5, "n": {"a": [1]}}'
    second = b'{"orderItemID": 2, "updatedAt": 6}'
    plain = b'{"hits": [' + first + b", " + second + b'], "hasNext": false}'
    page = parse_orders_page(loads_leaving_items(plain, "hits"), 1, 100)
    assert page.row_keys == [("1-1", 5), ("2", 6)]
    assert page._hits is None  # nothing decoded for the sync...
    assert _rows(page) == [("1-1", 5, first), ("2", 6, second)]
    assert page.hits == json.loads(plain)["hits"]  # ...until someone asks

    # A row over two lines: its line is re-encoded from the decoded hit.
    odd = b'{"hits": [{"orderItemID": "1-1", "updatedAt": 5}, '
    odd += b'{"orderItemID": "1-2",\n "updatedAt": 6}], "hasNext": 1}'
    with pytest.raises(EshopboxApiError, match="'hasNext' is not a bool"):
        parse_orders_page(loads_leaving_items(odd, "hits"), 1, 100)
    page = parse_orders_page(
        loads_leaving_items(odd.replace(b'"hasNext": 1', b'"hasNext": true'), "hits"), 1, 100
    )
    assert _rows(page) == [
        ("1-1", 5, b'{"orderItemID": "1-1", "updatedAt": 5}'),
        ("1-2", 6, b'{"orderItemID":"1-2","updatedAt":6}'),
    ]

    not_objects = b'{"hits": [{"orderItemID": "1", "updatedAt": 1}, [1]], "hasNext": false}'
    with pytest.raises(EshopboxApiError, match="hit 1 is not an object"):
        parse_orders_page(loads_leaving_items(not_objects, "hits"), 1, 100)


@pytest.mark.parametrize(
    ("max_workers", "rate", "round_trip", "workers"),
    [
        (16, 10.0, 0.06, 1),  # 50 ms away, 10/s: one slice at a time keeps the limiter busy
        (16, 20.0, 0.06, 2),
        (16, 5.0, 0.06, 1),
        (16, 10.0, 0.3, 3),  # 300 ms away: three in flight, or the limiter idles
        (16, 1e3, 0.06, 16),  # never more than max_concurrency
        (2, 50.0, 0.3, 2),
        (16, 10.0, 0.0, 1),  # never fewer than one
    ],
)
def test_a_told_rate_limit_reads_as_few_slices_at_once_as_keep_it_busy(
    max_workers: int, rate: float, round_trip: float, workers: int
) -> None:
    assert paced_workers(max_workers, rate, round_trip) == workers
