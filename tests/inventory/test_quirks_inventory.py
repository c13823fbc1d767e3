"""Inventory readers against the sandbox's quirk modes (issue 22, 1): exact data or EshopboxContractError.

Every case says which of the two it must end in, checks the request count against the guard's
budget (sandbox stats), and on failure that nothing was written.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_eshopbox.exceptions import EshopboxContractError
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from airflow_provider_eshopbox.sync.inventory_guard import INVENTORY_REQUEST_FLOOR
from tests.dagtest import run_dag

DAG_ID = "eshopbox_inventory_snapshot"
ESINS = 30  # one full page of 25 and a short one; with a cap of 10, three pages
EXACT, CONTRACT = "exact", "contract"

# (quirks, snapshot outcome, changed outcome, hook outcome)
CASES = [
    pytest.param({}, EXACT, EXACT, EXACT, id="none"),
    pytest.param({"inventory_per_page_cap": 10}, EXACT, EXACT, EXACT, id="inventory_per_page_cap=10"),
    pytest.param({"ignore_page": True}, CONTRACT, EXACT, CONTRACT, id="ignore_page"),
    pytest.param({"zero_indexed_pages": True}, EXACT, EXACT, EXACT, id="zero_indexed_pages"),
    pytest.param({"error_200": True}, CONTRACT, CONTRACT, CONTRACT, id="error_200"),
    pytest.param({"bad_filter_200_empty": True}, EXACT, EXACT, EXACT, id="bad_filter_200_empty"),
    pytest.param({"ignore_filters": True}, EXACT, CONTRACT, EXACT, id="ignore_filters"),
    pytest.param({"ignore_upper_bound": True}, EXACT, CONTRACT, EXACT, id="ignore_upper_bound"),
]


@pytest.fixture
def sb(airflow_db, monkeypatch, output_dir):
    with EshopboxSandbox(orders=5, products=ESINS, seed=31) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sandbox.connection_json())
        yield sandbox


def _written(output_dir: Path) -> list[dict]:
    rows = []
    for path in sorted(output_dir.rglob("*.jsonl.gz")):
        with gzip.open(path, "rt") as handle:
            rows.extend(json.loads(line) for line in handle)
    return rows


def _key(row: dict) -> tuple:
    return (row["esin"], row["warehouse"], row["sellable"], row["nonSellable"])


def _inventory_requests(sb: EshopboxSandbox) -> int:
    return sb.stats()["by_route"].get("inventory_list", 0)


def _assert_outcome(result, outcome: str, output_dir: Path, truth: list[dict]) -> list[dict]:
    written = _written(output_dir)
    if outcome == EXACT:
        assert result.state == "success", result.log[-3000:]
        assert sorted(map(_key, written)) == sorted(map(_key, truth))
    else:
        assert result.state == "failed"
        assert result.task_states == {"snapshot_inventory": "failed"}  # not retried: AirflowFailException
        assert written == []
    return written


@pytest.mark.parametrize(("quirks", "snapshot", "_changed", "_hook"), CASES)
def test_snapshot_under_quirk(sb, output_dir, capfd, quirks, snapshot, _changed, _hook):
    truth = sb.inventory_rows()
    sb.quirks.configure(**quirks)
    sb.reset_stats()
    result = run_dag(DAG_ID, capfd, run_conf={"mode": "snapshot"})
    _assert_outcome(result, snapshot, output_dir, truth)
    if snapshot == CONTRACT:
        assert "EshopboxContractError" in result.log
    assert _inventory_requests(sb) <= ESINS + INVENTORY_REQUEST_FLOOR
    if snapshot == EXACT:
        pages = -(-ESINS // min(25, quirks.get("inventory_per_page_cap", 25)))
        # the page-0 probe (on a 0-based server it is the first page), the pages, the empty page
        # that proves the end
        probe = 0 if quirks.get("zero_indexed_pages") else 1
        assert _inventory_requests(sb) == probe + pages + 1


@pytest.mark.parametrize(("quirks", "_snapshot", "changed", "_hook"), CASES)
def test_changed_under_quirk(sb, output_dir, capfd, quirks, _snapshot, changed, _hook):
    esins = sorted({row["esin"] for row in sb.inventory_rows()})
    start = datetime.fromtimestamp(int(sb.clock.now()) + 5, tz=timezone.utc)
    sb.clock.advance(5)
    moved = {sb.set_stock(esins[i], "DEL01", sellable=7 + i) for i in (2, 11, 27)}
    end = start + timedelta(seconds=3)
    sb.clock.advance(10)
    assert sb.esins_updated_between(start, end) == moved
    truth = [r for r in sb.inventory_rows() if r["esin"] in moved]
    sb.quirks.configure(**quirks)
    sb.reset_stats()
    result = run_dag(
        DAG_ID, capfd, run_conf={"mode": "changed", "start": start.isoformat(), "end": end.isoformat()}
    )
    _assert_outcome(result, changed, output_dir, truth)
    if changed == CONTRACT:
        assert "EshopboxContractError" in result.log
    # probes (page 0, page 1, maybe page 2, the filter canary) plus the window's slices
    assert _inventory_requests(sb) <= 4 + 4 * INVENTORY_REQUEST_FLOOR


@pytest.mark.parametrize(("quirks", "_snapshot", "_changed", "hook"), CASES)
def test_hook_iter_inventory_pages_under_quirk(sb, quirks, _snapshot, _changed, hook):
    truth = {r["esin"] for r in sb.inventory_rows()}
    sb.quirks.configure(**quirks)
    sb.reset_stats()
    h = EshopboxHook()
    try:
        if hook == EXACT:
            got = [esin for page in h.iter_inventory_pages() for esin in page]
            assert len(got) == len(set(got)) and set(got) == truth
        else:
            with pytest.raises(EshopboxContractError) as info:
                list(h.iter_inventory_pages())
            assert "inventory_list" in info.value.endpoint and info.value.assumption.startswith("INVENTORY")
    finally:
        h.close()
    assert _inventory_requests(sb) <= ESINS + INVENTORY_REQUEST_FLOOR


def test_get_inventory_of_one_esin_under_quirks(sb):
    esin = sorted({r["esin"] for r in sb.inventory_rows()})[4]
    h = EshopboxHook()
    try:
        want = h.get_inventory(esin=esin)
        assert want is not None
        sb.quirks.configure(zero_indexed_pages=True)
        assert h.get_inventory(esin=esin) == want  # page 1 of a 0-based server is empty: page 0 asked
        sb.quirks.configure(ignore_filters=True)
        with pytest.raises(EshopboxContractError, match="INVENTORY_PARAM_ESIN"):
            h.get_inventory(esin=esin)  # the esin filter ignored: other ESINs are not taken
        sb.quirks.configure(error_200=True)
        with pytest.raises(EshopboxContractError):
            h.get_inventory(esin="NO-SUCH-ESIN")  # page 0's 400 served as a 200 error envelope
    finally:
        h.close()
