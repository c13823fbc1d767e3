"""Issue 13, defect 1: stock that changes while the inventory is being read (dag.test, sandbox over HTTP).

The sandbox fault ``inventory_updates_while_paging`` changes a few ESINs of the listing's result
before each page is served (sellable + 1, updatedOn = now). Ground truth is taken before the run,
the ESINs that changed during it are found afterwards from their stamps, and the output is held to
the operator's contract:

* ``changed`` (a window that is over): every ESIN of the window that did not change during the
  read is written exactly once with its values at the start; an ESIN that changed is written with
  its values from before the change or is absent (its updatedOn moved past the window); nothing else.
* ``snapshot``: every ESIN exactly once; unchanged ESINs with their values at the start, changed
  ones with their values before or after the change.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from airflow_provider_eshopbox.sandbox.clock import SandboxClock
from tests.dagtest import run_dag

BUCKETS = ("sellable", "nonSellable", "inwardInProcess", "outwardInProcess")
DAG_ID = "eshopbox_inventory_snapshot"
UTC = timezone.utc
# The seeded stock's updatedOn stamps all lie in the sandbox's default week (2026-11-01, 7 days).
SEED_WINDOW = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 15, tzinfo=UTC))
PER_PAGE_CHANGES = 2


class _FrozenSource:
    """A sandbox time source that moves only when told: bursts share one second for sure."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sb(airflow_db, monkeypatch, output_dir) -> Iterator[EshopboxSandbox]:
    # 300 ESINs: twelve full pages and a short one, so offset paging has many page boundaries.
    # The clock stands a day back and still: every stamp the test makes is in the past and settled.
    clock = SandboxClock(_FrozenSource(float(int(time.time()) - 86_400)))
    with EshopboxSandbox(orders=10, products=300, seed=23, clock=clock) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sandbox.connection_json())
        yield sandbox


def _rows(url: str) -> list[tuple]:
    with gzip.open(Path(url.removeprefix("file://")), "rt") as handle:
        rows = [json.loads(line) for line in handle]
    return [(r["esin"], r["sku"], r["warehouse"], *(r[b] for b in BUCKETS)) for r in rows]


def _table(sb: EshopboxSandbox) -> tuple[dict[str, set[tuple]], dict[str, int]]:
    """Stock rows by ESIN and each ESIN's updatedOn, now."""
    by_esin: dict[str, set[tuple]] = {}
    stamps: dict[str, int] = {}
    for r in sb.inventory_rows():
        by_esin.setdefault(r["esin"], set()).add(
            (r["esin"], r["sku"], r["warehouse"], *(r[b] for b in BUCKETS))
        )
        stamps[r["esin"]] = r["updatedOn"]
    return by_esin, stamps


def _run_changed(sb: EshopboxSandbox, start: datetime, end: datetime) -> dict[str, Any]:
    result = run_dag(DAG_ID, run_conf={"mode": "changed", "start": start.isoformat(), "end": end.isoformat()})
    assert result.state == "success", result.task_states
    return result.returns["snapshot_inventory"]


def _assert_changed_contract(sb: EshopboxSandbox, start: datetime, end: datetime) -> tuple[set[str], int]:
    """Run ``changed`` over [start, end) under the fault; assert the contract; (changed ESINs, requests)."""
    truth = sb.esins_updated_between(start, end)
    before, stamps_before = _table(sb)
    sb.faults.configure(inventory_updates_while_paging=PER_PAGE_CHANGES)
    try:
        manifest = _run_changed(sb, start, end)
    finally:
        sb.faults.clear()
    _after, stamps_after = _table(sb)
    changed = {e for e in stamps_before if stamps_after[e] != stamps_before[e]}
    assert changed & truth, "the fault changed no ESIN of the window: the test proves nothing"
    assert all(stamps_after[e] >= int(end.timestamp() * 1000) for e in changed)  # they left the window

    got = _rows(manifest["path"])
    assert len(got) == len(set(got))  # no (ESIN, warehouse) twice
    written = {row[0] for row in got}
    missing = (truth - changed) - written
    assert not missing, f"{len(missing)} unchanged ESIN(s) of the window lost: {sorted(missing)[:5]}"
    assert written <= truth
    # Every written ESIN with exactly its rows at the start (a changed one was read before it changed).
    assert set(got) == {row for esin in written for row in before[esin]}
    assert manifest["esins"] == len(written)
    return changed, manifest["requests"]


def test_changed_window_loses_no_esin_when_stock_changes_while_paging(sb):
    start, end = SEED_WINDOW
    assert len(sb.esins_updated_between(start, end)) == 300
    _assert_changed_contract(sb, start, end)


def test_crowded_second_is_paged_and_proven_while_stock_changes(sb):
    """60 ESINs share one second (a bulk upload: more than two pages), 40 more spread around it."""
    esins = sorted({r["esin"] for r in sb.inventory_rows()})
    source = sb.clock._source
    assert isinstance(source, _FrozenSource)
    start = datetime.fromtimestamp(int(sb.clock.now()), tz=UTC)
    for i, esin in enumerate(esins[:40]):
        source.now += 1 if i % 2 else 0
        sb.set_stock(esin, "DEL01", sellable=i)
    source.now += 1
    burst_at = datetime.fromtimestamp(int(source.now), tz=UTC)
    burst = {sb.set_stock(esin, "BLR01", sellable=5) for esin in esins[100:160]}
    for esin in esins[200:210]:
        source.now += 3
        sb.set_stock(esin, "DEL01", sellable=1)
    end = datetime.fromtimestamp(int(sb.clock.now()) + 1, tz=UTC)
    source.now += 60  # the window is over: changes during the read land after it
    assert sb.esins_updated_between(burst_at, burst_at + timedelta(seconds=1)) == burst
    assert len(sb.esins_updated_between(start, end)) == 110
    _assert_changed_contract(sb, start, end)


def test_snapshot_while_stock_changes_has_every_esin_once(sb):
    before, _stamps = _table(sb)
    sb.faults.configure(inventory_updates_while_paging=PER_PAGE_CHANGES)
    try:
        result = run_dag(DAG_ID, run_conf={"mode": "snapshot"})
    finally:
        sb.faults.clear()
    assert result.state == "success", result.task_states
    after, _stamps = _table(sb)
    changed = {e for e in before if before[e] != after[e]}
    assert len(changed) >= PER_PAGE_CHANGES * 12  # every page served changed some ESINs
    got = _rows(result.returns["snapshot_inventory"]["path"])
    assert len(got) == len(set(got))
    by_esin: dict[str, set[tuple]] = {}
    for row in got:
        by_esin.setdefault(row[0], set()).add(row)
    assert set(by_esin) == set(before)  # every ESIN, none skipped
    # Unchanged ESINs exactly as they were; a changed one as of its read (it may have changed twice,
    # so its values are not checked), with its warehouses.
    for esin, rows in by_esin.items():
        if esin in changed:
            assert {row[:3] for row in rows} == {row[:3] for row in before[esin]}, esin
        else:
            assert rows == before[esin], esin
