"""Test-session setup: a throw-away Airflow home on SQLite, the example DAGs as the DAGs folder.

The environment is set here, before any test module imports Airflow, so every test (and every task
process Airflow starts) sees the same isolated configuration.

Under pytest-xdist (``make test`` runs ``-n``) each worker is its own process and imports this module
itself, so each has its own scratch directory: Airflow home and SQLite metadata DB, token cache and
host-wide rate state, outputs. Nothing here is shared between workers.
"""

from __future__ import annotations

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

os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "example_dags")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
os.environ["ESHOPBOX_TOKEN_CACHE_DIR"] = str(_SESSION_DIR / "token-cache")
os.environ.pop("AIRFLOW_CONN_ESHOPBOX_DEFAULT", None)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    """The per-session (per xdist worker) scratch directory (Airflow home, token cache, outputs)."""
    return _SESSION_DIR


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the SQLite metadata database once per session (per xdist worker: each has its own
    AIRFLOW_HOME); needed only by dag.test() tests."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return Path(os.environ["AIRFLOW_HOME"])


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist (``--dist loadgroup``) keep each test file on one worker, in file order: many files
    share a module-scoped sandbox whose state one test leaves for the next (inventory snapshots, then
    changes). A test that is independent of its file's order may name its own ``xdist_group`` (the
    fault matrix's cells do) and is then scheduled on its own."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
