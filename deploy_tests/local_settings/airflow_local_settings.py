"""Cluster policy of the deployment test (imported by every Airflow process via PYTHONPATH).

Only timing changes, so a test run takes minutes and not hours; the example DAG files stay as shipped:

* the example sensors poll every second instead of every 1-5 minutes (the triggerer's poll interval is
  the sensor's ``poke_interval``), so "ship the order, then the deferred sensor completes" is quick;
* no retries: a task that fails must fail the run at once (a retry would hide a flaky success and
  delay the runs that fail on purpose by the examples' one-minute retry delay); except in
  ``deploytest_retries``, which is about retries (its own delay is 2 s).
"""

from __future__ import annotations

SENSOR_POKE_INTERVAL = 1.0


def task_policy(task) -> None:
    if getattr(task, "dag_id", None) != "deploytest_retries":
        task.retries = 0
    if task.task_id in ("wait_for_shipment", "wait_for_stock"):
        task.poke_interval = SENSOR_POKE_INTERVAL
