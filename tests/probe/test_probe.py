"""The contract probe against the sandbox: all ok when the sandbox behaves as api.py assumes, and for
each quirk mode exactly the rows that mode breaks say "deviates", within the 50-request budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from airflow_provider_eshopbox import probe
from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from tests.dagtest import default_connection

LISTS = ("SHIPMENTS_LIST", "RETURNS_LIST", "PRODUCTS_LIST")
#: the rows the sandbox cannot show: it sends no rate headers unless rate-limited
SANDBOX_UNKNOWN = {"RATE_HEADERS"}
#: quirk -> (rows that must deviate, rows that may be unknown under it besides SANDBOX_UNKNOWN)
BREAKS: dict[str, tuple[set[str], set[str]]] = {
    "ignore_page": (
        {"ORDERS_PARAM_PAGE", "INVENTORY_PARAM_PAGE", *(f"{n}:page" for n in LISTS)},
        set(),
    ),
    "clamp_per_page=20": (
        {"ORDERS_PER_PAGE_MAX", *(f"{n}:per_page" for n in LISTS)},
        {"ORDERS_HIT_CAP"},  # 20 a page: page 10 is not the cap's last page, the depth is not measured
    ),
    "ignore_filters": (
        {"orders_window_filter:lower", "orders_window_filter:upper", "INVENTORY_PARAM_UPDATED_ON"},
        set(),
    ),
    "ignore_upper_bound": ({"orders_window_filter:upper", "INVENTORY_PARAM_UPDATED_ON"}, set()),
    "bad_filter_200_empty": (
        {
            "ORDERS_UPDATED_AT_FIELD",
            "orders_window_filter:lower",
            "orders_window_filter:upper",
            "ORDERS_BAD_FILTER_4XX",
        },
        set(),
    ),
    "error_200": ({"ORDERS_BAD_FILTER_4XX"}, set()),
    "zero_indexed_pages": (
        {"ORDERS_FIRST_PAGE", "INVENTORY_FIRST_PAGE", *(f"{n}:first_page" for n in LISTS)},
        set(),
    ),
    "inventory_per_page_cap=10": ({"INVENTORY_PER_PAGE_DEFAULT"}, set()),
    "ignore_ids": ({"PRODUCTS_PARAM_IDS", "RETURN_GET"}, set()),
    "offset_times": ({"ORDERS_LIST", "SHIPMENTS_LIST", "RETURNS_LIST"}, set()),
    # no row of this sandbox was updated in the last 5 h 30 min, so none is stamped after its clock:
    # test_ist_times_shows_on_fresh_rows touches some
    "ist_times": (set(), set()),
    # write-side quirks: a read-only probe sees nothing
    "create_200_failed": (set(), set()),
    "create_other_order": (set(), set()),
}


@pytest.fixture(scope="module")
def sb() -> Iterator[EshopboxSandbox]:
    with EshopboxSandbox(seed=7) as sandbox, default_connection(sandbox.connection_json()):
        yield sandbox


def _run(sb: EshopboxSandbox, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, int]:
    sb.reset_stats()
    rc = probe.main(["--conn-id", "eshopbox_default", "--json"])
    report = json.loads(capsys.readouterr().out)
    return rc, report, sb.stats()["requests"]


def _results(report: dict) -> dict[str, str]:
    return {r["assumption"]: r["result"] for r in report["rows"]}


def test_plain_sandbox_all_ok(sb: EshopboxSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    sb.quirks.clear()
    rc, report, requests = _run(sb, capsys)
    results = _results(report)
    assert list(results) == list(probe.row_names())
    assert {n for n, r in results.items() if r != "ok"} == SANDBOX_UNKNOWN, results
    assert rc == 0
    assert requests <= probe.BUDGET and requests == report["requests"]


def test_every_quirk_mode_is_covered() -> None:
    from airflow_provider_eshopbox.sandbox.quirks import NAMES

    assert {q.partition("=")[0] for q in BREAKS} == set(NAMES)


@pytest.mark.parametrize("quirk", sorted(BREAKS))
def test_quirk_breaks_only_its_rows(
    sb: EshopboxSandbox, capsys: pytest.CaptureFixture[str], quirk: str
) -> None:
    from airflow_provider_eshopbox.sandbox.quirks import parse_specs

    sb.quirks.apply(parse_specs([quirk]))
    try:
        rc, report, requests = _run(sb, capsys)
    finally:
        sb.quirks.clear()
    results = _results(report)
    breaks, may_be_unknown = BREAKS[quirk]
    assert {n for n, r in results.items() if r == "deviates"} == breaks, results
    unknown = {n for n, r in results.items() if r == "unknown"}
    assert unknown <= SANDBOX_UNKNOWN | may_be_unknown, results
    assert rc == (1 if breaks else 0)
    assert requests <= probe.BUDGET and requests == report["requests"]


def test_ist_times_shows_on_fresh_rows(capsys: pytest.CaptureFixture[str]) -> None:
    """Every shipment and return updated now, stamped in IST: both lists deviate, naming the zone."""
    with EshopboxSandbox(orders=60, seed=8) as box, default_connection(box.connection_json()):
        box.changes_while_paging(updates=1000, routes=["shipments_list", "returns_list"])
        box.quirks.configure(ist_times=True)
        rc, report, _ = _run(box, capsys)
    results = _results(report)
    assert {n for n, r in results.items() if r == "deviates"} == {"SHIPMENTS_LIST", "RETURNS_LIST"}, results
    assert rc == 1
    said = {row["assumption"]: row["observed"] for row in report["rows"]}
    assert "after the server's own clock" in said["SHIPMENTS_LIST"], said["SHIPMENTS_LIST"]


def test_budget_stops_the_probe(sb: EshopboxSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    sb.quirks.clear()
    sb.reset_stats()
    p = probe.Probe("eshopbox_default", budget=5)
    import asyncio

    rows = asyncio.run(p.run())
    assert p.requests == 5 and sb.stats()["requests"] == 5
    assert rows[-2].assumption == "BUDGET"


def test_cli_subprocess_table(sb: EshopboxSandbox) -> None:
    """``python -m airflow_provider_eshopbox.probe`` as a user runs it: the table, exit 0 (the JSON
    report and the exit codes are checked in process, through the same ``main``)."""
    env = {**os.environ, "AIRFLOW_CONN_ESHOPBOX_DEFAULT": sb.connection_json()}
    cmd = [sys.executable, "-m", "airflow_provider_eshopbox.probe", "--conn-id", "eshopbox_default"]
    table = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert table.returncode == 0, table.stderr
    assert "assumption" in table.stdout and "ORDERS_PARAM_PAGE" in table.stdout
    assert "requests (budget 50)" in table.stdout


def test_cli_missing_connection_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [k for k in os.environ if k.startswith("AIRFLOW_CONN_")]:
        monkeypatch.delenv(name)
    assert probe.main(["--conn-id", "no_such_conn"]) == 2
    captured = capsys.readouterr()
    assert "no_such_conn" in captured.err and captured.out == ""


def test_probe_over_https(capsys: pytest.CaptureFixture[str]) -> None:
    with EshopboxSandbox(seed=7, tls=True) as tls_sb, default_connection(tls_sb.connection_json()):
        assert tls_sb.origin.startswith("https://")
        rc, report, requests = _run(tls_sb, capsys)
    assert rc == 0 and requests <= probe.BUDGET
    assert {n for n, r in _results(report).items() if r != "ok"} == SANDBOX_UNKNOWN


def test_airflow_subcommand(sb: EshopboxSandbox) -> None:
    """Provider info ``cli`` registers ``airflow eshopbox probe`` (Airflow 3.3 loads provider commands)."""
    env = {**os.environ, "AIRFLOW_CONN_ESHOPBOX_DEFAULT": sb.connection_json()}
    airflow = [sys.executable, "-m", "airflow", "eshopbox", "probe", "--json"]
    done = subprocess.run(airflow, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(done.stdout)["rows"]
    assert {r["assumption"] for r in rows} == set(probe.row_names())


def test_rate_headers_seen_and_retries_counted(
    sb: EshopboxSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """A throttled list: the 429s' Retry-After is seen, and every retried request is in the count."""
    sb.quirks.clear()
    sb.faults.rate_limit(1, burst=1, routes=["shipments_list"])
    try:
        rc, report, requests = _run(sb, capsys)
    finally:
        sb.faults.clear()
    assert rc == 0 and _results(report)["RATE_HEADERS"] == "ok"
    assert sb.stats()["by_status"].get("429", 0) >= 1
    assert requests == report["requests"] <= probe.BUDGET  # the sandbox saw exactly what the probe counted
