"""Create-orders test fixtures: a sandbox, its connection, and dag.test() of an example DAG."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


@pytest.fixture(scope="module")
def sandbox():
    with EshopboxSandbox(orders=20, seed=12) as sb:
        yield sb


@pytest.fixture
def conn(sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sandbox.connection_json())
    return sandbox


def load_dag(file_name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{Path(file_name).stem}", EXAMPLE_DAGS / file_name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def run_dag(file_name: str, **test_kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """dag.test() the example DAG; return the DagRun and {task_id: return value}."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dag = load_dag(file_name)
    run = dag.test(**test_kwargs)
    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=run.dag_id, run_id=run.run_id, key="return_value")
        values = {row.task_id: row.value for row in rows}
    return run, values
