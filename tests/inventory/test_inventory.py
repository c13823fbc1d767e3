"""EshopboxInventoryToStorageOperator end to end (dag.test, sandbox over HTTP) and its validation."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_eshopbox.exceptions import EshopboxConfigError
from airflow_provider_eshopbox.operators.inventory import (
    EshopboxInventoryToStorageOperator,
    flatten_esin,
    updated_on_bounds,
)
from tests.dagtest import run_dag

BUCKETS = ("sellable", "nonSellable", "inwardInProcess", "outwardInProcess")
DAG_ID = "eshopbox_inventory_snapshot"


def _read_rows(url: str) -> list[dict]:
    assert url.startswith("file://")
    with gzip.open(Path(url.removeprefix("file://")), "rt") as handle:
        return [json.loads(line) for line in handle]


def _as_tuples(rows: list[dict]) -> list[tuple]:
    return [(r["esin"], r["sku"], r["warehouse"], *(r[b] for b in BUCKETS)) for r in rows]


def test_snapshot_equals_the_stock_table(conn, airflow_db):
    sb = conn
    sb.reset_stats()
    result = run_dag(DAG_ID, run_conf={"mode": "snapshot"})
    assert result.state == "success"
    manifest = result.returns["snapshot_inventory"]
    rows = _read_rows(manifest["path"])

    truth = _as_tuples(sb.inventory_rows())
    got = _as_tuples(rows)
    assert len(got) == len(set(got)) == len(truth)  # every (ESIN, warehouse) exactly once
    assert set(got) == set(truth)
    assert got == sorted(got, key=lambda t: (t[0], t[2]))
    assert {r["snapshot_at"] for r in rows} == {
        result.dag_run.start_date.astimezone(timezone.utc).isoformat()
    }
    # 75 ESINs at 25 a page: the page-0 probe (a 1-based server refuses it), three full pages and
    # the empty page that proves the end.
    assert sb.stats()["by_route"]["inventory_list"] == 5
    assert manifest["requests"] == 5
    assert {k: manifest[k] for k in ("rows", "esins", "mode", "totals_mismatches")} == {
        "rows": len(truth),
        "esins": 75,
        "mode": "snapshot",
        "totals_mismatches": 0,
    }
    assert "window_start" not in manifest
    assert manifest["path"].endswith(f"{result.dag_run.data_interval_end.strftime('%Y%m%dT%H%M%S')}.jsonl.gz")


def test_changed_run_returns_exactly_the_changed_esins(conn, airflow_db):
    sb = conn
    esins = sorted({row["esin"] for row in sb.inventory_rows()})
    start = datetime.fromtimestamp(int(sb.clock.now()), tz=timezone.utc)
    changed = {
        sb.set_stock(esins[3], "DEL01", sellable=7, nonSellable=1),
        sb.set_stock(esins[30], "BLR01", inwardInProcess=40),
        sb.set_stock(esins[74], "ZZZ99", sellable=3),  # a warehouse the ESIN did not have
    }
    end = start + timedelta(seconds=3)
    sb.clock.advance(10)  # after the window: must not be in it
    later = sb.set_stock(esins[50], "DEL01", sellable=0)
    assert later not in changed
    assert sb.esins_updated_between(start, end) == changed

    result = run_dag(DAG_ID, run_conf={"mode": "changed", "start": start.isoformat(), "end": end.isoformat()})
    assert result.state == "success"
    manifest = result.returns["snapshot_inventory"]
    rows = _read_rows(manifest["path"])
    assert {r["esin"] for r in rows} == changed
    truth = [r for r in sb.inventory_rows() if r["esin"] in changed]
    assert sorted(_as_tuples(rows)) == sorted(_as_tuples(truth))
    assert ("ZZZ99", 3) in {(r["warehouse"], r["sellable"]) for r in rows if r["esin"] == esins[74]}
    assert manifest["mode"] == "changed"
    assert manifest["esins"] == 3
    assert (manifest["window_start"], manifest["window_end"]) == (start.isoformat(), end.isoformat())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "delta"}, "mode must be one of snapshot, changed, got 'delta'"),
        ({"destination": "ftpx://bucket/inventory.jsonl"}, "no filesystem is registered for scheme 'ftpx'"),
        ({"destination": "/tmp/no-scheme.jsonl"}, "has no scheme"),
        ({"mode": "changed"}, "this run has no data interval"),
        ({"on_totals_mismatch": "ignore"}, "on_totals_mismatch must be one of warn, fail"),
    ],
)
def test_bad_input_fails_before_any_request(conn, tmp_path, kwargs, match):
    sb = conn
    before = sb.stats()["requests"]
    arguments = {"destination": f"file://{tmp_path}/out/inventory.jsonl", **kwargs}
    operator = EshopboxInventoryToStorageOperator(task_id="inventory", **arguments)
    with pytest.raises(EshopboxConfigError, match=match):
        operator.execute({})
    assert sb.stats()["requests"] == before
    assert not (tmp_path / "out").exists()


def test_updated_on_bounds_select_whole_seconds_of_the_half_open_window():
    t = datetime(2026, 11, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert updated_on_bounds(t, t + timedelta(minutes=15)) == (t, t + timedelta(minutes=15, seconds=-1))
    assert updated_on_bounds(t + timedelta(milliseconds=300), t + timedelta(seconds=2, milliseconds=1)) == (
        t + timedelta(seconds=1),
        t + timedelta(seconds=2),
    )
    assert updated_on_bounds(t + timedelta(milliseconds=1), t + timedelta(milliseconds=999)) is None


def test_totals_mismatch_names_the_buckets():
    value = {
        "sku": "TSHIRT-BLU-S",
        "warehouseInventories": {
            "DEL01": {"sellable": 10, "nonSellable": 1, "inwardInProcess": 0, "outwardInProcess": 2},
            "BLR01": {"sellable": 4, "nonSellable": 0, "inwardInProcess": 5, "outwardInProcess": 0},
        },
        "inventories": {"sellable": 15, "nonSellable": 1, "inwardInProcess": 5, "outwardInProcess": 2},
    }
    rows, mismatch = flatten_esin("ESN1", value, "2026-11-01T00:00:00+00:00")
    assert [(r["warehouse"], r["sellable"]) for r in rows] == [("BLR01", 4), ("DEL01", 10)]
    assert mismatch == "sellable: warehouses sum to 14, inventories says 15"
    value["inventories"]["sellable"] = 14
    assert flatten_esin("ESN1", value, "x")[1] == ""
    del value["sku"]
    assert {r["sku"] for r in flatten_esin("ESN1", value, "x")[0]} == {None}
