"""Shipments, returns and products end to end (dag.test, sandbox over HTTP): exact against the truth."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox import api
from tests.dagtest import run_dag

UTC = timezone.utc
DAY = (datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC))


DAG_ID = "eshopbox_streams_resync"


def land(
    output_dir: Path, stream: str, name: str = "out.jsonl.gz", capfd: Any = None, **conf: Any
) -> tuple[Any, list[dict]]:
    """Run the streams example DAG for one stream; returns the run result and the rows written."""
    from tests.dagtest import load_example_dag

    attrs = conf.pop("task_attrs", None)
    if stream != "products" and "keys" not in conf:
        conf.setdefault("start", DAY[0].isoformat())
        conf.setdefault("end", DAY[1].isoformat())
    for key in ("keys", "fields"):
        if isinstance(conf.get(key), list):
            conf[key] = ",".join(conf[key])
    dag = load_example_dag(DAG_ID, **({"land": attrs} if attrs else {}))
    result = run_dag(dag, capfd, run_conf={"stream": stream, "name": name, **conf})
    path = output_dir / "streams" / stream / name
    rows = []
    if path.exists():
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt") as handle:
            rows = [json.loads(line) for line in handle]
    return result, rows


def test_shipments_land_exactly_the_window_with_tracking(conn, output_dir):
    sb = conn
    result, rows = land(output_dir, "shipments")
    assert result.state == "success", result.task_states
    truth = sb.truth_shipment_rows(*DAY)
    assert 50 < len(truth) < len(sb.truth_shipments())  # a real window, not the whole list
    assert [r["id"] for r in rows] == sorted(
        (r["id"] for r in truth), key=lambda i: (next(t["updated_at"] for t in truth if t["id"] == i), i)
    )
    by_id = {r["id"]: r for r in rows}
    for expected in truth:
        got = dict(by_id[expected["id"]])
        assert got.pop("tracking") == sb.tracking_details(expected["trackingID"])
        assert got == expected
    manifest = result.returns["land"]
    listed = len(sb.truth_shipments())
    pages = -(-listed // api.LIST_PER_PAGE_MAX)
    batches = -(-len(truth) // api.TRACKING_IDS_MAX)
    assert manifest["rows"] == len(truth)
    assert manifest["listed"] == listed
    assert manifest["requests"] == pages + batches
    assert sb.stats()["by_route"] == {"shipments_list": pages, "tracking": batches, "token": 1} or (
        sb.stats()["by_route"].get("token", 0) == 0
        and sb.stats()["by_route"] == {"shipments_list": pages, "tracking": batches}
    )


def test_a_rerun_writes_identical_bytes(conn, output_dir):
    for stream in ("shipments", "returns", "products"):
        first = land(output_dir, stream, f"{stream}-1.jsonl.gz")[0]
        second = land(output_dir, stream, f"{stream}-2.jsonl.gz")[0]
        assert first.state == second.state == "success"
        folder = output_dir / "streams" / stream
        one = (folder / f"{stream}-1.jsonl.gz").read_bytes()
        assert one == (folder / f"{stream}-2.jsonl.gz").read_bytes()
        assert len(one) > 100


def test_returns_land_exactly_the_window(conn, output_dir):
    sb = conn
    result, rows = land(output_dir, "returns", name="returns.jsonl")
    assert result.state == "success", result.task_states
    truth = sb.truth_return_rows(*DAY)
    assert len(truth) >= 3
    assert sorted(rows, key=lambda r: r["id"]) == sorted(truth, key=lambda r: r["id"])
    assert len({r["customerReturnNumber"] for r in rows}) == len(rows)
    assert [(r["updated_at"], r["id"]) for r in rows] == sorted((r["updated_at"], r["id"]) for r in rows)


def test_returns_by_customer_return_number(conn, output_dir):
    sb = conn
    wanted = sorted(sb.truth_returns())[:7]
    result, rows = land(output_dir, "returns", keys=",".join(wanted))
    assert result.state == "success", result.task_states
    # the documented get row, in key order: no list-only id or updated_at (api.RETURN_LIST_ONLY_FIELDS)
    assert rows == [sb.truth_return_got(n) for n in wanted]
    assert not {"id", "updated_at"} & {k for r in rows for k in r}
    assert sb.stats()["by_route"]["return_get"] == 7
    assert "returns_list" not in sb.stats()["by_route"]


def test_an_unknown_return_number_fails_and_writes_nothing(conn, output_dir):
    result, rows = land(output_dir, "returns", keys="RET-NOPE")
    assert result.state == "failed"
    assert not rows and not list(output_dir.rglob("*.jsonl*"))


def test_products_snapshot_is_the_catalogue(conn, output_dir):
    sb = conn
    result, rows = land(output_dir, "products")
    assert result.state == "success", result.task_states
    assert rows == sorted(sb.products(), key=lambda p: p["esin"])
    assert result.returns["land"]["requests"] == -(-len(rows) // api.LIST_PER_PAGE_MAX)
    assert "window_start" not in result.returns["land"]


def test_products_by_sku_in_batches_of_100(conn, output_dir):
    sb = conn
    skus = sorted(p["sku"] for p in sb.products())
    assert len(skus) > api.PRODUCTS_IDS_MAX
    result, rows = land(output_dir, "products", keys=skus, fields=["sku", "unitPrice"])
    assert result.state == "success", result.task_states
    assert sb.stats()["by_route"]["products_list"] == 2
    assert [set(r) for r in rows] == [{"sku", "esin", "unitPrice"}] * len(skus)
    assert sorted(r["sku"] for r in rows) == skus


@pytest.mark.parametrize(
    ("stream", "conf", "message"),
    [
        (
            "shipments",
            {"task_attrs": {"stream": "parcels"}},
            "stream must be one of shipments, returns, products",
        ),
        ("shipments", {"fields": "id,courier"}, "fields ['courier'] are not columns of the shipments stream"),
        ("shipments", {"keys": "AWB1"}, "keys= is not supported by the shipments stream"),
        ("returns", {"end": DAY[0].isoformat()}, "the window is empty"),
        ("products", {"keys": "SKU,,X"}, "keys must be a comma-separated string"),
        ("products", {"task_attrs": {"max_concurrency": 0}}, "max_concurrency must be an integer"),
        ("returns", {"task_attrs": {"destination": "/tmp/x.jsonl"}}, "has no scheme"),
    ],
)
def test_bad_arguments_fail_before_any_request(conn, output_dir, capfd, stream, conf, message):
    sb = conn
    result, rows = land(output_dir, stream, capfd=capfd, **conf)
    assert result.state == "failed"
    assert message in result.log
    assert sb.stats()["requests"] == 0
    assert not rows and not list(output_dir.rglob("*.jsonl*"))


def test_window_boundaries_are_half_open(conn, output_dir):
    sb = conn
    stamp = sb.truth_shipment_rows(*DAY)[0]["updated_at"]
    at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    _, inside = land(
        output_dir, "shipments", "a.jsonl", start=at.isoformat(), end=(at + timedelta(seconds=1)).isoformat()
    )
    _, before = land(
        output_dir, "shipments", "b.jsonl", start=(at - timedelta(seconds=1)).isoformat(), end=at.isoformat()
    )
    assert {r["id"] for r in inside} == sb.truth_shipments(at, at + timedelta(seconds=1))
    assert inside and all(r["updated_at"] == stamp for r in inside)
    assert stamp not in {r["updated_at"] for r in before}


def test_a_failed_keyed_read_stops_its_other_requests(conn):
    """One unknown key fails the read, and the other keys' requests stop with it: none is left
    running on the hook's private loop, which outlives the task's failure (``asyncio.gather`` left
    them all going, still sending requests)."""
    import asyncio

    from airflow_provider_eshopbox.exceptions import EshopboxApiError
    from airflow_provider_eshopbox.hooks._loop import run_sync
    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
    from airflow_provider_eshopbox.sync.streams import STREAMS, read_by_keys

    async def others() -> list[str]:
        return sorted(repr(t.get_coro()) for t in asyncio.all_tasks() if t is not asyncio.current_task())

    sb = conn
    sb.faults.configure(latency_ms=100)  # the known keys' replies are still on their way
    keys = ["RET-0-UNKNOWN", *sorted(sb.truth_returns())[:20]]  # sorted first: read in the first pair
    with pytest.raises(EshopboxApiError, match="RET-0-UNKNOWN"):
        run_sync(read_by_keys(EshopboxHook(), STREAMS["returns"], keys, max_concurrency=2))
    assert run_sync(others()) == []
    assert sb.stats()["by_route"]["return_get"] <= 2
