"""Run an example DAG with ``dag.test()`` and collect what it left: states, return values, output.

Shared by every end-to-end test. Example DAG files are parsed afresh on each call because they
read environment variables (output location) at parse time; each file's name is its dag_id.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

EXAMPLE_DAGS = Path(__file__).resolve().parent.parent / "example_dags"


@dataclass
class DagTestResult:
    """What one dag.test() run left behind."""

    dag_run: Any
    state: str
    task_states: dict[str, str]
    returns: dict[str, Any]
    log: str  # everything the run printed: task logs, tracebacks with the error messages


def load_example_dag(dag_id: str, **task_attrs: dict[str, Any]) -> Any:
    """Parse ``example_dags/<dag_id>.py``; ``task_attrs`` overrides attributes per task id."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    for task_id, attrs in task_attrs.items():
        for key, value in attrs.items():
            setattr(dag.get_task(task_id), key, value)
    return dag


def example_dag_module(dag_id: str) -> Any:
    """``example_dags/<dag_id>.py`` imported as a module, for the helpers it defines."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"example_dag_{dag_id}", EXAMPLE_DAGS / f"{dag_id}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def task_instance(result: DagTestResult, task_id: str) -> Any:
    """The task instance of ``task_id`` in the run ``result`` came from."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == result.dag_run.dag_id,
                TaskInstance.run_id == result.dag_run.run_id,
                TaskInstance.task_id == task_id,
            )
        ).one()


def run_dag(dag: Any, capfd: pytest.CaptureFixture[str] | None = None, **test_kwargs: Any) -> DagTestResult:
    """``dag.test(**test_kwargs)`` for a DAG object or an example dag_id."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    if isinstance(dag, str):
        dag = load_example_dag(dag)
    if capfd is not None:
        capfd.readouterr()
    dag_run = dag.test(**test_kwargs)
    log = "".join(capfd.readouterr()) if capfd is not None else ""
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dag_run.run_id
            )
        ).all()
        xcoms = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.key == "return_value",
            )
        ).all()
        return DagTestResult(
            dag_run=dag_run,
            state=str(dag_run.state),
            task_states={ti.task_id: str(ti.state) for ti in tis},
            returns={x.task_id: XComModel.deserialize_value(x) for x in xcoms},
            log=log,
        )


@contextlib.contextmanager
def default_connection(connection_json: str) -> Iterator[None]:
    """``AIRFLOW_CONN_ESHOPBOX_DEFAULT`` set for a block (module-scoped fixtures cannot monkeypatch)."""
    previous = os.environ.get("AIRFLOW_CONN_ESHOPBOX_DEFAULT")
    os.environ["AIRFLOW_CONN_ESHOPBOX_DEFAULT"] = connection_json
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("AIRFLOW_CONN_ESHOPBOX_DEFAULT", None)
        else:
            os.environ["AIRFLOW_CONN_ESHOPBOX_DEFAULT"] = previous
