"""Trigger forms in Airflow's React UI: the resync DAG's fields, bad values refused, and the connection
choice (``conn_id``) reaching the task of a run triggered from the form."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from airflow_provider_eshopbox.params import CONN_ID_DESCRIPTION, CONN_ID_TITLE

from .conftest import Airflow, save_dialog_screenshot

DAG_ID = "eshopbox_orders_resync"


def open_trigger_form(page: Any, dag_id: str = DAG_ID) -> Any:
    page.goto(f"/dags/{dag_id}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Run Parameters").first).to_be_visible()
    return dialog


def run_count(page: Any) -> int:
    reply = page.request.get(f"/api/v2/dags/{DAG_ID}/dagRuns")
    assert reply.ok, reply.text()
    return int(reply.json()["total_entries"])


def test_fields_titles_and_help(page: Any) -> None:
    dialog = open_trigger_form(page)
    for text in ("From (inclusive, UTC)", "To (exclusive, UTC)", "Destination URL", CONN_ID_TITLE):
        expect(dialog.get_by_text(text).first).to_be_visible()
    expect(dialog.get_by_text("ISO-8601 date and time, e.g. 2026-11-02T00:00:00+00:00").first).to_be_visible()
    expect(dialog.get_by_text("A URL with a scheme, not ending in /").first).to_be_visible()
    expect(dialog.locator("#element_destination")).to_have_value(re.compile(r"^file://.+/orders\.jsonl\.gz$"))
    # The connection choice: a text field holding the default connection, with its help.
    expect(dialog.locator("#element_conn_id")).to_have_value("eshopbox_default")
    expect(dialog.get_by_text(CONN_ID_DESCRIPTION).first).to_be_visible()
    save_dialog_screenshot(page, dialog, "trigger-form.png")


@pytest.mark.parametrize(
    ("param", "value"),
    [("conn_id", "eshopbox default"), ("destination", "not-a-url")],  # a spaced conn id; no scheme
)
def test_a_bad_value_is_refused_and_no_run_is_created(page: Any, param: str, value: str) -> None:
    before = run_count(page)
    dialog = open_trigger_form(page)
    dialog.locator(f"#element_{param}").fill(value)
    dialog.get_by_role("button", name="Trigger").click()
    expect(dialog.get_by_text(f"Invalid input for param {param}").first).to_be_visible()
    assert run_count(page) == before


def test_a_connection_that_does_not_exist_fails_the_run_at_once_saying_so(
    page: Any, airflow_server: Airflow
) -> None:
    """Triggered from the form of a DAG that configures retries: the task fails once, not retried,
    and its log names the conn id and what to do. (Unpausing the DAG on trigger also starts its
    scheduled snapshot, through eshopbox_default, so the sandbox's request count proves nothing here;
    tests/test_conn_choice.py shows no request is sent.)"""
    d = airflow_server.deployment
    dag_id, task_id, conn_id = "eshopbox_inventory_snapshot", "snapshot_inventory", "eshopbox_typo"
    dialog = open_trigger_form(page, dag_id)
    dialog.locator("#element_conn_id").fill(conn_id)
    with page.expect_response(
        lambda r: r.url.endswith(f"/dags/{dag_id}/dagRuns") and r.request.method == "POST"
    ) as created:
        dialog.get_by_role("button", name="Trigger").click()
    assert created.value.ok, created.value.text()
    run = created.value.json()
    assert run["conf"]["conn_id"] == conn_id, run
    assert d.wait_run(dag_id, run["dag_run_id"], timeout=180) == "failed"
    (ti,) = [t for t in d.task_instances(dag_id, run["dag_run_id"]) if t["task_id"] == task_id]
    assert ti["state"] == "failed" and ti["try_number"] == 1 and ti["max_tries"] >= 1, ti
    log = d.task_log(dag_id, run["dag_run_id"], task_id, 1)
    assert f"Eshopbox connection {conn_id!r} does not exist" in log, log[-3000:]
    assert "Admin > Connections" in log


def test_a_start_that_is_not_a_date_time_is_refused(page: Any) -> None:
    """Airflow does not check format: date-time; the declared pattern makes it refuse "yesterday"."""
    before = run_count(page)
    reply = page.request.post(
        f"/api/v2/dags/{DAG_ID}/dagRuns", data={"logical_date": None, "conf": {"start": "yesterday"}}
    )
    assert reply.status == 400, reply.text()
    assert "Invalid input for param start" in reply.text()
    assert run_count(page) == before
