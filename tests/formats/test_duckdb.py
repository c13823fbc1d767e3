"""DuckDB over the Parquet lake (example DAG eshopbox_lake_parquet): typed columns equal the sandbox's
truth, the joins a consumer writes give the counts the truth gives, and JSONL.gz agrees with Parquet."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.schemas import Column, schema_of
from tests.dagtest import run_dag

UTC = timezone.utc
DAYS = (datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))


@pytest.fixture(scope="module")
def lake(sandbox, tmp_path_factory) -> Path:
    """Two daily runs of the lake DAG: lake/<stream>/dt=2026-11-02/ and dt=2026-11-03/."""
    out = tmp_path_factory.mktemp("lake")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sandbox.connection_json())
        patch.setenv("ESHOPBOX_DEMO_OUTPUT", f"file://{out}")
        for day in DAYS:
            result = run_dag("eshopbox_lake_parquet", logical_date=day + timedelta(days=1))
            assert result.state == "success", result.log[-3000:]
    return out / "lake"


def _glob(lake: Path, stream: str) -> str:
    return f"read_parquet('{lake}/{stream}/*/*.parquet', hive_partitioning = true)"


def _ms(value: datetime) -> int:
    return round(value.timestamp() * 1000)


def test_orders_read_back_typed_with_a_partition_column(conn, lake: Path, airflow_db) -> None:
    sb = conn
    db = duckdb.connect()
    described = {
        name: kind for name, kind, *_ in db.sql(f"DESCRIBE SELECT * FROM {_glob(lake, 'orders')}").fetchall()
    }
    assert described["updatedAt"] == "TIMESTAMP WITH TIME ZONE"
    assert described["customerPrice"] == "DECIMAL(18,2)"
    assert described["onHold"] == described["thirdPartyShipping"] == "BOOLEAN"
    assert described["orderDetails"].startswith("STRUCT(isCod BOOLEAN, orderDate TIMESTAMP WITH TIME ZONE")
    assert described["dt"] in ("DATE", "VARCHAR")
    rows = db.sql(
        f"""SELECT CAST(dt AS VARCHAR), orderItemID, epoch_ms(updatedAt), customerPrice, onHold,
                   thirdPartyShipping, orderDetails.isCod, epoch_ms(orderDetails.orderDate),
                   orderDetails.orderTotal
            FROM {_glob(lake, "orders")}"""
    ).fetchall()
    truth = []
    for day in DAYS:
        for r in sb.truth_order_rows(day, day + timedelta(days=1)):
            details = r["orderDetails"]
            truth.append(
                (
                    f"{day:%Y-%m-%d}",
                    r["orderItemID"],
                    r["updatedAt"],
                    Decimal(str(r["customerPrice"])),
                    r["onHold"] == 1,
                    r["thirdPartyShipping"] == "1",
                    details["isCod"] == "1",
                    api.parse_wms_time(details["orderDate"]),  # UTC, api.ORDER_DATE_TIME
                    Decimal(str(details["orderTotal"])),
                )
            )
    assert len(truth) > 300
    assert sorted(rows) == sorted(truth)  # the same instants, the exact decimals


def test_joins_on_sku_and_esin_give_the_counts_of_the_truth(conn, lake: Path, airflow_db) -> None:
    sb = conn
    db = duckdb.connect()
    orders, products, inventory = (_glob(lake, s) for s in ("orders", "products", "inventory"))
    (by_sku,) = db.sql(
        f"SELECT count(*) FROM {orders} o JOIN {products} p ON o.sku = p.sku AND o.dt = p.dt"
    ).fetchall()
    (by_esin,) = db.sql(
        f"SELECT count(*), count(DISTINCT o.orderItemID) FROM {orders} o "
        f"JOIN {inventory} i ON o.esin = i.esin AND o.dt = i.dt"
    ).fetchall()
    sold = [r for day in DAYS for r in sb.truth_order_rows(day, day + timedelta(days=1))]
    skus = {p["sku"] for p in sb.products()}
    warehouses = Counter(row["esin"] for row in sb.inventory_rows())  # one row per ESIN and warehouse
    assert by_sku == (sum(r["sku"] in skus for r in sold),)
    assert by_esin == (sum(warehouses[r["esin"]] for r in sold), sum(r["esin"] in warehouses for r in sold))
    assert by_esin[0] > by_esin[1]  # several warehouses per ESIN: the join fans out
    stock = db.sql(
        f"SELECT esin, warehouse, sellable FROM {inventory} WHERE dt = (SELECT max(dt) FROM {inventory})"
    ).fetchall()
    assert sorted(stock) == sorted((r["esin"], r["warehouse"], r["sellable"]) for r in sb.inventory_rows())


def test_shipments_and_returns_keep_their_instants_and_nested_rows(conn, lake: Path, airflow_db) -> None:
    sb = conn
    db = duckdb.connect()
    shipped = db.sql(
        f"SELECT id, epoch_ms(updated_at), len(tracking.statusLogList), map_keys(status_log) "
        f"FROM {_glob(lake, 'shipments')}"
    ).fetchall()
    truth = [
        (r["id"], api.parse_wms_time(r["updated_at"]),
         len(sb.tracking_details(r["trackingID"])["statusLogList"]), list(r["status_log"]))
        for day in DAYS
        for r in sb.truth_shipment_rows(day, day + timedelta(days=1))
    ]  # fmt: skip
    assert sorted(shipped) == sorted(truth) and truth
    refunds = db.sql(f"SELECT customerReturnNumber, refundAmount FROM {_glob(lake, 'returns')}").fetchall()
    assert sorted(refunds) == sorted(
        (r["customerReturnNumber"], Decimal(str(r["refundAmount"])))
        for day in DAYS
        for r in sb.truth_return_rows(day, day + timedelta(days=1))
    )


def test_a_gz_jsonl_and_a_parquet_file_of_the_same_rows_agree(conn, lake: Path, output_dir: Path) -> None:
    day = DAYS[0]
    gz = output_dir / "orders.jsonl.gz"
    conf = {
        "start": day.isoformat(),
        "end": (day + timedelta(days=1)).isoformat(),
        "destination": f"file://{gz}",
    }
    result = run_dag("eshopbox_orders_resync", run_conf=conf)
    assert result.state == "success", result.log[-3000:]
    with gzip.open(gz, "rb") as handle:
        lines = [json.loads(line) for line in handle]
    parquet = pq.read_table(lake / "orders" / f"dt={day:%Y-%m-%d}" / "orders.parquet").to_pylist()
    assert len(lines) == len(parquet) > 100
    schema = schema_of("orders")
    for text, typed in zip(lines, parquet, strict=True):  # both in file order: updatedAt, orderItemID
        for column in schema.columns:
            assert _typed(column, text.get(column.name)) == typed[column.name], (
                text["orderItemID"],
                column.name,
            )
        assert typed["_extra"] is None
    # And DuckDB reads both to the same rows once the JSON is cast as the schema says.
    db = duckdb.connect()
    differ = db.sql(
        f"""SELECT orderItemID, CAST(customerPrice AS DECIMAL(18,2)), make_timestamp(updatedAt * 1000)
            FROM read_json('{gz}', format = 'newline_delimited')
            EXCEPT SELECT orderItemID, customerPrice, CAST(updatedAt AS TIMESTAMP)
            FROM read_parquet('{lake}/orders/dt={day:%Y-%m-%d}/orders.parquet')"""
    ).fetchall()
    assert differ == []


def _typed(column: Column, value: Any) -> Any:
    """What a JSON value of ``column`` is in Parquet, worked out here independently of sync/formats.py."""
    if value is None:
        return None
    if column.type == "timestamp":
        if column.zone == api.TIME_EPOCH_MS:
            return datetime.fromtimestamp(value / 1000, UTC)
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    if column.type == "decimal":
        return Decimal(str(value)).quantize(Decimal("0.01"))
    if column.type == "flag":
        return str(value) == "1"
    if column.type == "object":
        return {f.name: _typed(f, value.get(f.name)) for f in column.fields}
    return value
