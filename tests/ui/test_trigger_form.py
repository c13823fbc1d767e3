"""The resync DAG's trigger form in Airflow's React UI: its fields, and bad values refused."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from .conftest import SCREENSHOTS

DAG_ID = "eshopbox_orders_resync"


def open_trigger_form(page: Any) -> Any:
    page.goto(f"/dags/{DAG_ID}")
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
    for text in ("From (inclusive, UTC)", "To (exclusive, UTC)", "Destination URL"):
        expect(dialog.get_by_text(text).first).to_be_visible()
    expect(dialog.get_by_text("ISO-8601 date and time, e.g. 2026-11-02T00:00:00+00:00").first).to_be_visible()
    expect(dialog.get_by_text("A URL with a scheme, not ending in /").first).to_be_visible()
    expect(dialog.locator("#element_destination")).to_have_value(re.compile(r"^file://.+/orders\.jsonl\.gz$"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("() => document.querySelector('[role=dialog]').scrollHeight") + 200
    page.set_viewport_size({"width": 1100, "height": max(900, int(height))})
    dialog.screenshot(path=str(SCREENSHOTS / "trigger-form.png"), scale="css")


def test_bad_destination_is_refused_and_no_run_is_created(page: Any) -> None:
    before = run_count(page)
    dialog = open_trigger_form(page)
    dialog.locator("#element_destination").fill("not-a-url")
    dialog.get_by_role("button", name="Trigger").click()
    expect(dialog.get_by_text("Invalid input for param destination").first).to_be_visible()
    assert run_count(page) == before


def test_a_start_that_is_not_a_date_time_is_refused(page: Any) -> None:
    """Airflow does not check format: date-time; the declared pattern makes it refuse "yesterday"."""
    before = run_count(page)
    reply = page.request.post(
        f"/api/v2/dags/{DAG_ID}/dagRuns", data={"logical_date": None, "conf": {"start": "yesterday"}}
    )
    assert reply.status == 400, reply.text()
    assert "Invalid input for param start" in reply.text()
    assert run_count(page) == before
