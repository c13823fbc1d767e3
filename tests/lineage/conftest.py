"""OpenLineage tests run only with the provider installed (``pip install -e .[openlineage]``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow.providers.openlineage", reason="the openlineage extra is not installed")

from airflow_provider_eshopbox.sandbox import EshopboxSandbox


@pytest.fixture(scope="module")
def sandbox():
    with EshopboxSandbox(orders=600, seed=5) as sb:
        yield sb


@pytest.fixture
def conn(sandbox, monkeypatch, airflow_db):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sandbox.connection_json())
    return sandbox


@pytest.fixture
def lineage_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Send OpenLineage events to a file; yields a function returning the events emitted so far."""
    from airflow.providers.openlineage import conf
    from airflow.providers.openlineage.plugins.listener import get_openlineage_listener

    events_file = tmp_path / "events.jsonl"
    monkeypatch.setenv(
        "AIRFLOW__OPENLINEAGE__TRANSPORT",
        json.dumps({"type": "file", "log_file_path": str(events_file), "append": True}),
    )
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "False")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "eshopbox-tests")

    def clear() -> None:
        for name in dir(conf):
            cached = getattr(getattr(conf, name), "cache_clear", None)
            if cached is not None:
                cached()
        listener = get_openlineage_listener()
        adapter = getattr(listener, "adapter", None)
        if adapter is not None:
            adapter._client = None

    clear()
    # Airflow loads plugins once per process: if an earlier test loaded them without a transport,
    # the OpenLineage plugin registered no listener. Register it for this test.
    from airflow.sdk.listener import get_listener_manager

    manager = get_listener_manager()
    listener = get_openlineage_listener()
    added = not manager.pm.is_registered(listener)
    if added:
        manager.add_listener(listener)

    def events() -> list[dict[str, Any]]:
        if not events_file.exists():
            return []
        return [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]

    yield events
    if added:
        manager.pm.unregister(listener)
    monkeypatch.undo()
    clear()
