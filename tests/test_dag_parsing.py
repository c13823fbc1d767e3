"""What a DAG file using the provider pays at parse time, on whatever Airflow the package is installed with.

Part of the wheel matrix (``make matrix``): each example DAG parses with no import error, and importing
the operator and sensor modules after ``airflow.sdk`` pulls in no heavy third-party module (their
imports belong in ``execute``). Timings are in ``python -m bench.imports``, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLE_DAGS = Path(__file__).resolve().parent.parent / "example_dags"
MODULES = (
    "airflow_provider_eshopbox.operators.orders",
    "airflow_provider_eshopbox.operators.inventory",
    "airflow_provider_eshopbox.operators.create_orders",
    "airflow_provider_eshopbox.sensors.order_status",
    "airflow_provider_eshopbox.sensors.inventory",
)
HEAVY = {"httpx", "httpcore", "tenacity", "anyio", "h11", "fsspec", "pendulum", "sqlalchemy"}
_CHILD = """
import importlib, json, sys
import airflow.sdk
before = set(sys.modules)
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted({m.split(".")[0] for m in set(sys.modules) - before})))
"""


def test_every_example_dag_parses_with_its_file_name_as_dag_id() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS))
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == sorted(p.stem for p in EXAMPLE_DAGS.glob("eshopbox_*.py"))


def test_operator_and_sensor_modules_pull_in_no_heavy_module() -> None:
    out = subprocess.run([sys.executable, "-c", _CHILD, *MODULES], capture_output=True, text=True, check=True)
    new_top_level = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "airflow_provider_eshopbox" in new_top_level
    assert new_top_level & HEAVY == set()
