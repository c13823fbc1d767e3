"""Polling loop shared by the Eshopbox triggers: absolute deadline, error policy, one hook per run.

A subclass implements ``poll(hook)``: return a terminal event payload (``status`` ``success`` or
``failed``) or ``None`` to keep waiting. The loop adds ``timeout`` and ``error`` events.

Error policy (one place, both triggers):
* ``EshopboxAuthError``, ``EshopboxConfigError`` and API answers 401/403 -> ``error`` event, stop
  (retrying cannot fix credentials).
* any other ``EshopboxApiError`` (429 after the transport's Retry-After retries, 5xx, no response,
  odd body) -> logged, then the normal poll interval is slept: no crash, no busy loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_eshopbox.exceptions import (
    EshopboxApiError,
    EshopboxAuthError,
    EshopboxConfigError,
    EshopboxContractError,
    EshopboxDeadlineError,
    EshopboxError,
)

if TYPE_CHECKING:
    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook

SUCCESS = "success"
FAILED = "failed"
TIMEOUT = "timeout"
ERROR = "error"
EVENT_STATUSES = (SUCCESS, FAILED, TIMEOUT, ERROR)
AUTH_STATUSES = (401, 403)
MIN_POLL_INTERVAL = 0.05
#: a "still waiting" line at least this often even when nothing changed (and at every change)
STILL_WAITING_LOG_SECONDS = 300.0


def _last_seen(observed: dict[str, Any]) -> str:
    """``k=v, ...`` of the last observations, or "nothing yet"."""
    seen = ", ".join(f"{k}={v!r}" for k, v in observed.items() if v not in (None, {}, []))
    return seen or "nothing yet"


#: a poll started just before the deadline may still take this long (a slow server cannot hold a
#: trigger for longer; a deadline already passed still gets one look at the state)
MIN_POLL_SECONDS = 5.0


def deadline_from_timeout(timeout_seconds: float, now: float | None = None) -> float:
    """Absolute epoch-seconds deadline ``timeout_seconds`` from ``now`` (default: time.time())."""
    return (time.time() if now is None else now) + float(timeout_seconds)


class EshopboxPollingTrigger(BaseTrigger):
    """Base of the Eshopbox triggers: polls until ``poll`` decides, or ``deadline`` (epoch seconds).

    Serializes only plain values: the subclass's ids/thresholds, ``deadline``, ``poll_interval``
    and ``eshopbox_conn_id`` (never a secret or token: the connection is read in ``run``).
    """

    def __init__(self, *, deadline: float, poll_interval: float, eshopbox_conn_id: str) -> None:
        super().__init__()
        self.deadline = float(deadline)
        self.poll_interval = max(float(poll_interval), MIN_POLL_INTERVAL)
        self.eshopbox_conn_id = eshopbox_conn_id

    # --- subclass API --------------------------------------------------------------------------
    def _kwargs(self) -> dict[str, Any]:
        """The subclass's own serializable kwargs."""
        raise NotImplementedError

    def ids(self) -> dict[str, Any]:
        """Identifying fields copied into every event (e.g. the order numbers or the SKU)."""
        raise NotImplementedError

    async def poll(self, hook: EshopboxHook) -> dict[str, Any] | None:
        """One check: a terminal payload (``status`` success/failed, ``message``, observations) or None."""
        raise NotImplementedError

    def observed(self) -> dict[str, Any]:
        """Last observations, added to timeout/error events (empty before the first good poll)."""
        return {}

    def describe(self) -> str:
        """Human text of what is awaited, for the timeout message."""
        raise NotImplementedError

    # --- machinery -----------------------------------------------------------------------------
    def serialize(self) -> tuple[str, dict[str, Any]]:
        cls = type(self)
        return (
            f"{cls.__module__}.{cls.__qualname__}",
            {
                **self._kwargs(),
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
                "eshopbox_conn_id": self.eshopbox_conn_id,
            },
        )

    def _event(self, status: str, message: str, **extra: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, "message": message, **self.ids(), **extra})

    def _make_hook(self) -> EshopboxHook:
        from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook

        return EshopboxHook(eshopbox_conn_id=self.eshopbox_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._make_hook()
        try:
            try:
                await hook.aget_config()  # the connection, read once per run, the async way
            except EshopboxError as exc:
                # Every connection error names the conn id and the fix itself (connection.py, hook).
                yield self._event(ERROR, str(exc))
                return
            self.log.info(
                "Waiting for %s: polling Eshopbox every %g s until %s (%.0f s from now)",
                self.describe(),
                self.poll_interval,
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.deadline)),
                max(self.deadline - time.time(), 0.0),
            )
            polls = 0
            last_logged: tuple[str, float] = ("", time.monotonic())
            while True:
                # ...though each poll gets a few seconds, so the last one still sees the state.
                hook.deadline = max(self.deadline, time.time() + MIN_POLL_SECONDS)
                polls += 1
                try:
                    outcome = await self.poll(hook)
                except EshopboxDeadlineError:
                    outcome = None  # the deadline passed mid-poll: the timeout event below says so
                except (EshopboxAuthError, EshopboxConfigError) as exc:
                    yield self._event(ERROR, f"Eshopbox rejected the request: {exc}", **self.observed())
                    return
                except EshopboxContractError as exc:  # no poll can heal it: the sensor fails with it
                    yield self._event(ERROR, str(exc), **self.observed())
                    return
                except EshopboxApiError as exc:
                    if exc.status in AUTH_STATUSES:
                        yield self._event(ERROR, f"Eshopbox denied access: {exc}", **self.observed())
                        return
                    self.log.warning("Eshopbox poll failed (%s); will poll again until the deadline", exc)
                    outcome = None
                if outcome is not None:
                    self.log.info("Poll %d: %s", polls, outcome.get("message") or outcome.get("status"))
                    yield TriggerEvent({**self.ids(), **outcome})
                    return
                remaining = self.deadline - time.time()
                seen = _last_seen(self.observed())
                if seen != last_logged[0] or time.monotonic() - last_logged[1] >= STILL_WAITING_LOG_SECONDS:
                    self.log.info("Poll %d: still waiting; last seen %s; %.0f s left", polls, seen, remaining)
                    last_logged = (seen, time.monotonic())
                if remaining <= 0:
                    yield self._event(
                        TIMEOUT,
                        f"Timed out waiting for {self.describe()}: deadline passed {-remaining:.1f} s ago "
                        f"after {polls} poll(s); last seen: {seen}.",
                        **self.observed(),
                    )
                    return
                await asyncio.sleep(min(self.poll_interval, remaining))
        finally:
            await hook.aclose()
