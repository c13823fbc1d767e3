"""The ``[start, end)`` time window of a sync: from templated arguments or the run's data interval.

Validated before any API call, with messages that say what to change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_eshopbox.exceptions import EshopboxConfigError

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)  # updatedAt counts milliseconds from here
_MS = timedelta(milliseconds=1)
_ZERO_LENGTH_HINT = (
    "Airflow 3's default cron schedules give data_interval_start == data_interval_end; schedule the DAG "
    'with CronDataIntervalTimetable("0 * * * *", timezone="UTC") or pass explicit start/end'
)


NO_DATA_INTERVAL_MESSAGE = (
    "this run has no data interval: it was triggered without a logical date. Trigger it again with a "
    "logical date (the trigger form's 'Logical date', or a backfill) to read that interval, or pass "
    "explicit start and end (the example DAG eshopbox_orders_resync takes them from its form). "
    "Not retried: a retry would fail the same way"
)


class EshopboxNoDataIntervalError(EshopboxConfigError, AirflowFailException):
    """A run without a data interval (manual, no logical date) and no explicit window: fail, never retry."""


@dataclass(frozen=True)
class Window:
    """A half-open UTC window; ``start_ms``/``end_ms`` are what the API filters on (epoch ms)."""

    start: datetime
    end: datetime

    @property
    def start_ms(self) -> int:
        return _to_ms(self.start)

    @property
    def end_ms(self) -> int:
        return _to_ms(self.end)

    def as_manifest(self) -> dict[str, str]:
        return {"window_start": self.start.isoformat(), "window_end": self.end.isoformat()}


def _to_ms(value: datetime) -> int:
    """The first whole millisecond at or after ``value``: a row at ``t`` ms is in ``[start, end)`` exactly
    when ``_to_ms(start) <= t < _to_ms(end)``. Exact (no float)."""
    return -((_EPOCH - value) // _MS)


def parse_instant(value: Any, *, field: str) -> datetime:
    """An aware UTC datetime from a datetime or an ISO-8601 string (naive values are taken as UTC)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise EshopboxConfigError(
                f"{field}={value!r} is not an ISO-8601 date-time; use e.g. 2026-11-01T00:00:00+00:00",
                field=field,
            ) from None
    else:
        raise EshopboxConfigError(
            f"{field} must be an ISO-8601 string or a datetime, got {type(value).__name__} {value!r}",
            field=field,
        )
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        utc = parsed.astimezone(timezone.utc)
    except OverflowError:
        raise EshopboxConfigError(
            f"{field}={value!r} is out of range once converted to UTC (years 1 to 9999)", field=field
        ) from None
    # A plain datetime (not pendulum's subclass, whose comparisons with stdlib values misbehave).
    return datetime(*utc.timetuple()[:6], utc.microsecond, tzinfo=timezone.utc)


def parse_lookback(value: Any) -> timedelta:
    """``lookback`` as a timedelta: a timedelta, or a number of seconds."""
    if value is None:
        return timedelta(0)
    if isinstance(value, timedelta):
        lookback = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise EshopboxConfigError(
                f"lookback must be a finite number of seconds, got {value!r}", field="lookback"
            )
        try:
            lookback = timedelta(seconds=value)
        except OverflowError:
            raise EshopboxConfigError(
                f"lookback={value!r:.40} is too large: give a few years at most, as seconds or a timedelta",
                field="lookback",
            ) from None
    else:
        raise EshopboxConfigError(f"lookback must be a timedelta or seconds, got {value!r}", field="lookback")
    if lookback < timedelta(0):
        raise EshopboxConfigError(f"lookback must not be negative, got {lookback}", field="lookback")
    return lookback


def resolve_window(start: Any, end: Any, lookback: Any, context: Any) -> Window:
    """Explicit start/end win; otherwise the run's data interval. ``lookback`` widens the start."""
    if start in (None, "") or end in (None, ""):
        interval_start = context.get("data_interval_start") if context else None
        interval_end = context.get("data_interval_end") if context else None
        if interval_start is None or interval_end is None:
            raise EshopboxNoDataIntervalError(NO_DATA_INTERVAL_MESSAGE, field="start")
        start = interval_start if start in (None, "") else start
        end = interval_end if end in (None, "") else end
    start_at, back = parse_instant(start, field="start"), parse_lookback(lookback)
    if start_at < _EPOCH:
        raise EshopboxConfigError(
            f"start {start_at.isoformat()} is before 1970-01-01, where updatedAt begins", field="start"
        )
    if back > start_at - _EPOCH:
        raise EshopboxConfigError(
            f"lookback={lookback!r} reaches before 1970-01-01 (start {start_at.isoformat()} minus {back}), "
            "where updatedAt begins: make it smaller",
            field="lookback",
        )
    window_start = start_at - back
    window_end = parse_instant(end, field="end")
    if window_end == window_start:
        raise EshopboxConfigError(
            f"the window is empty: start == end == {window_end.isoformat()}. {_ZERO_LENGTH_HINT}"
        )
    if window_end < window_start:
        raise EshopboxConfigError(
            f"start {window_start.isoformat()} is after end {window_end.isoformat()}: swap them",
            field="start",
        )
    window = Window(window_start, window_end)
    if window.start_ms == window.end_ms:
        raise EshopboxConfigError(
            f"the window [{window_start.isoformat()}, {window_end.isoformat()}) holds no whole millisecond, "
            "and updatedAt is in milliseconds: make it at least 1 ms long",
            field="end",
        )
    return window
