"""RTO and return rates per courier, whenever the fulfilment mart has landed a day's shipments and returns.

Reads the files named in the assets' latest events (the manifests of ``eshopbox_fulfilment_mart``),
joins shipments to returns on the shipment and to the day's orders on the order number, and writes
``summary/dt=<day>/couriers.csv`` and a bar chart ``couriers.svg`` (drawn by hand: no plotting
library needed).
"""

from __future__ import annotations

import os

from airflow.sdk import DAG, Asset, task

OUTPUT = os.environ.get("ESHOPBOX_DEMO_OUTPUT", "file:///tmp/eshopbox")


def _bar_chart(title: str, table: list[dict]) -> str:
    """A small horizontal bar chart of rto_rate as SVG."""
    from xml.sax.saxutils import escape

    width, bar_height, left = 520, 26, 130
    top = max((r["rto_rate"] for r in table), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{60 + bar_height * len(table)}" '
        'font-family="sans-serif" font-size="13">',
        f'<text x="10" y="24" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    for i, row in enumerate(table):
        y = 40 + i * bar_height
        length = (width - left - 70) * row["rto_rate"] / top
        parts += [
            f'<text x="10" y="{y + 17}">{escape(row["courier"])}</text>',
            f'<rect x="{left}" y="{y + 4}" width="{length:.1f}" height="{bar_height - 8}" fill="#d9534f"/>',
            f'<text x="{left + length + 6:.1f}" y="{y + 17}">'
            f"{row['rto_rate']:.1%} of {row['shipments']}</text>",
        ]
    return "\n".join([*parts, "</svg>\n"])


ORDERS = Asset("eshopbox_mart_orders")
SHIPMENTS = Asset("eshopbox_mart_shipments")
RETURNS = Asset("eshopbox_mart_returns")

with DAG(
    dag_id="eshopbox_fulfilment_summary",
    schedule=(SHIPMENTS & RETURNS),
    tags=["eshopbox", "example", "mart"],
) as dag:

    @task(inlets=[ORDERS, SHIPMENTS, RETURNS])
    def summarise(inlet_events=None) -> dict[str, object]:
        import csv
        import gzip
        import io
        import json
        import statistics
        from collections import defaultdict

        import pendulum
        from airflow.sdk import ObjectStoragePath

        def rows(asset: Asset) -> tuple[list[dict], dict]:
            manifest = inlet_events[asset][-1].extra  # the latest landing of that stream
            with ObjectStoragePath(manifest["path"]).open("rb") as raw, gzip.open(raw, "rt") as lines:
                return [json.loads(line) for line in lines], manifest

        shipments, manifest = rows(SHIPMENTS)
        returns, _ = rows(RETURNS)
        orders, _ = rows(ORDERS)
        day = pendulum.parse(manifest["window_start"]).to_date_string()
        rto_shipments = {r["externalShipmentID"] for r in returns if r["returnType"] == "RTO"}
        customer_returns = {r["externalShipmentID"] for r in returns if r["returnType"] != "RTO"}
        order_value = defaultdict(float)
        for item in orders:
            order_value[item["customerOrderNumber"]] += float(item.get("customerPrice") or 0)

        per_courier: dict[str, dict] = defaultdict(lambda: defaultdict(float))
        hours: dict[str, list[float]] = defaultdict(list)
        for shipment in shipments:
            c = per_courier[shipment["courierName"]]
            c["shipments"] += 1
            log = shipment.get("status_log") or {}
            rto = shipment["externalShipmentID"] in rto_shipments or shipment["status"].startswith("rto")
            c["rto"] += rto
            c["customer_returns"] += shipment["externalShipmentID"] in customer_returns
            c["value"] += order_value.get(shipment["customerOrderNumber"], 0.0)
            if "delivered" in log and not rto:
                c["delivered"] += 1
                created = pendulum.from_format(shipment["created_at"], "YYYY-MM-DD HH:mm:ss", tz="UTC")
                delivered = pendulum.from_format(log["delivered"], "YYYY-MM-DD HH:mm:ss", tz="UTC")
                hours[shipment["courierName"]].append((delivered - created).total_hours())

        table = [
            {
                "day": day,
                "courier": name,
                "shipments": int(c["shipments"]),
                "delivered": int(c["delivered"]),
                "rto": int(c["rto"]),
                "rto_rate": round(c["rto"] / c["shipments"], 4),
                "customer_returns": int(c["customer_returns"]),
                "median_delivery_hours": round(statistics.median(hours[name]), 1) if hours[name] else None,
                "order_value_in_window": round(c["value"], 2),
            }
            for name, c in sorted(per_courier.items())
        ]
        folder = ObjectStoragePath(f"{OUTPUT}/summary/dt={day}")
        folder.mkdir(parents=True, exist_ok=True)
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(table[0]) if table else ["day"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
        (folder / "couriers.csv").write_text(text.getvalue())
        (folder / "couriers.svg").write_text(_bar_chart(f"RTO rate by courier, {day}", table))
        for line in table:
            print(f"{line['courier']:<14} {line['shipments']:>4} shipments  RTO {line['rto_rate']:.1%}")
        return {"day": day, "couriers": len(table), "shipments": len(shipments), "path": str(folder)}

    summarise()
