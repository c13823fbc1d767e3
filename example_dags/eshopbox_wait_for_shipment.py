"""Wait until an Eshopbox order ships (deferrable sensor), then notify; fail at once if it is cancelled.

Trigger with ``{"customer_order_number": "SHOP-100001"}`` (the default exists in the sandbox's
seed=7 data). The sensor frees its worker slot while waiting: the triggerer polls Eshopbox.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param, task

from airflow_provider_eshopbox.params import conn_id_param
from airflow_provider_eshopbox.sensors.order_status import EshopboxOrderStatusSensor

with DAG(
    dag_id="eshopbox_wait_for_shipment",
    schedule=None,
    catchup=False,
    tags=["eshopbox", "example"],
    params={
        "customer_order_number": Param("SHOP-100001", type="string", minLength=1),
        "conn_id": conn_id_param(),
    },
) as dag:
    wait_for_shipment = EshopboxOrderStatusSensor(
        task_id="wait_for_shipment",
        customer_order_numbers="{{ params.customer_order_number }}",
        target_statuses=["shipped", "delivered"],
        fail_on_statuses=["cancelled"],
        deferrable=True,
        poke_interval=60,
        timeout=timedelta(days=3).total_seconds(),
        eshopbox_conn_id="{{ params.conn_id }}",
    )

    @task
    def notify(result: dict) -> dict:
        """Stand-in for an e-mail/Slack step: logs and returns a small summary."""
        summary = {
            "orders": result["customer_order_numbers"],
            "statuses": result["order_statuses"],
            "message": f"Eshopbox order(s) {', '.join(result['customer_order_numbers'])} shipped.",
        }
        print(summary["message"])
        return summary

    notify(wait_for_shipment.output)
