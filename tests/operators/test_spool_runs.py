"""RowSpool with more index entries than fit one run: sorted runs spilled to disk, then merged."""

from __future__ import annotations

import json
import operator
import random
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.sync.storage import MERGE_FAN_IN, RowSpool


@pytest.mark.parametrize("sort_key", [api.order_row_sort_key, None], ids=["sort_key", "by_version"])
@pytest.mark.parametrize("run_entries", [1, 3, 17, 10_000])
@pytest.mark.parametrize("seed", range(4))
def test_spilled_runs_merge_to_the_newest_version_of_each_row_in_order(
    tmp_path: Path, seed: int, run_entries: int, sort_key: Any
) -> None:
    """No sort key (the orders operator's spool) orders by (version, key): the same as orders' sort key."""
    rng = random.Random(seed)
    truth: dict[str, dict[str, object]] = {}
    pages = []
    for _ in range(40):
        page = []
        for _ in range(rng.randint(1, 30)):
            row = {"orderItemID": f"i{rng.randrange(300)}", "updatedAt": rng.randrange(50), "n": rng.random()}
            page.append(row)
        pages.append(page)
    for page in pages:  # the first of equal versions wins, across and within pages
        for row in page:
            known = truth.get(str(row["orderItemID"]))
            if known is None or int(known["updatedAt"]) < int(row["updatedAt"]):  # type: ignore[call-overload]
                truth[str(row["orderItemID"])] = row
    destination = ObjectStoragePath(f"file://{tmp_path}/rows.jsonl")
    with RowSpool(
        key=api.order_row_id,
        version=api.order_row_updated_at,
        sort_key=sort_key,
        run_entries=run_entries,
    ) as spool:
        for page in pages:
            spool.extend((row, json.dumps(row).encode()) for row in page)
        assert spool.write_to(destination) == len(truth) == len(spool)
        assert spool.superseded == spool.received - len(truth)
        assert spool.disk_bytes >= Path(destination.path).stat().st_size
    written = [json.loads(line) for line in Path(destination.path).read_text().splitlines()]
    assert written == sorted(truth.values(), key=api.order_row_sort_key)


def _warm_spool(tmp_path: Path) -> None:
    """Write one tiny spool first: the modules ``write_to`` imports on first use are then not counted."""
    with RowSpool(
        key=operator.itemgetter(0),
        version=operator.itemgetter(1),
        sort_key=operator.itemgetter(1, 0),
        run_entries=2,
    ) as spool:
        spool.extend([(("a", 1, None), b"{}"), (("b", 1, None), b"{}"), (("c", 1, None), b"{}")])
        spool.write_to(ObjectStoragePath(f"file://{tmp_path}/warm.jsonl"))


def test_index_memory_stays_flat_with_many_rows(tmp_path: Path) -> None:
    """60,000 rows (a fifth of them re-read newer) in 40 runs of 1,500 entries: the spool's own
    Python allocations peak far below one index entry per row (the same rows with the whole index in
    memory, ``run_entries=60_000``, peak at about 23 MB; in runs, about 7 MB)."""
    rows = 60_000
    _warm_spool(tmp_path)
    destination = ObjectStoragePath(f"file://{tmp_path}/rows.jsonl")
    spool = RowSpool(
        key=operator.itemgetter(0),
        version=operator.itemgetter(1),
        sort_key=operator.itemgetter(1, 0),
        run_entries=1_500,
    )
    tracemalloc.start()
    try:
        with spool:
            for start in range(0, rows, 100):
                page = []
                for n in range(start, start + 100):
                    item = f"item-{n % (rows * 4 // 5):08d}"
                    page.append(((item, n, None), f'{{"id":"{item}","t":{n}}}'.encode()))
                spool.extend(page)
            _, peak_read = tracemalloc.get_traced_memory()
            assert spool.write_to(destination) == rows * 4 // 5
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000, f"peak {peak / 1e6:.1f} MB while reading {peak_read / 1e6:.1f} MB"
    with Path(destination.path).open() as fh:
        first = json.loads(fh.readline())
    assert first == {"id": "item-00012000", "t": 12000}  # rows 0-11,999 were superseded


def _merge_peak(tmp_path: Path, runs: int, run_entries: int = 2_000) -> int:
    """Peak of the spool's Python allocations while ``write_to`` merges ``runs`` runs of distinct rows."""
    destination = ObjectStoragePath(f"file://{tmp_path}/rows-{runs}.jsonl")
    spool = RowSpool(
        key=operator.itemgetter(0),
        version=operator.itemgetter(1),
        sort_key=operator.itemgetter(1, 0),
        run_entries=run_entries,
    )
    rng = random.Random(runs)
    line = b'{"pad":"' + b"x" * 200 + b'"}'  # a row's size: write_to gathers 1 MB of lines per write
    with spool:
        for _ in range(runs):
            page = [
                ((f"item-{rng.randrange(10**9):09d}", rng.randrange(10**6), None), line)
                for _ in range(run_entries)
            ]
            spool.extend(page)
        tracemalloc.start()
        try:
            spool.write_to(destination)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return peak


def test_merge_memory_does_not_grow_with_the_number_of_runs(tmp_path: Path) -> None:
    """Four times MERGE_FAN_IN runs merge in the memory of MERGE_FAN_IN: the extra runs are merged
    on disk first (issue 23: 76 runs merged at once cost about 20 MB more at 5M rows)."""
    few, many = _merge_peak(tmp_path, MERGE_FAN_IN, 500), _merge_peak(tmp_path, 4 * MERGE_FAN_IN, 500)
    assert many < few * 1.3, (
        f"{4 * MERGE_FAN_IN} runs peaked at {many / 1e6:.1f} MB, {MERGE_FAN_IN} at {few / 1e6:.1f} MB"
    )


def test_a_row_too_long_for_its_place_is_refused_not_corrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line's length shares one int with its offset: one too long for its bits (4 GiB; 255 bytes
    here) fails naming the row, and nothing of its page is kept."""
    from airflow_provider_eshopbox.sync import storage

    monkeypatch.setattr(storage, "_LENGTH_BITS", 8)
    with RowSpool(key=operator.itemgetter(0), version=operator.itemgetter(1)) as spool:
        spool.extend([(("short", 1), b'{"a":1}')])
        with pytest.raises(ValueError, match=r"a row of 301 bytes is too long to spool \(key 'long'\)"):
            spool.extend([(("fine", 1), b'{"b":2}'), (("long", 1), b'{"x":"' + b"x" * 292 + b'"}')])
        assert spool.write_to(ObjectStoragePath(f"file://{tmp_path}/rows.jsonl")) == 1
    assert Path(tmp_path / "rows.jsonl").read_bytes() == b'{"a":1}\n'
