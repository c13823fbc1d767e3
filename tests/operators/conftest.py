"""Fixtures for end-to-end orders tests: one sandbox per module, where the example DAGs write."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from tests.dagtest import default_connection

REPO = Path(__file__).resolve().parents[2]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def sandbox(airflow_db: Path) -> Iterator[EshopboxSandbox]:
    """20,000 order-item rows over a week: about 120 an hour, about 2,900 a day (the cap is 1,000)."""
    with EshopboxSandbox(order_items=20_000, seed=11) as sb, default_connection(sb.connection_json()):
        yield sb


@pytest.fixture(autouse=True)
def _clean_sandbox(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").faults.clear()
