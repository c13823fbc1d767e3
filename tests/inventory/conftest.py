"""Fixtures for the inventory operator tests: a sandbox, its connection."""

from __future__ import annotations

import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox


@pytest.fixture(scope="module")
def sandbox():
    # 75 ESINs = three full pages of 25 and a final empty page: paging must end exactly.
    with EshopboxSandbox(orders=20, products=75, seed=11) as sb:
        yield sb


@pytest.fixture
def conn(sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sandbox.connection_json())
    return sandbox
