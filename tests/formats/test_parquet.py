"""format="parquet": typed from the declared schemas, checked before any request, exact or nothing."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_eshopbox.exceptions import EshopboxConfigError, EshopboxDataError
from airflow_provider_eshopbox.schemas import SCHEMAS, schema_of
from airflow_provider_eshopbox.sync import formats
from airflow_provider_eshopbox.sync.formats import ParquetWriter, arrow_type, resolve_output
from airflow_provider_eshopbox.sync.storage import RowSpool
from tests.dagtest import run_dag

ORDER = {
    "objectID": "acme-1-1",
    "orderItemID": "1-1",
    "customerPrice": 999.5,
    "onHold": 0,
    "thirdPartyShipping": "1",
    "orderDetails": {"isCod": "0", "orderDate": "2026-11-01 10:15:00", "orderTotal": 1999.0},
    "updatedAt": 1_793_527_200_123,
}


def _write(
    rows: list[dict], destination: Path, stream: str = "orders", encode: Callable[[Any], bytes] | None = None
) -> tuple[int, dict]:
    """Rows (as JSON text, money as written, or as ``encode`` spells them) through the spool and the
    Parquet writer."""
    writer = ParquetWriter(schema_of(stream))
    key = schema_of(stream).key
    with RowSpool(
        key=lambda r: json.dumps([r.get(k) for k in key]), version=lambda r: 0, sort_key=str
    ) as spool:
        for row in rows:
            spool.add(row, (encode or _TEXT)(row))  # as the API would send it: Decimal("1.07") as 1.07
        count = spool.write_to(_path(destination), writer)
    return count, writer.manifest()


_TEXT = msgspec.json.Encoder(decimal_format="number").encode


def _path(destination: Path):
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(f"file://{destination}")


def test_the_default_install_does_not_pull_pyarrow() -> None:
    requires = importlib.metadata.requires("airflow-provider-eshopbox") or []
    default = [r for r in requires if "extra ==" not in r]
    assert default and not [r for r in default if r.lower().startswith(("pyarrow", "duckdb"))], default
    assert any(re.match(r'pyarrow.*extra == "parquet"', r) for r in requires), requires


@pytest.mark.parametrize(("preset", "backend"), [(None, "system"), ("mimalloc", "mimalloc")])
def test_loading_pyarrow_for_parquet_makes_the_system_allocator_its_default_unless_told(
    preset: str | None, backend: str
) -> None:
    # A fresh interpreter: the allocator is chosen once, at pyarrow's first import.
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    env.update({"ARROW_DEFAULT_MEMORY_POOL": preset} if preset else {})
    code = (
        "from airflow_provider_eshopbox.sync.formats import require_pyarrow; require_pyarrow(); "
        "import pyarrow; print(pyarrow.default_memory_pool().backend_name)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == backend


def test_declared_arrow_types_are_spelt_as_pyarrow_prints_them() -> None:
    for schema in SCHEMAS.values():
        for column in schema.columns:
            assert str(arrow_type(column)) == column.arrow_type(), (schema.stream, column.name)


def test_format_is_checked_before_any_request(tmp_path: Path) -> None:
    base = f"file://{tmp_path}"
    assert resolve_output(f"{base}/a.parquet", None, "orders").writer.format == "parquet"
    assert resolve_output(f"{base}/a.jsonl.gz", None, "orders").writer.format == "jsonl"
    assert resolve_output(f"{base}/a.pq", "PARQUET", "orders").writer.format == "parquet"
    with pytest.raises(EshopboxConfigError, match=r"format must be one of jsonl, parquet, got 'csv'"):
        resolve_output(f"{base}/a.csv", "csv", "orders")
    with pytest.raises(EshopboxConfigError, match=r"named as JSON Lines.*name it \.\.\.\.parquet"):
        resolve_output(f"{base}/a.jsonl.gz", "parquet", "orders")
    with pytest.raises(EshopboxConfigError, match=r"format='jsonl' but destination=.* ends in \.parquet"):
        resolve_output(f"{base}/a.parquet", "jsonl", "orders")
    assert list(tmp_path.iterdir()) == []  # the write probes are gone


def test_without_pyarrow_the_error_names_the_extra_before_any_request(
    sandbox, monkeypatch, tmp_path: Path
) -> None:
    from airflow_provider_eshopbox.operators.orders import EshopboxOrdersToStorageOperator

    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sandbox.connection_json())
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    sandbox.reset_stats()
    op = EshopboxOrdersToStorageOperator(
        task_id="t", destination=f"file://{tmp_path}/o.parquet", start="2026-11-02", end="2026-11-03"
    )
    with pytest.raises(EshopboxConfigError, match=r"pip install 'airflow-provider-eshopbox\[parquet\]'"):
        op.execute({})  # type: ignore[arg-type]
    assert sandbox.stats()["requests"] == 0
    assert list(tmp_path.iterdir()) == []


def test_types_follow_the_schema_money_exact_and_instants_in_utc(tmp_path: Path) -> None:
    destination = tmp_path / "o.parquet"
    assert _write([ORDER], destination)[0] == 1
    table = pq.read_table(destination)
    (row,) = table.to_pylist()
    assert table.schema.field("updatedAt").type == pa.timestamp("us", tz="UTC")
    assert row["updatedAt"].timestamp() * 1000 == ORDER["updatedAt"]
    assert row["customerPrice"] == Decimal("999.50") and table.schema.field("customerPrice").type.scale == 2
    assert (row["onHold"], row["thirdPartyShipping"]) == (False, True)
    details = row["orderDetails"]
    assert details["isCod"] is False and details["orderTotal"] == Decimal("1999.00")
    assert details["orderDate"].isoformat() == "2026-11-01T10:15:00+00:00"  # api.ORDER_DATE_TIME: UTC
    assert row["_extra"] is None and row["sku"] is None  # a declared column the row lacks: null


def test_money_is_parsed_from_the_text_not_through_a_float(tmp_path: Path) -> None:
    # 0.1 + 0.2 style values: the text has two places, a float would carry binary noise.
    rows = [{**ORDER, "orderItemID": f"1-{i}", "customerPrice": Decimal(f"{i}.07")} for i in range(1, 50)]
    _write(rows, tmp_path / "o.parquet")
    got = {r["orderItemID"]: r["customerPrice"] for r in pq.read_table(tmp_path / "o.parquet").to_pylist()}
    assert got == {f"1-{i}": Decimal(f"{i}.07") for i in range(1, 50)}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            {"customerPrice": Decimal("12.345")},
            r"customerPrice has more than 2 decimal places \(value Decimal\('12.345'\)\)",
        ),
        ({"thirdPartyShipping": "yes"}, r"thirdPartyShipping is not a flag .*\(value 'yes'\)"),
        ({"updatedAt": "2026-11-01"}, r"updatedAt is a string .*not epoch milliseconds"),
        ({"quantity": 1.5}, r"quantity is not a 64-bit integer \(value Decimal\('1.5'\)\)"),
        ({"orderDetails": {"orderDate": "2026-11-01T10:15:00+05:30"}}, r"orderDetails.orderDate is a string"),
        ({"sku": 12}, r"sku is not a string \(value 12\)"),
        # pyarrow's JSON reader would take these three; the writer must not:
        ({"customerPrice": "12.50"}, r"customerPrice is not a number \(value '12.50'\)"),
        ({"customerPrice": 10**16}, r"customerPrice has more than 16 digits before the point"),
        ({"onHold": 2}, r"onHold is not a flag .*\(value 2\)"),
    ],
)
def test_a_value_that_does_not_fit_fails_naming_stream_field_row_and_value(
    tmp_path: Path, change: dict, says: str
) -> None:
    rows = [ORDER, {**ORDER, "orderItemID": "2-1", **change}]
    with pytest.raises(EshopboxDataError) as failure:
        _write(rows, tmp_path / "o.parquet")
    message = str(failure.value)
    assert message.startswith("orders row objectID='acme-1-1', orderItemID='2-1', updatedAt="), message
    assert re.search(says, message), message
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary left


def test_money_sent_as_a_string_fails_even_under_an_escaped_key(tmp_path: Path) -> None:
    # The key spelt "customer\u0050rice" is customerPrice once decoded; the text check must see it.
    rows = [ORDER, {**ORDER, "orderItemID": "2-1", "customerPrice": "12.50"}]
    escaped = lambda row: _TEXT(row).replace(b'"customerPrice"', b'"customer\\u0050rice"')  # noqa: E731
    with pytest.raises(EshopboxDataError, match=r"orderItemID='2-1'.*customerPrice is not a number"):
        _write(rows, tmp_path / "o.parquet", encode=escaped)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("spacing", [b":", b" : ", b":\t\n "])
def test_money_sent_as_a_string_fails_whatever_the_spacing(tmp_path: Path, spacing: bytes) -> None:
    # A server that pretty-prints its JSON: the text check must see the string past the whitespace,
    # here in a nested money key (a row spanning lines is re-encoded by the spool, and checked so).
    details = {**ORDER["orderDetails"], "orderTotal": "99.00"}
    rows = [ORDER, {**ORDER, "orderItemID": "2-1", "orderDetails": details}]
    spaced = lambda row: _TEXT(row).replace(b'":', b'"' + spacing)  # noqa: E731
    says = r"orderItemID='2-1'.*orderDetails.orderTotal is not a number"
    with pytest.raises(EshopboxDataError, match=says):
        _write(rows, tmp_path / "o.parquet", encode=spaced)
    assert list(tmp_path.iterdir()) == []


def test_the_json_reader_and_the_value_by_value_path_write_the_same_bytes(
    sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Row groups go through pyarrow's JSON reader; the converters are the reference it must equal.
    cast, taken = ParquetWriter._cast, []

    def recording(self: ParquetWriter, *args: Any) -> Any:
        taken.append(cast(self, *args))
        return taken[-1]

    monkeypatch.setattr(ParquetWriter, "_cast", recording)
    streams = {"orders": sandbox.truth_order_rows(), "products": sandbox.products()}
    for stream, rows in streams.items():
        _write(rows, tmp_path / f"{stream}-reader.parquet", stream)
    assert taken and all(table is not None for table in taken)  # the reader took every group
    monkeypatch.setattr(ParquetWriter, "_cast", lambda self, *args: None)
    for stream, rows in streams.items():
        _write(rows, tmp_path / f"{stream}-values.parquet", stream)
        reader, values = ((tmp_path / f"{stream}-{way}.parquet").read_bytes() for way in ("reader", "values"))
        assert reader == values, stream
        assert pq.read_metadata(io.BytesIO(reader)).num_rows == len(rows) > 0


def test_unknown_fields_are_kept_in_extra_and_counted_in_the_manifest(tmp_path: Path) -> None:
    rows = [
        {
            **ORDER,
            "giftNote": "Happy birthday",
            "orderDetails": {**ORDER["orderDetails"], "coupon": "DIWALI"},
        },
        {**ORDER, "orderItemID": "1-2", "giftNote": None},
    ]
    _, manifest = _write(rows, tmp_path / "o.parquet")
    assert manifest["extra_fields"] == {"giftNote": 2, "orderDetails.coupon": 1}
    extras = [r["_extra"] for r in pq.read_table(tmp_path / "o.parquet").to_pylist()]
    assert [json.loads(e) for e in extras] == [
        {"giftNote": "Happy birthday", "orderDetails.coupon": "DIWALI"},
        {"giftNote": None},
    ]
    returns = [
        {"id": 1, "customerReturnNumber": "R1", "updated_at": "2026-11-01 00:00:00",
         "items": [{"itemID": "A", "quantity": 1}, {"itemID": "B", "quantity": 2, "grade": "B"}]},
    ]  # fmt: skip
    _, manifest = _write(returns, tmp_path / "r.parquet", "returns")
    assert manifest["extra_fields"] == {"items[].grade": 1}
    (row,) = pq.read_table(tmp_path / "r.parquet").to_pylist()
    assert json.loads(row["_extra"]) == {"items[1].grade": "B"}


def test_row_groups_are_bounded_the_schema_stable_and_the_bytes_repeat(tmp_path: Path) -> None:
    rows = [
        {"esin": f"E{i:06d}", "warehouse": "DEL01", "sellable": i, "snapshot_at": "2026-11-01T00:00:00+00:00"}
        for i in range(2 * formats.ROW_GROUP_ROWS + 5)
    ]
    _, manifest = _write(rows, tmp_path / "a.parquet", "inventory")
    _write(rows, tmp_path / "b.parquet", "inventory")
    _write([], tmp_path / "empty.parquet", "inventory")
    meta = pq.ParquetFile(tmp_path / "a.parquet").metadata
    groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert groups == [formats.ROW_GROUP_ROWS, formats.ROW_GROUP_ROWS, 5]
    digest = [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("a.parquet", "b.parquet")]
    assert digest[0] == digest[1]
    schemas = [pq.read_schema(tmp_path / n) for n in ("a.parquet", "empty.parquet")]
    assert schemas[0] == schemas[1]  # whatever a batch holds (sku null throughout, or no rows at all)
    assert schemas[0].metadata[b"eshopbox.schema"].decode() == manifest["schema_fingerprint"]
    assert pq.read_table(tmp_path / "a.parquet").column("sku").null_count == len(rows)


def test_streams_resync_writes_typed_parquet_with_the_same_bytes_on_a_rerun(conn, output_dir: Path) -> None:
    sb = conn
    conf = {"stream": "products", "name": "catalogue.parquet"}
    first = run_dag("eshopbox_streams_resync", run_conf=conf)
    assert first.state == "success", first.log[-3000:]
    path = output_dir / "streams" / "products" / "catalogue.parquet"
    written = path.read_bytes()
    manifest = first.returns["land"]
    assert manifest["format"] == "parquet" and manifest["extra_fields"] == {}
    assert manifest["schema_fingerprint"] == formats.schema_fingerprint(schema_of("products"))
    got = {r["sku"]: r for r in pq.read_table(io.BytesIO(written)).to_pylist()}
    truth = {p["sku"]: p for p in sb.products()}
    assert got.keys() == truth.keys()
    for sku, product in truth.items():
        assert got[sku]["mrp"] == Decimal(str(product["mrp"])), sku
        assert math.isclose(got[sku]["updatedAt"].timestamp(), _iso_seconds(product["updatedAt"]))
        assert got[sku]["additionalNames"]["others"] == product["additionalNames"]["others"]
    again = run_dag("eshopbox_streams_resync", run_conf=conf)
    assert again.state == "success"
    assert path.read_bytes() == written


def _iso_seconds(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_an_order_date_sent_with_an_offset_fails_the_parquet_write_and_jsonl_keeps_it_as_sent(
    conn, tmp_path: Path
) -> None:
    """Quirk offset_times: orderDate arrives as '…+05:30', not api.ORDER_DATE_TIME's naive UTC. The
    Parquet write refuses it naming the row and the field, and leaves nothing; JSONL writes the bytes."""
    from airflow_provider_eshopbox.operators.orders import EshopboxOrdersToStorageOperator

    sb = conn
    window = {"start": "2026-11-02T00:00:00+00:00", "end": "2026-11-03T00:00:00+00:00"}
    sb.quirks.configure(offset_times=True)
    try:
        parquet = EshopboxOrdersToStorageOperator(
            task_id="o", destination=f"file://{tmp_path}/p/orders.parquet", format="parquet", **window
        )
        with pytest.raises(EshopboxDataError) as failure:
            parquet.execute({})  # type: ignore[arg-type]
        jsonl = EshopboxOrdersToStorageOperator(
            task_id="o", destination=f"file://{tmp_path}/j/orders.jsonl", **window
        )
        manifest = jsonl.execute({})  # type: ignore[arg-type]
    finally:
        sb.quirks.clear()
    message = str(failure.value)
    assert message.startswith("orders row objectID="), message
    assert re.search(r"orderDetails\.orderDate.*\+05:30", message), message
    assert not (tmp_path / "p").exists() or list((tmp_path / "p").iterdir()) == []
    lines = [json.loads(line) for line in (tmp_path / "j" / "orders.jsonl").read_text().splitlines()]
    start, end = (round(datetime.fromisoformat(window[k]).timestamp() * 1000) for k in ("start", "end"))
    assert len(lines) == manifest["rows"] == len(sb.truth_order_rows(start, end)) > 0
    assert all(row["orderDetails"]["orderDate"].endswith("+05:30") for row in lines)
