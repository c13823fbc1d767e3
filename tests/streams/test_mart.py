"""The fulfilment mart example end to end: four streams for a day, then the summary joined from them."""

from __future__ import annotations

import csv
import gzip
import json
from collections import defaultdict
from datetime import datetime, timezone

from tests.dagtest import run_dag

UTC = timezone.utc
RUN_AT = datetime(2026, 11, 4, tzinfo=UTC)  # data interval: 2026-11-03
DAY = (datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC))


def _rows(path):
    with gzip.open(path, "rt") as handle:
        return [json.loads(line) for line in handle]


def test_mart_lands_the_day_and_the_summary_joins_it(conn, output_dir):
    sb = conn
    result = run_dag("eshopbox_fulfilment_mart", logical_date=RUN_AT)
    assert result.state == "success", result.task_states

    def day(stream):  # Hive-style: mart/<stream>/dt=<day>/<stream>.jsonl.gz
        return output_dir / "mart" / stream / "dt=2026-11-03" / f"{stream}.jsonl.gz"

    assert {r["orderItemID"] for r in _rows(day("orders"))} == sb.truth_order_item_ids(*DAY)
    shipments = _rows(day("shipments"))
    assert {r["id"] for r in shipments} == sb.truth_shipments(*DAY)
    assert {r["customerReturnNumber"] for r in _rows(day("returns"))} == sb.truth_returns(*DAY)
    assert {r["esin"] for r in _rows(day("products"))} == sb.truth_products()

    summary = run_dag("eshopbox_fulfilment_summary")
    assert summary.state == "success", summary.task_states
    assert summary.returns["summarise"]["day"] == "2026-11-03"
    folder = output_dir / "summary" / "dt=2026-11-03"
    with open(folder / "couriers.csv") as handle:
        table = {row["courier"]: row for row in csv.DictReader(handle)}

    # The same join, from the sandbox's truth: a shipment is an RTO if an RTO return names it.
    rto = {r["externalShipmentID"] for r in sb.truth_return_rows(*DAY) if r["returnType"] == "RTO"}
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for shipment in sb.truth_shipment_rows(*DAY):
        counts = expected[shipment["courierName"]]
        counts[0] += 1
        counts[1] += shipment["externalShipmentID"] in rto or shipment["status"].startswith("rto")
    assert {c: (int(r["shipments"]), int(r["rto"])) for c, r in table.items()} == {
        c: tuple(v) for c, v in expected.items()
    }
    assert any(int(r["rto"]) for r in table.values())
    svg = (folder / "couriers.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<rect") == len(table)
