"""EshopboxOrderStatusSensor: wait until Eshopbox orders reach a status (deferrable or poke)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_eshopbox.sensors.base import EshopboxBaseSensor


def _str_list(name: str, value: Any, *, allow_empty: bool = False) -> list[str]:
    """A string or a list/tuple of non-empty strings as a list; ValueError/TypeError otherwise."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise TypeError(f"{name} must be a string or a list of strings, got {type(value).__name__}")
    bad = [v for v in items if not isinstance(v, str) or not v.strip()]
    if bad:
        raise TypeError(f"{name} must contain only non-empty strings, got {bad!r}")
    if not items and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    return list(items)


def _check_statuses(target: list[str], fail: list[str]) -> None:
    from airflow_provider_eshopbox.api import normalize_status

    overlap = sorted({normalize_status(s) for s in target} & {normalize_status(s) for s in fail})
    if overlap:
        raise ValueError(
            f"target_statuses and fail_on_statuses overlap (compared case-insensitively): {overlap}"
        )


class EshopboxOrderStatusSensor(EshopboxBaseSensor):
    """Waits until every given order reaches one of ``target_statuses``; fails fast otherwise.

    Status rule (see ``triggers.order_status``): each order's item rows in the orders list carry
    ``orderStatus``; statuses are compared case-insensitively (``_``/``-`` = space, "Canceled" =
    "cancelled"). An order succeeds when all its items have a target status; the sensor fails at
    once (AirflowFailException naming order and status) when an order does not exist (GET 404) or
    any item has a ``fail_on_statuses`` status.

    :param customer_order_numbers: one ``customerOrderNumber`` or a list (templated).
    :param target_statuses: status or statuses to wait for, e.g. ``["shipped", "delivered"]`` (templated).
    :param fail_on_statuses: statuses that fail the task at once, e.g. ``["cancelled"]`` (templated).
    :param eshopbox_conn_id: Eshopbox connection id. Templated.
    :param deferrable: defer to the triggerer (default ``[operators] default_deferrable``).
    Other arguments (``poke_interval``, ``timeout``, ``soft_fail``, ``mode``...) as BaseSensorOperator;
    ``poke_interval`` is the trigger's poll interval too. XCom on success:
    ``{"customer_order_numbers": [...], "order_statuses": {con: [statuses]}}``.
    """

    template_fields: Sequence[str] = (
        "customer_order_numbers",
        "target_statuses",
        "fail_on_statuses",
        "eshopbox_conn_id",
    )
    ui_color = "#f4a460"

    def __init__(
        self,
        *,
        customer_order_numbers: str | Sequence[str],
        target_statuses: str | Sequence[str],
        fail_on_statuses: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        target = _str_list("target_statuses", target_statuses)
        fail = _str_list("fail_on_statuses", fail_on_statuses or [], allow_empty=True)
        _str_list("customer_order_numbers", customer_order_numbers)
        _check_statuses(target, fail)
        self.customer_order_numbers = customer_order_numbers
        self.target_statuses = target_statuses
        self.fail_on_statuses = fail_on_statuses or []

    def _args(self) -> tuple[list[str], list[str], list[str]]:
        cons = [c.strip() for c in _str_list("customer_order_numbers", self.customer_order_numbers)]
        target = _str_list("target_statuses", self.target_statuses)
        fail = _str_list("fail_on_statuses", self.fail_on_statuses or [], allow_empty=True)
        _check_statuses(target, fail)
        return list(dict.fromkeys(cons)), target, fail

    def _validate(self) -> None:
        try:
            self._args()
        except (TypeError, ValueError) as exc:
            raise AirflowFailException(f"{self.task_id}: invalid argument after rendering: {exc}") from exc

    def _make_check(self) -> Any:
        from airflow_provider_eshopbox.triggers.order_status import OrderStatusCheck

        return OrderStatusCheck(*self._args())

    def _result(self, payload: dict[str, Any]) -> Any:
        return {
            "customer_order_numbers": self._args()[0],
            "order_statuses": payload.get("order_statuses", {}),
        }

    def _make_trigger(self, deadline: float) -> Any:
        from airflow_provider_eshopbox.triggers.order_status import EshopboxOrderStatusTrigger

        cons, target, fail = self._args()
        return EshopboxOrderStatusTrigger(
            customer_order_numbers=cons,
            target_statuses=target,
            fail_on_statuses=fail,
            deadline=deadline,
            poll_interval=float(self.poke_interval),
            eshopbox_conn_id=self.eshopbox_conn_id,
        )
