"""The task log under sustained throttling: progress keeps coming, throttling is summarised."""

from __future__ import annotations

import itertools
import logging
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_provider_eshopbox.hooks import _http
from airflow_provider_eshopbox.operators import orders
from airflow_provider_eshopbox.operators.orders import EshopboxOrdersToStorageOperator
from airflow_provider_eshopbox.sandbox import EshopboxSandbox

from .conftest import read_jsonl

# The log's intervals, scaled down thirtyfold so that the test lasts seconds, not minutes: a progress
# line every 1/6 s (5 s in production), a throttling summary at most every 1 s (30 s).
SCALE = 30.0
_LINE = re.compile(r"^(\S+Z) \[\w+\s*\] (.*)$")  # a task log line: time, level, message


def test_under_sustained_throttling_progress_lines_keep_coming_and_summaries_stay_rare(
    sandbox: EshopboxSandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(orders, "_PROGRESS_EVERY", 5.0 / SCALE)
    monkeypatch.setattr(_http.ThrottleSummary.__init__, "__defaults__", (30.0 / SCALE,))
    monkeypatch.setattr(_http, "_limiters", {})  # no rate learned by an earlier test
    monkeypatch.setenv("ESHOPBOX_TOKEN_CACHE_DIR", str(tmp_path / "cache"))
    sandbox.faults.rate_limit(4, 1, routes=["orders_list"])  # the operator is not told
    start, end = datetime(2026, 11, 3, tzinfo=timezone.utc), datetime(2026, 11, 4, tzinfo=timezone.utc)
    destination = tmp_path / "day.jsonl.gz"
    operator = EshopboxOrdersToStorageOperator(
        task_id="throttled", destination=f"file://{destination}", start=start.isoformat(), end=end.isoformat()
    )

    with caplog.at_level(logging.INFO, logger=_http.__name__):
        operator.execute({})  # type: ignore[arg-type]
    # The operator logs through the task logger (to stdout here), the hook through stdlib logging.
    lines = [_LINE.match(line) for line in capsys.readouterr().out.splitlines()]
    log = [(datetime.fromisoformat(m[1]).timestamp(), m[2]) for m in lines if m]

    def when(prefix: str) -> list[float]:
        return [at for at, message in log if message.startswith(prefix)]

    assert {row["orderItemID"] for row in read_jsonl(destination)} == sandbox.truth_order_item_ids(start, end)
    assert sandbox.stats()["by_status"].get("429", 0) > 0, "the server should have throttled"
    progress = when("orders: ")
    told = [r for r in caplog.records if r.getMessage().startswith("Eshopbox requests in the last")]
    summaries = [r.created for r in told]
    (began,), (wrote,) = when("Syncing orders"), when("Wrote ")
    assert wrote - began > 3 * 30.0 / SCALE, "the read should outlast several summary intervals"
    marks = [began, *progress]
    assert max(b - a for a, b in itertools.pairwise(marks)) <= 30.0 / SCALE  # a progress line per "30 s"
    # At most one summary per "30 s"; the last, on closing, tells what is left.
    assert len(summaries) >= 2
    assert all(b - a >= 30.0 / SCALE * 0.99 for a, b in itertools.pairwise(summaries[:-1]))
    # The summaries name the server's limit, once it is learned (not the client's own ramp).
    assert "answered 429" in told[-1].getMessage() and " by learned rate " in told[-1].getMessage()
    # Progress lines say how much of the window is read, never an internal word.
    shares = [int(m.group(1)) for _, msg in log if (m := re.search(r"window read (\d+)%", msg))]
    assert len(shares) == len(progress) and shares == sorted(shares) and shares[-1] == 100, shares
    assert not [msg for _, msg in log if "regions" in msg]
    (start_line,) = [msg for _, msg in log if msg.startswith("Syncing orders")]
    assert ", up to 16 requests in flight, at the rate the server allows (no limit set)" in start_line
