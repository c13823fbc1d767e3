"""Test-session setup: a throw-away Airflow home on SQLite, the example DAGs as the DAGs folder.

The environment is set here, before any test module imports Airflow, so every test (and every task
process Airflow starts) sees the same isolated configuration.

Under pytest-xdist (``make test`` runs ``-n``) each worker is its own process and imports this module
itself, so each has its own scratch directory: Airflow home and SQLite metadata DB, token cache and
host-wide rate state, outputs. Nothing here is shared between workers.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# PYTEST_XDIST_WORKER ("gw0", "gw1", ...) is set before a worker imports conftest; the name only
# makes a leftover directory traceable, mkdtemp alone already makes it unique per process.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
_SESSION_DIR = Path(tempfile.mkdtemp(prefix=f"eshopbox-tests-{_WORKER}-"))
# One directory for the whole run, made by the process that imports this first (the xdist controller:
# its workers inherit the variable): what the workers share, a migrated metadata DB to copy.
_RUN_OWNER = "ESHOPBOX_TESTS_RUN_DIR" not in os.environ
if _RUN_OWNER:
    os.environ["ESHOPBOX_TESTS_RUN_DIR"] = tempfile.mkdtemp(prefix="eshopbox-tests-run-")
_RUN_DIR = Path(os.environ["ESHOPBOX_TESTS_RUN_DIR"])

os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "example_dags")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
os.environ["ESHOPBOX_TOKEN_CACHE_DIR"] = str(_SESSION_DIR / "token-cache")
os.environ.pop("AIRFLOW_CONN_ESHOPBOX_DEFAULT", None)
# The example DAGs write under ESHOPBOX_DEMO_OUTPUT, /tmp/eshopbox when unset: one path for every
# worker, where two workers running one DAG in the same interval overwrote each other's file (an
# inventory test read the other's and counted ESINs "lost"). Each worker writes under its own;
# ``output_dir`` gives a test its own.
os.environ["ESHOPBOX_DEMO_OUTPUT"] = f"file://{_SESSION_DIR / 'out'}"


@pytest.fixture(scope="session")
def session_dir() -> Path:
    """The per-session (per xdist worker) scratch directory (Airflow home, token cache, outputs)."""
    return _SESSION_DIR


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata database in this session's AIRFLOW_HOME (each xdist worker has its
    own); needed only by dag.test() tests. The first worker migrates (seconds of CPU) and leaves a
    copy in the run's directory; the others copy that under the same lock."""
    home = Path(os.environ["AIRFLOW_HOME"])
    template = _RUN_DIR / "airflow.db"
    with (_RUN_DIR / "airflow.db.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if template.exists():
            home.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(template, home / "airflow.db")
        else:
            subprocess.run(
                [sys.executable, "-m", "airflow", "db", "migrate"],
                check=True,
                capture_output=True,
                env=os.environ.copy(),
            )
            shutil.copyfile(home / "airflow.db", template.with_suffix(".tmp"))
            template.with_suffix(".tmp").rename(template)
    return home


@pytest.fixture
def output_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the example DAGs write (they read ESHOPBOX_DEMO_OUTPUT when parsed)."""
    out = tmp_path / "out"
    monkeypatch.setenv("ESHOPBOX_DEMO_OUTPUT", f"file://{out}")
    return out


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Leave nothing behind in /tmp: the Airflow home, token cache and outputs of this session (each
    xdist worker, and the controller, removes its own)."""
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)
    if _RUN_OWNER:
        shutil.rmtree(_RUN_DIR, ignore_errors=True)


# Test files (or cells) of 20 s and more in ``--durations=0`` under xdist (2026-12-06), longest first:
# ``make test`` passes --no-loadscope-reorder, so xdist hands out groups in collection order, and these
# start first instead of ending the run alone on one worker. A stale entry only costs balance.
_LONG_FIRST = (
    "tests/create_orders/test_create_orders.py",
    "tests/streams/test_changes_and_faults.py",
    "tests/test_readme.py",
    "tests/operators/test_orders_e2e.py",
    "tests/operators/test_orders_quirks.py",
    "tests/streams/test_list_quirks.py",
    "tests/evidence/test_fault_matrix.py::test_fault_cell[push-429",
    "tests/evidence/test_fault_matrix.py::test_fault_cell[orders-429",
    "tests/streams/test_streams.py",
    "tests/probe/test_probe.py",
    "tests/operators/test_slicing.py",
    "tests/inventory/test_quirks_inventory.py",
    "tests/create_orders/test_ambiguous.py",
    "tests/test_conn_choice.py",
    "tests/hook/test_transport.py",
    "tests/sensors/test_slow_servers.py",
    "tests/sensors/test_e2e_orders.py",
    "tests/operators/test_orders_hardening.py",
)


def _rank(nodeid: str) -> int:
    return next((i for i, prefix in enumerate(_LONG_FIRST) if nodeid.startswith(prefix)), len(_LONG_FIRST))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist (``--dist loadgroup``) keep each test file on one worker, in file order: many files
    share a module-scoped sandbox whose state one test leaves for the next (inventory snapshots, then
    changes). A test that is independent of its file's order may name its own ``xdist_group`` (the
    fault matrix's cells do) and is then scheduled on its own. The long groups go first (a stable
    sort: each file keeps its order)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
    items.sort(key=lambda item: _rank(item.nodeid))
