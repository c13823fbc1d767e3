"""Channel-to-Eshopbox order push: create every order of a JSON Lines file, rejects to another file.

By default a first task writes ``sample_orders`` demo orders (deterministic customerOrderNumbers
``<order_prefix>-00001``...) to ``source`` so the DAG runs end to end, e.g. against the sandbox; set
``generate_sample`` to false to push a file your channel export wrote. Re-running the same input
creates nothing twice: orders that exist already are counted as ``existing``.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_eshopbox.operators.create_orders import EshopboxCreateOrdersOperator
from airflow_provider_eshopbox.params import conn_id_param

OUTPUT = os.environ.get("ESHOPBOX_DEMO_OUTPUT", "file:///tmp/eshopbox")
URL_PATTERN = r"^[a-z][a-z0-9+.-]*://.+[^/]$"
SAMPLE_SKUS = ("TSHIRT-BLU-S", "KURTA-BLU-S", "JEANS-BLU-S", "SNEAKER-BLU-S", "MUG-BLU-S")


def sample_order(number: str, sku: str, *, channel: str = "CH0001", price: int = 999) -> dict[str, Any]:
    """A complete, prepaid, one-line create-order body (eshopbox-api.md §3.3)."""
    address = {
        "customerName": "Asha Rao",
        "addressLine1": "12 MG Road",
        "city": "Pune",
        "state": "Maharashtra",
        "postalCode": "411001",
        "countryCode": "IN",
        "contactPhone": "9000000001",
        "email": "asha@example.com",
    }
    return {
        "externalChannelID": channel,
        "customerOrderNumber": number,
        "orderDate": "2026-11-01 10:00:00",
        "isCOD": "0",
        "paymentType": "Prepaid",
        "taxAmount": 0,
        "subtotal": price,
        "shipChargeAmount": 0,
        "orderTotal": price,
        "balanceDue": 0,
        "thirdPartyShipping": False,
        "shippingAddress": address,
        "billingAddress": dict(address),
        "items": [
            {
                "lineItemSequenceNumber": 1,
                "orderItemID": f"{number}-1",
                "sku": sku,
                "quantity": 1,
                "customerPrice": price,
                "discount": 0,
                "lineItemTotal": price,
            }
        ],
    }


with DAG(
    dag_id="eshopbox_push_orders",
    schedule=None,
    start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
    params={
        "source": Param(
            OUTPUT + "/push/orders.jsonl", type="string", pattern=URL_PATTERN, title="Orders (JSON Lines URL)"
        ),
        "rejects": Param(
            OUTPUT + "/push/rejects.jsonl",
            type="string",
            pattern=URL_PATTERN,
            title="Rejects (JSON Lines URL)",
        ),
        "generate_sample": Param(True, type="boolean", title="Write demo orders to the source first"),
        "sample_orders": Param(10, type="integer", minimum=0, maximum=1000),
        "order_prefix": Param("DEMO", type="string", pattern=r"^[A-Za-z0-9_-]{1,20}$"),
        "max_rejected": Param(0, type="integer", minimum=0, title="Rejected rows tolerated"),
        "conn_id": conn_id_param(),
    },
    tags=["eshopbox", "example"],
) as dag:

    @task
    def write_sample_orders(params: dict[str, Any] | None = None) -> str:
        """Stand-in for a channel export: N demo orders as JSON Lines at ``source`` (if asked)."""
        import json

        from airflow_provider_eshopbox.sync.destination import atomic_open, resolve_destination

        assert params is not None
        source = resolve_destination(params["source"], field="source")
        if not params["generate_sample"]:
            return str(source)
        with atomic_open(source) as out:
            for i in range(1, params["sample_orders"] + 1):
                order = sample_order(f"{params['order_prefix']}-{i:05d}", SAMPLE_SKUS[i % len(SAMPLE_SKUS)])
                out.write(json.dumps(order).encode() + b"\n")
        return str(source)

    write_sample_orders() >> EshopboxCreateOrdersOperator(
        task_id="push_orders",
        source="{{ params.source }}",
        rejects="{{ params.rejects }}",
        max_rejected="{{ params.max_rejected }}",
        eshopbox_conn_id="{{ params.conn_id }}",
    )
