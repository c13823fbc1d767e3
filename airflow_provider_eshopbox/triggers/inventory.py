"""Inventory trigger, plus the one definition of "sellable stock crossed the threshold".

Stock is read with the hook's ``get_inventory``/``aget_inventory`` (a SKU is resolved to its ESIN
through the product endpoint, then ``inventoryListing`` is read for that ESIN), eshopbox-api.md §4.1:

* ``warehouse=None``: ``inventories.sellable`` (the total across warehouses);
* ``warehouse="BLR01"``: ``warehouseInventories["BLR01"].sellable``; a warehouse the ESIN has no
  row for counts as 0 sellable.

Comparison: ``sellable >= threshold`` normally; ``sellable <= threshold`` with ``below=True``.
An unknown SKU/ESIN fails at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_eshopbox.exceptions import EshopboxApiError
from airflow_provider_eshopbox.triggers.base import FAILED, SUCCESS, EshopboxPollingTrigger

if TYPE_CHECKING:
    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook

SELLABLE_BUCKET = "sellable"
TOTALS_KEY = "inventories"
PER_WAREHOUSE_KEY = "warehouseInventories"


def sellable_stock(record: Mapping[str, Any], warehouse: str | None = None) -> int:
    """Sellable units of an ESIN record: the total, or one warehouse's (0 if it has no row)."""
    if warehouse is None:
        buckets = record.get(TOTALS_KEY)
    else:
        per_wh = record.get(PER_WAREHOUSE_KEY)
        if not isinstance(per_wh, Mapping):
            raise EshopboxApiError(200, "inventory_list", f"no {PER_WAREHOUSE_KEY!r} object in the record")
        buckets = per_wh.get(warehouse, {SELLABLE_BUCKET: 0})
    if not isinstance(buckets, Mapping):
        raise EshopboxApiError(200, "inventory_list", f"no {TOTALS_KEY!r} buckets in the record")
    value = buckets.get(SELLABLE_BUCKET)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EshopboxApiError(200, "inventory_list", f"sellable is not a number: {value!r}")
    return int(value)


def stock_reached(sellable: int, threshold: int, below: bool) -> bool:
    """``sellable <= threshold`` if ``below`` else ``sellable >= threshold``."""
    return sellable <= threshold if below else sellable >= threshold


class InventoryCheck:
    """One stock poll for a SKU or ESIN."""

    def __init__(
        self, *, sku: str | None, esin: str | None, threshold: int, below: bool, warehouse: str | None
    ) -> None:
        self.sku, self.esin, self.threshold, self.below, self.warehouse = (
            sku,
            esin,
            threshold,
            below,
            warehouse,
        )
        self.sellable: int | None = None

    @property
    def what(self) -> str:
        return f"SKU {self.sku!r}" if self.sku else f"ESIN {self.esin!r}"

    @property
    def label(self) -> str:
        return self.what + (f" in warehouse {self.warehouse!r}" if self.warehouse else "")

    @property
    def condition(self) -> str:
        return f"sellable {'<=' if self.below else '>='} {self.threshold}"

    def _decide(self, record: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if record is None:
            return {
                "status": FAILED,
                "message": f"Eshopbox {self.what} does not exist.",
                "sellable": None,
            }
        self.sellable = sellable_stock(record, self.warehouse)
        if not stock_reached(self.sellable, self.threshold, self.below):
            return None
        return {
            "status": SUCCESS,
            "message": f"Eshopbox {self.label}: sellable stock {self.sellable} meets {self.condition}.",
            "sellable": self.sellable,
        }

    def check(self, hook: EshopboxHook) -> dict[str, Any] | None:
        """Synchronous poll (poke mode)."""
        return self._decide(hook.get_inventory(sku=self.sku, esin=self.esin))

    async def acheck(self, hook: EshopboxHook) -> dict[str, Any] | None:
        """Asynchronous poll (trigger)."""
        return self._decide(await hook.aget_inventory(sku=self.sku, esin=self.esin))


class EshopboxInventoryTrigger(EshopboxPollingTrigger):
    """Waits until a SKU/ESIN's sellable stock crosses ``threshold`` (see the module doc).

    Events: ``{"status": "success"|"failed"|"timeout"|"error", "message": str, "sku", "esin",
    "warehouse", "threshold", "below", "sellable": int | None}``.
    """

    def __init__(
        self,
        *,
        sku: str | None = None,
        esin: str | None = None,
        threshold: int,
        below: bool = False,
        warehouse: str | None = None,
        deadline: float,
        poll_interval: float,
        eshopbox_conn_id: str,
    ) -> None:
        super().__init__(deadline=deadline, poll_interval=poll_interval, eshopbox_conn_id=eshopbox_conn_id)
        self.sku, self.esin, self.warehouse = sku, esin, warehouse
        self.threshold, self.below = int(threshold), bool(below)
        self._check: InventoryCheck | None = None

    def _kwargs(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "esin": self.esin,
            "threshold": self.threshold,
            "below": self.below,
            "warehouse": self.warehouse,
        }

    def ids(self) -> dict[str, Any]:
        return self._kwargs()

    def describe(self) -> str:
        check = self._new_check()
        return f"Eshopbox {check.label} to reach {check.condition}"

    def observed(self) -> dict[str, Any]:
        return {"sellable": self._check.sellable if self._check else None}

    def _new_check(self) -> InventoryCheck:
        return InventoryCheck(
            sku=self.sku, esin=self.esin, threshold=self.threshold, below=self.below, warehouse=self.warehouse
        )

    async def run(self):  # type: ignore[override]
        self._check = self._new_check()
        async for event in super().run():
            yield event

    async def poll(self, hook: EshopboxHook) -> dict[str, Any] | None:
        assert self._check is not None
        return await self._check.acheck(hook)
