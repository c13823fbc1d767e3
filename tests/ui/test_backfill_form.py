"""A backfill of the hourly orders DAG made in Airflow 3.3.2's backfill dialog, run by the scheduler.

Trigger > Backfill, a range of hourly runs inside the sandbox's data window, Max Active Runs 4, Run
Backfill; then the runs are polled (with a deadline) until all have finished, every one must be
``success``, and the union of their files must be exactly the sandbox's rows for their intervals.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from playwright.sync_api import expect

from deploy_tests.orders_output import HOURLY, parse_instant, read_hourly_output

from .conftest import Airflow, save_dialog_screenshot

HOUR = timedelta(hours=1)
RUNS = 4
RUNS_DEADLINE_S = 300.0


def dialog_content(page: Any) -> Any:
    """The modal itself (its date pickers are popovers with role=dialog too)."""
    return page.locator("[data-scope=dialog][data-part=content]")


def pick(page: Any, dialog: Any, index: int, when: datetime) -> None:
    """Set the ``index``-th date-time field (From, To) through its popover, as a user types it."""
    field = dialog.get_by_test_id("datetime-input").nth(index)
    field.click()
    popover = page.locator("[data-scope=popover][data-part=content][data-state=open]")
    popover.get_by_placeholder("YYYY/MM/DD").fill(when.strftime("%Y/%m/%d"))
    popover.get_by_placeholder("HH:mm").fill(when.strftime("%H:%M"))
    dialog.get_by_role("heading").first.click()  # closes the popover (Escape would close the dialog)
    expect(popover).to_have_count(0)
    expect(field).to_have_text(when.strftime("%b %d, %Y %H:%M"))


def test_backfill_from_the_dialog_runs_green_and_lands_exactly_the_truth(
    page: Any, airflow_server: Airflow
) -> None:
    d, sandbox = airflow_server.deployment, airflow_server.sandbox
    data_start, data_end = sandbox.data_window
    # Hourly runs whose data intervals start at 10:00..13:00 on the window's second day (the dialog's
    # From/To are the first and last data interval start of CronDataIntervalTimetable runs).
    first = data_start + timedelta(days=1, hours=10)
    last = first + (RUNS - 1) * HOUR
    assert data_start <= first and last + HOUR <= data_end

    page.goto(f"/dags/{HOURLY}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = dialog_content(page)
    dialog.get_by_text("Backfill", exact=True).click()
    expect(dialog.get_by_role("heading").first).to_have_text(re.compile(f"Run Backfill.*{HOURLY}"))
    pick(page, dialog, 0, first)
    pick(page, dialog, 1, last)
    expect(dialog.get_by_text(f"{RUNS} runs will be triggered.")).to_be_visible()  # the dialog's dry run
    dialog.locator("input[type=number]").fill(str(RUNS))  # Max Active Runs (the DAG allows 4)
    expect(dialog.get_by_text("Missing Runs", exact=True)).to_be_visible()
    save_dialog_screenshot(page, dialog, "backfill-form.png")

    with page.expect_response(
        lambda r: r.url.endswith("/api/v2/backfills") and r.request.method == "POST"
    ) as created:
        dialog.get_by_role("button", name="Run Backfill").click()
    assert created.value.ok, created.value.text()
    backfill = created.value.json()
    assert (parse_instant(backfill["from_date"]), parse_instant(backfill["to_date"])) == (first, last)
    assert backfill["max_active_runs"] == RUNS and backfill["reprocess_behavior"] == "none", backfill

    runs = d.wait_backfill(HOURLY, RUNS, timeout=RUNS_DEADLINE_S)
    failed = {r["dag_run_id"]: r["state"] for r in runs if r["state"] != "success"}
    assert not failed, f"backfill runs not green: {failed}"

    output = read_hourly_output(d, runs)
    assert output.span == (first, last + HOUR)
    truth = sandbox.truth_order_item_ids(first, last + HOUR)
    assert min(output.rows_per_file) > 0, output.rows_per_file  # each hour has rows to compare
    assert output.ids == truth, (
        f"missing {len(truth - output.ids)}, extra {len(output.ids - truth)} of {len(truth)}"
    )
