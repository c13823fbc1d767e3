"""api.WMS_TIME's zone, checked: no stamp a server sends can be later than its own clock (its Date).

Naive IST read as UTC puts every row updated in the last 5 h 30 min up to that much after the
server's clock (quirk ``ist_times``); a list read then fails typed instead of filing rows 5 h 30 min
off. The sandbox sends its own clock as Date, so a test that moves the clock raises no false alarm.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from tests.dagtest import default_connection
from tests.streams.test_streams import land

UTC = timezone.utc


@pytest.fixture
def sb(airflow_db: Path) -> Iterator[EshopboxSandbox]:
    with EshopboxSandbox(orders=120, seed=9) as box, default_connection(box.connection_json()):
        yield box


def _window_to_now(sb: EshopboxSandbox) -> dict[str, str]:
    """From long before the data to an hour past the sandbox's clock: every row, the fresh ones too."""
    now = datetime.fromtimestamp(sb.clock.now(), UTC)
    return {"start": "2020-01-01T00:00:00+00:00", "end": (now + timedelta(hours=1)).isoformat()}


def _touch_shipments(sb: EshopboxSandbox, rows: int = 3) -> None:
    """``rows`` shipments change (updated_at = the sandbox's now) before each page is served."""
    sb.changes_while_paging(updates=rows, routes=["shipments_list"])


def test_ist_stamps_of_fresh_rows_fail_the_read_typed(
    sb: EshopboxSandbox, output_dir: Path, capfd: Any
) -> None:
    sb.quirks.configure(ist_times=True)
    _touch_shipments(sb)
    result, rows = land(output_dir, "shipments", capfd=capfd, **_window_to_now(sb))
    assert result.task_states == {"land": "failed"}, result.task_states
    assert "EshopboxContractError" in result.log and "(WMS_TIME)" in result.log, result.log[-3000:]
    assert "h after the server's own clock" in result.log and "IST runs 5 h 30 min ahead" in result.log
    assert not rows and not list(output_dir.rglob("*.jsonl*"))


def test_fresh_utc_stamps_pass_and_land_exactly(sb: EshopboxSandbox, output_dir: Path, capfd: Any) -> None:
    """The same fresh rows in UTC: no alarm, and the file is the sandbox's truth."""
    _touch_shipments(sb)
    window = _window_to_now(sb)
    result, rows = land(output_dir, "shipments", capfd=capfd, **window)
    assert result.state == "success", result.log[-3000:]
    sb.changes_while_paging()
    newest = max(api.parse_wms_time(r["updated_at"]) for r in rows)
    assert newest >= (sb.clock.now() - 600) * 1000  # fresh rows were there to check
    truth = sb.truth_shipment_rows(datetime(2020, 1, 1, tzinfo=UTC), datetime.fromisoformat(window["end"]))
    strip = lambda r: {k: v for k, v in r.items() if k != "tracking"}  # noqa: E731
    assert sorted(map(strip, rows), key=lambda r: r["id"]) == sorted(truth, key=lambda r: r["id"])


def test_a_sandbox_clock_moved_a_day_ahead_is_the_date_its_replies_carry(
    sb: EshopboxSandbox, output_dir: Path, capfd: Any
) -> None:
    """Stamped a day past this worker's clock, but not past the server's: no alarm."""
    sb.clock.advance(86_400)
    _touch_shipments(sb)
    result, rows = land(output_dir, "shipments", capfd=capfd, **_window_to_now(sb))
    assert result.state == "success", result.log[-3000:]
    newest = max(api.parse_wms_time(r["updated_at"]) for r in rows)
    assert newest > (datetime.now(UTC).timestamp() + 80_000) * 1000


def test_check_server_clock_allows_the_skew_and_no_more() -> None:
    server = 1_800_000_000_000
    api.check_server_clock("x", server + api.SERVER_CLOCK_SKEW_MS, server)
    with pytest.raises(ValueError, match=r"'x' is 5\.5 h after the server's own clock"):
        api.check_server_clock("x", server + 330 * 60_000, server)
    with pytest.raises(ValueError, match=r"'x' is 5\.7 h after"):
        api.check_server_clock("x", server + api.IST_AHEAD_MS + api.SERVER_CLOCK_SKEW_MS, server)
    # further ahead is no zone's doing (a row is filed by its stamp); no Date seen checks nothing
    api.check_server_clock("x", server + api.IST_AHEAD_MS + api.SERVER_CLOCK_SKEW_MS + 1, server)
    api.check_server_clock("x", server + 3_600_000, None)
