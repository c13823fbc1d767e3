"""Wait until a SKU is back in stock (deferrable inventory sensor), then alert.

Trigger with ``{"sku": "TSHIRT-BLU-S"}``; the sensor waits for 200 sellable units in total
(``below=True`` turns it into a low-stock alert). The sensor frees its worker slot while waiting:
the triggerer polls Eshopbox.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param, task

from airflow_provider_eshopbox.params import conn_id_param
from airflow_provider_eshopbox.sensors.inventory import EshopboxInventorySensor

with DAG(
    dag_id="eshopbox_restock_alert",
    schedule=None,
    catchup=False,
    tags=["eshopbox", "example"],
    params={
        "sku": Param("TSHIRT-BLU-S", type="string", minLength=1),
        "conn_id": conn_id_param(),
    },
) as dag:
    wait_for_stock = EshopboxInventorySensor(
        task_id="wait_for_stock",
        sku="{{ params.sku }}",
        threshold=200,
        deferrable=True,
        poke_interval=300,
        timeout=timedelta(days=7).total_seconds(),
        eshopbox_conn_id="{{ params.conn_id }}",
    )

    @task
    def alert(result: dict) -> str:
        """Stand-in for an e-mail/Slack step."""
        message = f"{result['sku']} is back: {result['sellable']} sellable (threshold {result['threshold']})."
        print(message)
        return message

    alert(wait_for_stock.output)
