"""Issue 13: destinations checked before the read, stale temporaries, rows that cannot be keyed, odd input."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.exceptions import EshopboxApiError, EshopboxConfigError
from airflow_provider_eshopbox.operators.orders import EshopboxOrdersToStorageOperator
from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from airflow_provider_eshopbox.sync.slicing import WindowReader
from airflow_provider_eshopbox.sync.window import resolve_window
from tests.dagtest import run_dag

from .conftest import read_jsonl

UTC = timezone.utc
DAY = {
    "data_interval_start": datetime(2026, 11, 2, tzinfo=UTC),
    "data_interval_end": datetime(2026, 11, 3, tzinfo=UTC),
}


def _resync(destination: str, start: datetime, end: datetime, capfd: Any = None) -> Any:
    conf = {"start": start.isoformat(), "end": end.isoformat(), "destination": destination}
    return run_dag("eshopbox_orders_resync", capfd, run_conf=conf)


# --- destinations: every problem is found before the first request --------------------------------
def test_an_existing_directory_as_destination_fails_before_the_read(
    sandbox: EshopboxSandbox, output_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    directory = output_dir / "orders"
    directory.mkdir(parents=True)
    sandbox.reset_stats()

    result = _resync(f"file://{directory}", *DAY.values(), capfd)

    assert result.task_states == {"resync_orders": "failed"}
    assert "is an existing directory" in result.log
    assert sandbox.stats()["requests"] == 0
    assert list(directory.iterdir()) == []  # no hidden file landed inside it


def _staged(tmp_path: Path, case: str) -> str:
    """A destination URL with one problem that only the local filesystem shows."""
    if case == "parent is a file":
        (tmp_path / "afile").write_text("x")
        return f"file://{tmp_path}/afile/orders.jsonl"
    if case == "grandparent is a file":
        (tmp_path / "afile").write_text("x")
        return f"file://{tmp_path}/afile/sub/orders.jsonl"
    if case == "unwritable (even for root)":
        return "file:///sys/eshopbox-test/orders.jsonl"
    if case == "name too long with the temporary suffix":
        return f"file://{tmp_path}/{'o' * 230}.jsonl"  # 236 bytes: fine alone, not as .<name>.tmp-<32 hex>
    assert case == "relative file:// URL"
    return "file://data/orders.jsonl"  # host "data", not the directory data/


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("parent is a file", r"parent .*/afile is a file, not a directory"),
        ("grandparent is a file", r"parent .*/afile is a file, not a directory"),
        ("unwritable (even for root)", r"cannot be written here: .*Operation not permitted"),
        ("name too long with the temporary suffix", r"name is too long: .* 274 bytes, over the 255"),
        ("relative file:// URL", r"file://data/orders.jsonl.* names host 'data'.*file:///"),
    ],
)
def test_destination_problems_are_named_before_any_request(
    sandbox: EshopboxSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)  # where a relative path would land
    destination = _staged(tmp_path, case)
    before = sorted(tmp_path.rglob("*"))
    sandbox.reset_stats()
    operator = EshopboxOrdersToStorageOperator(task_id="o", destination=destination)

    with pytest.raises(EshopboxConfigError, match=message):
        operator.execute(DAY)  # type: ignore[arg-type]

    assert sandbox.stats()["requests"] == 0
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, no directory left behind


# --- temporaries: a killed write leaves one; the next run removes it once it is stale --------------
def test_a_killed_write_never_shows_at_the_destination_and_the_next_run_removes_its_temporary(
    sandbox: EshopboxSandbox, output_dir: Path
) -> None:
    destination = output_dir / "orders.jsonl.gz"
    output_dir.mkdir(parents=True)
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal\n"
            "from airflow.sdk import ObjectStoragePath\n"
            "from airflow_provider_eshopbox.sync.destination import atomic_open\n"
            f"with atomic_open(ObjectStoragePath('file://{destination}')) as out:\n"
            "    out.write(os.urandom(1 << 20)); out.flush()\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n",
        ],
        check=False,
    )
    assert killed.returncode == -9
    assert not destination.exists()
    (stale,) = output_dir.glob(".orders.jsonl.gz.tmp-*")
    assert stale.stat().st_size > 0  # a partial file, for ever unless someone removes it
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    fresh = output_dir / ".orders.jsonl.gz.tmp-0123456789abcdef0123456789abcdef"  # a concurrent writer's
    fresh.write_bytes(b"in progress")
    other = output_dir / ".other.jsonl.tmp-0123456789abcdef0123456789abcdef"  # another destination's
    other.write_bytes(b"not ours")
    os.utime(other, (two_hours_ago, two_hours_ago))

    start, end = datetime(2026, 11, 3, 12, tzinfo=UTC), datetime(2026, 11, 3, 13, tzinfo=UTC)
    assert _resync(f"file://{destination}", start, end).state == "success"

    assert {row["orderItemID"] for row in read_jsonl(destination)} == sandbox.truth_order_item_ids(start, end)
    assert sorted(p.name for p in output_dir.iterdir()) == sorted([destination.name, fresh.name, other.name])


# --- rows the sync cannot key fail the task, naming the row; nothing is written --------------------
@pytest.fixture
def own_sandbox(airflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EshopboxSandbox]:
    """A sandbox this test may damage."""
    with EshopboxSandbox(order_items=3000, seed=5) as sb:
        monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sb.connection_json())
        yield sb


def test_rows_with_a_null_order_item_id_fail_the_sync_and_nothing_is_written(
    own_sandbox: EshopboxSandbox, output_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    sb = own_sandbox
    rows = sorted(sb.truth_order_rows(), key=lambda row: row["updatedAt"])
    # A window of 424 rows, 30 of them with orderItemID null (as in the issue: 30 rows were lost).
    window = rows[1000:1424]
    start, end = window[0]["updatedAt"], window[-1]["updatedAt"] + 1
    assert len(sb.truth_order_item_ids(start, end)) == 424
    damaged = window[::14][:30]
    for row in damaged:
        sb.update_order_rows(row["orderItemID"], updated_at=row["updatedAt"], orderItemID=None)
    destination = output_dir / "orders.jsonl"

    result = _resync(
        f"file://{destination}",
        datetime.fromtimestamp(start / 1000, UTC),
        datetime.fromtimestamp(end / 1000, UTC),
        capfd,
    )

    assert result.task_states == {"resync_orders": "failed"}
    assert "EshopboxApiError" in result.log
    assert "orderItemID is null" in result.log
    assert "nothing was written" in result.log
    assert any(f"objectID '{row['objectID']}'" in result.log for row in damaged)
    assert "of updatedAt in [" in result.log  # the slice it came in
    assert not output_dir.exists() or list(output_dir.iterdir()) == []


def _page(hits: list[Any]) -> Any:
    from airflow_provider_eshopbox.hooks.eshopbox import parse_orders_page
    from airflow_provider_eshopbox.hooks.rawjson import loads_leaving_items

    body = json.dumps({"hits": hits, "hasNext": False}).encode()
    return parse_orders_page(loads_leaving_items(body, "hits"), 3, 100)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"orderItemID": None}, "orderItemID is null"),
        ({"orderItemID": ""}, "orderItemID is an empty string"),
        ({"orderItemID": True}, "orderItemID is a bool"),
        ({"orderItemID": 1.5}, "orderItemID is the number 1.5"),
        ({"orderItemID": {"id": 1}}, "orderItemID is an object"),
        ({"orderItemID": "DROP"}, "orderItemID is missing"),
        ({"updatedAt": None}, "updatedAt is null"),
        ({"updatedAt": "DROP"}, "updatedAt is missing"),
        ({"updatedAt": "1793700000000"}, "updatedAt is a string"),
        ({"updatedAt": 1793700000000.5}, "updatedAt is the number 1793700000000.5"),
        ({"updatedAt": False}, "updatedAt is a bool"),
    ],
)
def test_a_row_that_cannot_be_keyed_is_named_never_merged_or_dropped(
    bad: dict[str, Any], message: str
) -> None:
    from airflow_provider_eshopbox.operators.orders import _rows

    good = {"objectID": "o-1", "orderItemID": "1-1", "updatedAt": 1793700000000}
    odd = {"objectID": "o-2", "orderItemID": "1-2", "updatedAt": 1793700000001, **bad}
    odd = {key: value for key, value in odd.items() if value != "DROP"}
    with pytest.raises(EshopboxApiError) as raised:
        _rows(_page([good, odd]))
    text = str(raised.value)
    assert message in text
    assert "hit 1 (objectID 'o-2') of page 3" in text
    assert "nothing was written" in text


def test_integer_ids_are_keyed_as_strings() -> None:
    from airflow_provider_eshopbox.operators.orders import _rows

    assert [row[:2] for row in _rows(_page([{"orderItemID": 7, "updatedAt": 5}]))] == [("7", 5)]


# --- odd replies and arguments: Eshopbox errors that name the reply or the argument ---------------
@pytest.mark.parametrize("empty_page", [1, 2], ids=["first page", "a later slice"])
def test_a_page_that_says_more_but_holds_nothing_is_named(empty_page: int) -> None:
    calls = 0

    async def fetch(start: int, end: int, page: int) -> tuple[list[Any], bool]:
        nonlocal calls
        calls += 1
        if calls == empty_page:
            return [], True
        return [(str(i), start + i % (end - start)) for i in range(100)], True

    reader = WindowReader(
        fetch,
        timestamp=lambda row: row[1],
        row_id=lambda row: row[0],
        per_page=100,
        hit_cap=1000,
        max_concurrency=1,
        on_rows=lambda rows: None,
    )
    with pytest.raises(EshopboxApiError, match=r"hasNext true but no hits .*updatedAt in \["):
        asyncio.run(reader.read(0, 10_000_000))


@pytest.mark.parametrize(
    ("start", "end", "lookback", "message"),
    [
        ("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", 10**12, "lookback=1000000000000 reaches before"),
        ("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", 1e20, "lookback=1e\\+20 is too large"),
        ("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", 10**400, "lookback=1000.* is too large"),
        ("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", float("nan"), "lookback must be a finite number"),
        ("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", timedelta(days=999_999), "reaches before"),
        ("0001-01-01T00:00:00+01:00", "2026-11-02T00:00:00Z", None, r"start='0001-01-01.*' is out of range"),
        ("1969-12-31T00:00:00Z", "2026-11-02T00:00:00Z", None, "before 1970-01-01"),
        ("2026-11-01T00:00:00.000100Z", "2026-11-01T00:00:00.000900Z", None, "holds no whole millisecond"),
    ],
    ids=["lookback 1e12 s", "lookback 1e20 s", "lookback 10**400 s", "lookback nan", "lookback 999999 days",
         "start year 0 in UTC", "start 1969", "sub-millisecond window"],
)  # fmt: skip
def test_odd_windows_are_config_errors_naming_the_argument(
    start: str, end: str, lookback: Any, message: str
) -> None:
    with pytest.raises(EshopboxConfigError, match=message):
        resolve_window(start, end, lookback, {})


def test_fields_of_the_wrong_type_name_the_argument() -> None:
    from airflow_provider_eshopbox.operators.orders import _resolve_fields

    with pytest.raises(EshopboxConfigError, match="fields must be a comma-separated string or a list"):
        _resolve_fields(5)  # type: ignore[arg-type]


def test_window_milliseconds_are_exactly_those_updatedAt_can_hold() -> None:
    # [00:00:00.0005, 00:00:00.0015) holds the instant 00:00:00.001 and no other whole millisecond.
    window = resolve_window("2026-11-01T00:00:00.000500Z", "2026-11-01T00:00:00.001500Z", None, {})
    base = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()) * 1000
    assert (window.start_ms, window.end_ms) == (base + 1, base + 2)
    assert api.orders_window_filter(window.start_ms, window.end_ms) == (
        f"(updatedAt >= {base + 1} AND updatedAt < {base + 2})"
    )
