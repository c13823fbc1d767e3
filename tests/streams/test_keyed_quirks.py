"""read_by_keys against ignore_ids (issue 22, 1): exact data or EshopboxContractError, nothing written."""

from __future__ import annotations

import pytest

from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from tests.streams.test_streams import land


@pytest.fixture
def small(airflow_db, monkeypatch):
    with EshopboxSandbox(orders=200, seed=5) as sb:
        monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sb.connection_json())
        yield sb


@pytest.mark.parametrize("quirk", [False, True], ids=["honoured", "ignore_ids"])
@pytest.mark.parametrize("stream", ["products", "returns"])
def test_keyed_read_is_exact_or_fails_typed(small, output_dir, capfd, stream, quirk):
    sb = small
    if stream == "products":
        wanted = sorted(p["sku"] for p in sb.products())[:2]
        route, budget = "products_list", 1
    else:
        wanted = sorted(sb.truth_returns())[:2]
        route, budget = "return_get", len(wanted)
    if quirk:
        sb.quirks.configure(ignore_ids=True)
    sb.reset_stats()
    result, rows = land(output_dir, stream, keys=",".join(wanted))
    assert sb.stats()["by_route"][route] <= budget
    if quirk:
        assert result.state == "failed"
        assert not rows and not list(output_dir.rglob("*.jsonl*"))
    else:
        assert result.state == "success", result.task_states
        key = "sku" if stream == "products" else "customerReturnNumber"
        assert sorted(r[key] for r in rows) == wanted
