"""Runs whenever the hourly sync lands a file: reads the manifest from the asset event, not from XCom."""

from __future__ import annotations

from airflow.sdk import DAG, Asset, task

with DAG(
    dag_id="eshopbox_orders_downstream",
    schedule=[Asset("eshopbox_orders")],
    tags=["eshopbox", "example"],
) as dag:

    @task
    def summarise(triggering_asset_events=None) -> dict[str, int]:
        import gzip
        import json
        from collections import Counter

        from airflow.sdk import ObjectStoragePath

        statuses: Counter[str] = Counter()
        for events in (triggering_asset_events or {}).values():
            for event in events:
                manifest = event.extra
                path = ObjectStoragePath(manifest["path"])
                with path.open("rb") as raw, gzip.open(raw, "rt") as lines:
                    for line in lines:
                        statuses[str(json.loads(line).get("orderStatus", "")).lower()] += 1
                print(f"{manifest['rows']} rows for [{manifest['window_start']}, {manifest['window_end']})")
        print("order items by status:", dict(statuses))
        return dict(statuses)

    summarise()
