"""Daily orders to S3 as typed Parquet in a Hive-style layout, through an AWS connection named in the URL.

``s3://aws_default@eshopbox-lake/orders/dt=2026-11-02/orders.parquet``: the part before ``@`` is
the Airflow connection (type ``aws``) whose credentials, region and ``endpoint_url`` the write uses;
without it the task fails before any request, saying so. The ``dt=`` directory gives readers a
partition column (DuckDB: ``read_parquet('s3://eshopbox-lake/orders/*/*.parquet',
hive_partitioning = true)``); glob on the suffix, which a run's hidden ``.<name>.tmp-<hex>``
temporary never matches. Needs ``apache-airflow-providers-amazon[s3fs]`` and the ``[parquet]`` extra.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from airflow.sdk import DAG, CronDataIntervalTimetable

from airflow_provider_eshopbox.operators.orders import EshopboxOrdersToStorageOperator

# The connection id and bucket: ESHOPBOX_S3_OUTPUT, e.g. s3://my_aws_conn@my-bucket/eshopbox.
OUTPUT = os.environ.get("ESHOPBOX_S3_OUTPUT", "s3://aws_default@eshopbox-lake")

with DAG(
    dag_id="eshopbox_orders_to_s3",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),  # runs cover [yesterday, today)
    start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
    catchup=False,
    default_args={"retries": 2},
    tags=["eshopbox", "example"],
) as dag:
    EshopboxOrdersToStorageOperator(
        task_id="orders_to_s3",
        destination=OUTPUT + "/orders/dt={{ data_interval_start | ds }}/orders.parquet",
    )
