"""Create-orders test fixtures: a sandbox, its connection."""

from __future__ import annotations

import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox


@pytest.fixture(scope="module")
def sandbox():
    with EshopboxSandbox(orders=20, seed=12) as sb:
        yield sb


@pytest.fixture
def conn(sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sandbox.connection_json())
    return sandbox
