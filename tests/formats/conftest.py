"""Fixtures for the output-format tests: a sandbox with a few days of every stream, its connection."""

from __future__ import annotations

import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox


@pytest.fixture(scope="module")
def sandbox():
    # 600 orders over a week (about 1,500 item rows), their shipments and returns, 42 products.
    with EshopboxSandbox(orders=600, seed=5) as sb:
        yield sb


@pytest.fixture
def conn(sandbox, monkeypatch, airflow_db):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sandbox.connection_json())
    sandbox.faults.clear()
    sandbox.reset_stats()
    return sandbox
