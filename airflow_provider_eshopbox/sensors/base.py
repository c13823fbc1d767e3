"""Eshopbox sensors (deferrable or poke) and their shared base.

``EshopboxOrderStatusSensor`` lives in ``sensors.order_status``, ``EshopboxInventorySensor`` in
``sensors.inventory``; both are also importable from here (lazily).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout

from airflow_provider_eshopbox.connection import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
    from airflow_provider_eshopbox.triggers.base import EshopboxPollingTrigger

# Backstop on the deferral itself: the trigger's own deadline (the sensor's timeout) fires first and
# carries the clear message; Airflow's deferral timeout only matters if the trigger never answers.
DEFERRAL_TIMEOUT_GRACE_SECONDS = 60.0


class EshopboxBaseSensor(BaseSensorOperator):
    """Shared deferrable/poke machinery; subclasses provide ``_make_check`` and ``_make_trigger``.

    A check object has ``check(hook)`` returning None (keep waiting) or an event payload
    ``{"status": "success"|"failed", "message": ..., ...}``; the trigger yields the same payloads.
    """

    def __init__(
        self,
        *,
        eshopbox_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.eshopbox_conn_id = eshopbox_conn_id
        self.deferrable = deferrable
        self._hook: EshopboxHook | None = None
        self._check: Any = None
        self._deadline: float | None = None

    # --- subclass API ----------------------------------------------------------------------------
    def _validate(self) -> None:
        """Re-validate the (rendered) arguments; raise AirflowFailException on bad input."""

    def _make_check(self) -> Any:
        raise NotImplementedError

    def _make_trigger(self, deadline: float) -> EshopboxPollingTrigger:
        raise NotImplementedError

    def _result(self, payload: dict[str, Any]) -> Any:
        """XCom value of a success payload (the payload minus status/message)."""
        return {k: v for k, v in payload.items() if k not in ("status", "message")}

    # --- machinery ---------------------------------------------------------------------------------
    @property
    def hook(self) -> EshopboxHook:
        if self._hook is None:
            from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook

            self._hook = EshopboxHook(eshopbox_conn_id=self.eshopbox_conn_id)
        return self._hook

    def poke(self, context: Context) -> bool | PokeReturnValue:
        from airflow_provider_eshopbox.exceptions import (
            EshopboxApiError,
            EshopboxAuthError,
            EshopboxConfigError,
            EshopboxDeadlineError,
        )
        from airflow_provider_eshopbox.triggers.base import AUTH_STATUSES, MIN_POLL_SECONDS, SUCCESS

        if self._check is None:
            self._check = self._make_check()
        if self._deadline is not None:
            # A slow server cannot hold a poke past the sensor's timeout (plus the few seconds any
            # poke gets, so that one started just before it still sees the state).
            self.hook.deadline = max(self._deadline, time.time() + MIN_POLL_SECONDS)
        try:
            payload = self._check.check(self.hook)
        except EshopboxDeadlineError as exc:
            raise AirflowSensorTimeout(
                f"Sensor timed out after {float(self.timeout):g} s while Eshopbox had not answered: {exc}"
            ) from exc
        except EshopboxConfigError as exc:  # names the connection or argument and the fix itself
            raise AirflowFailException(str(exc)) from exc
        except EshopboxAuthError as exc:
            raise AirflowFailException(f"Eshopbox rejected the request: {exc}") from exc
        except EshopboxApiError as exc:
            if exc.status in AUTH_STATUSES:
                raise AirflowFailException(f"Eshopbox denied access: {exc}") from exc
            self.log.warning("Eshopbox poke failed (%s); will poke again until the timeout", exc)
            return False
        if payload is None:
            return False
        if payload["status"] != SUCCESS:
            raise AirflowFailException(payload["message"])
        self.log.info("%s", payload["message"])
        return PokeReturnValue(is_done=True, xcom_value=self._result(payload))

    def execute(self, context: Context) -> Any:
        started = time.time()
        self._validate()
        self._check = None
        self._deadline = started + float(self.timeout)
        try:
            if not self.deferrable:
                return super().execute(context)
            # One synchronous look first: no deferral round trip when the condition already holds
            # (or the order does not exist).
            done = self.poke(context)
        finally:
            if self._hook is not None:
                self._hook.close()
                self._hook = None
        if isinstance(done, PokeReturnValue):
            return done.xcom_value
        deadline = started + float(self.timeout)
        remaining = max(deadline - time.time(), 0.0)
        trigger = self._make_trigger(deadline)
        self.log.info(
            "Not there yet: deferring to the triggerer, which polls Eshopbox for %s every %g s for up "
            "to %.0f s more (the task frees its worker slot meanwhile; see the triggerer's log)",
            trigger.describe(),
            trigger.poll_interval,
            remaining,
        )
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            timeout=timedelta(seconds=remaining + DEFERRAL_TIMEOUT_GRACE_SECONDS),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger: success -> XCom value; timeout -> AirflowSensorTimeout (so
        ``soft_fail`` skips); failed/error -> AirflowFailException. The event message is kept."""
        from airflow_provider_eshopbox.triggers.base import SUCCESS, TIMEOUT

        if not isinstance(event, dict) or "status" not in event:
            raise AirflowFailException(f"Eshopbox trigger sent an unexpected event: {event!r}")
        message = str(event.get("message") or event["status"])
        if event["status"] == SUCCESS:
            self.log.info("%s", message)
            return self._result(event)
        if event["status"] == TIMEOUT:
            raise AirflowSensorTimeout(message)
        raise AirflowFailException(message)
