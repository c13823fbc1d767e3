"""Order-status trigger, plus the one definition of "the status of an order" (sync and async check).

ASSUMPTION (eshopbox-api.md §3.2, §3.5) -- candidate to move to api.py: ``GET /api/order/{con}``
documents no status field (and the sandbox returns none), so

* existence is decided by ``GET /api/order/{customerOrderNumber}`` (404 -> the order does not exist),
  asked once per order per run;
* the status is the ``orderStatus`` of the order's item rows in the orders list
  (``GET /api/v1/orders/erp`` with ``filters=customerOrderNumber:"<con>"``), asked every poll. An order
  whose rows are not listed yet has no status and is waited for.

Statuses are compared after ``normalize_status``: case-insensitive (§3.5: case varies), ``_``/``-``
read as spaces, and the UI's "Canceled" spelling read as "cancelled" (api.STATUS_ALIASES).

An order with several items: it **fails** as soon as any item has a ``fail_on_statuses`` status (a
partly cancelled order is reported, not shipped), and **succeeds** when every item has a target status.
Several orders: success when all succeed, failure as soon as one fails or does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.exceptions import EshopboxContractError
from airflow_provider_eshopbox.triggers.base import FAILED, SUCCESS, EshopboxPollingTrigger

if TYPE_CHECKING:
    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook


# ASSUMPTION (eshopbox-api.md §3.1, §3.5): the per-item status field of the orders list rows.
def item_statuses(rows: Iterable[Mapping[str, Any]], customer_order_number: str) -> list[str]:
    """Sorted distinct normalized statuses of the rows of one order (rows of other orders ignored)."""
    return sorted(
        {
            api.normalize_status(row.get(api.ORDER_STATUS_FIELD))
            for row in rows
            if str(row.get(api.ORDER_NUMBER_FIELD)) == customer_order_number
            and row.get(api.ORDER_STATUS_FIELD) not in (None, "")
        }
    )


def _check_rows_are_of(rows: Sequence[Mapping[str, Any]], customer_order_number: str) -> None:
    """guard: order_status_rows_match. Every row of ``order_status_filter(con)`` is of that order; one of
    another order means the server ignored the filter (its statuses would be a wrong answer)."""
    others = [row for row in rows if str(row.get(api.ORDER_NUMBER_FIELD)) != customer_order_number]
    if others:
        raise EshopboxContractError(
            api.ORDERS_LIST.label,
            "order_status_filter",
            f"{len(others)} of {len(rows)} rows for {api.order_status_filter(customer_order_number)!r} are "
            f"of other orders (e.g. {others[0].get(api.ORDER_NUMBER_FIELD)!r}): filter ignored",
        )


def evaluate_orders(
    observed: Mapping[str, Sequence[str]], target_statuses: Iterable[str], fail_on_statuses: Iterable[str]
) -> tuple[str | None, str]:
    """``(SUCCESS | FAILED | None, message)`` for the observed item statuses of every awaited order."""
    target = {api.normalize_status(s) for s in target_statuses}
    fail = {api.normalize_status(s) for s in fail_on_statuses}
    for con, statuses in observed.items():
        bad = sorted(set(statuses) & fail)
        if bad:
            return FAILED, (
                f"Eshopbox order {con!r} reached status {', '.join(map(repr, bad))} "
                f"(one of fail_on_statuses {sorted(fail)}); item statuses: {list(statuses)}."
            )
    waiting = {con: list(s) for con, s in observed.items() if not s or not set(s) <= target}
    if not waiting:
        return SUCCESS, f"All {len(observed)} Eshopbox order(s) reached {sorted(target)}: {dict(observed)}."
    return None, f"Still waiting for {waiting} to reach {sorted(target)}."


class OrderStatusCheck:
    """One poll of the awaited orders; remembers which orders were confirmed to exist."""

    def __init__(
        self,
        customer_order_numbers: Sequence[str],
        target_statuses: Sequence[str],
        fail_on_statuses: Sequence[str],
    ) -> None:
        self.customer_order_numbers = list(customer_order_numbers)
        self.target_statuses = list(target_statuses)
        self.fail_on_statuses = list(fail_on_statuses)
        self.confirmed: set[str] = set()
        self.observed: dict[str, list[str]] = {}

    def _missing(self, con: str) -> dict[str, Any]:
        return {
            "status": FAILED,
            "message": f"Eshopbox order {con!r} does not exist (GET /api/order/{con} answered 404).",
            "missing": con,
            "order_statuses": dict(self.observed),
        }

    def _decide(self) -> dict[str, Any] | None:
        verdict, message = evaluate_orders(self.observed, self.target_statuses, self.fail_on_statuses)
        if verdict is None:
            return None
        return {"status": verdict, "message": message, "order_statuses": dict(self.observed)}

    def check(self, hook: EshopboxHook) -> dict[str, Any] | None:
        """Synchronous poll (poke mode)."""
        for con in self.customer_order_numbers:
            if con not in self.confirmed:
                if hook.get_order(con) is None:
                    return self._missing(con)
                self.confirmed.add(con)
            rows = [
                row
                for page in hook.iter_order_pages(
                    api.order_status_filter(con), fields=api.ORDER_STATUS_LIST_FIELDS
                )
                for row in page.hits
            ]
            _check_rows_are_of(rows, con)
            self.observed[con] = item_statuses(rows, con)
        return self._decide()

    async def acheck(self, hook: EshopboxHook) -> dict[str, Any] | None:
        """Asynchronous poll (trigger)."""
        for con in self.customer_order_numbers:
            if con not in self.confirmed:
                if await hook.aget_order(con) is None:
                    return self._missing(con)
                self.confirmed.add(con)
            rows = [
                row
                async for page in hook.aiter_order_pages(
                    api.order_status_filter(con), fields=api.ORDER_STATUS_LIST_FIELDS
                )
                for row in page.hits
            ]
            _check_rows_are_of(rows, con)
            self.observed[con] = item_statuses(rows, con)
        return self._decide()


class EshopboxOrderStatusTrigger(EshopboxPollingTrigger):
    """Waits until Eshopbox orders reach a target status (see the module doc for the exact rule).

    Events: ``{"status": "success"|"failed"|"timeout"|"error", "message": str,
    "customer_order_numbers": [...], "order_statuses": {con: [normalized item statuses]}}``;
    a nonexistent order adds ``"missing": con``.
    """

    def __init__(
        self,
        *,
        customer_order_numbers: Sequence[str],
        target_statuses: Sequence[str],
        fail_on_statuses: Sequence[str] = (),
        deadline: float,
        poll_interval: float,
        eshopbox_conn_id: str,
    ) -> None:
        super().__init__(deadline=deadline, poll_interval=poll_interval, eshopbox_conn_id=eshopbox_conn_id)
        self.customer_order_numbers = list(customer_order_numbers)
        self.target_statuses = list(target_statuses)
        self.fail_on_statuses = list(fail_on_statuses)
        self._check: OrderStatusCheck | None = None

    def _kwargs(self) -> dict[str, Any]:
        return {
            "customer_order_numbers": list(self.customer_order_numbers),
            "target_statuses": list(self.target_statuses),
            "fail_on_statuses": list(self.fail_on_statuses),
        }

    def ids(self) -> dict[str, Any]:
        return {"customer_order_numbers": list(self.customer_order_numbers)}

    def describe(self) -> str:
        return f"Eshopbox order(s) {self.customer_order_numbers} to reach {self.target_statuses}"

    def observed(self) -> dict[str, Any]:
        return {"order_statuses": dict(self._check.observed) if self._check else {}}

    async def run(self):  # type: ignore[override]
        self._check = OrderStatusCheck(
            self.customer_order_numbers, self.target_statuses, self.fail_on_statuses
        )
        async for event in super().run():
            yield event

    async def poll(self, hook: EshopboxHook) -> dict[str, Any] | None:
        assert self._check is not None
        return await self._check.acheck(hook)
