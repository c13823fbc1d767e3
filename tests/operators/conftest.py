"""Fixtures for end-to-end operator tests: one sandbox per module, the example DAGs, dag.test() runs."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox

REPO = Path(__file__).resolve().parents[2]


@dataclass
class RunResult:
    """What a dag.test() run left behind: the run state, each task's state and return value."""

    state: str
    task_states: dict[str, str]
    returns: dict[str, Any]


def run_dag(dag_id: str, **test_kwargs: Any) -> RunResult:
    """Parse the example DAGs afresh (env-dependent paths) and run one DAG with dag.test()."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    bag = DagBag(dag_folder=str(REPO / "example_dags"))
    assert not bag.import_errors, bag.import_errors
    dag_run = bag.get_dag(dag_id).test(**test_kwargs)
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == dag_run.run_id)
        ).all()
        xcoms = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.key == "return_value",
            )
        ).all()
        return RunResult(
            state=str(dag_run.state),
            task_states={ti.task_id: str(ti.state) for ti in tis},
            returns={x.task_id: XComModel.deserialize_value(x) for x in xcoms},
        )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def sandbox(airflow_db: Path) -> Iterator[EshopboxSandbox]:
    """20,000 order-item rows over a week: about 120 an hour, about 2,900 a day (the cap is 1,000)."""
    with EshopboxSandbox(order_items=20_000, seed=11) as sb:
        previous = os.environ.get("AIRFLOW_CONN_ESHOPBOX_DEFAULT")
        os.environ["AIRFLOW_CONN_ESHOPBOX_DEFAULT"] = sb.connection_json()
        yield sb
        if previous is None:
            os.environ.pop("AIRFLOW_CONN_ESHOPBOX_DEFAULT", None)
        else:
            os.environ["AIRFLOW_CONN_ESHOPBOX_DEFAULT"] = previous


@pytest.fixture
def output_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the example DAGs write (they read ESHOPBOX_DEMO_OUTPUT when parsed)."""
    out = tmp_path / "out"
    monkeypatch.setenv("ESHOPBOX_DEMO_OUTPUT", f"file://{out}")
    return out


@pytest.fixture(autouse=True)
def _clean_sandbox(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").faults.clear()
