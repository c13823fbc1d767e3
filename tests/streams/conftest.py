"""Fixtures for the stream operator tests: a sandbox with a few thousand shipments, its connection."""

from __future__ import annotations

import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox


@pytest.fixture(scope="module")
def sandbox():
    # 2,000 orders: about 1,600 shipments (16 pages of 100), 220 returns, 112 products.
    with EshopboxSandbox(orders=2000, seed=7) as sb:
        yield sb


@pytest.fixture
def conn(sandbox, monkeypatch, airflow_db):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sandbox.connection_json())
    sandbox.faults.clear()
    sandbox.changes_while_paging()
    sandbox.reset_stats()
    yield sandbox
    sandbox.faults.clear()
    sandbox.changes_while_paging()
