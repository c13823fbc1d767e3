"""EshopboxInventorySensor: wait until a SKU/ESIN's sellable stock crosses a threshold."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_eshopbox.sensors.base import EshopboxBaseSensor


class EshopboxInventorySensor(EshopboxBaseSensor):
    """Waits until sellable stock of exactly one of ``sku``/``esin`` crosses ``threshold``.

    Stock is ``inventories.sellable`` (total over warehouses) or, with ``warehouse``, that
    warehouse's ``sellable`` (0 if the ESIN has no row there). Done when ``sellable >= threshold``,
    or ``sellable <= threshold`` with ``below=True``. An unknown SKU/ESIN fails at once.

    :param sku: seller SKU (templated); resolved to its ESIN through the product endpoint.
    :param esin: Eshopbox ESIN (templated).
    :param threshold: integer units, >= 0.
    :param below: wait for stock to fall to ``threshold`` or under instead.
    :param warehouse: warehouse code (e.g. ``BLR01``), or None for the total.
    :param eshopbox_conn_id: Eshopbox connection id. Templated.
    XCom on success: ``{"sku", "esin", "warehouse", "threshold", "below", "sellable"}``.
    """

    template_fields: Sequence[str] = ("sku", "esin", "warehouse", "eshopbox_conn_id")
    ui_color = "#9acd32"

    def __init__(
        self,
        *,
        threshold: int,
        sku: str | None = None,
        esin: str | None = None,
        below: bool = False,
        warehouse: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sku, self.esin, self.warehouse = sku, esin, warehouse
        self.threshold, self.below = threshold, below
        self._check_args()

    def _check_args(self) -> None:
        if (self.sku is None) == (self.esin is None):
            raise ValueError("give exactly one of sku or esin")
        for name in ("sku", "esin", "warehouse"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise TypeError(f"{name} must be a non-empty string, got {value!r}")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int) or self.threshold < 0:
            raise ValueError(f"threshold must be an integer >= 0, got {self.threshold!r}")
        if not isinstance(self.below, bool):
            raise TypeError(f"below must be a bool, got {self.below!r}")

    def _validate(self) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        try:
            self._check_args()
        except (TypeError, ValueError) as exc:
            raise AirflowFailException(f"{self.task_id}: invalid argument after rendering: {exc}") from exc

    def _kwargs(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "esin": self.esin,
            "threshold": self.threshold,
            "below": self.below,
            "warehouse": self.warehouse,
        }

    def _make_check(self) -> Any:
        from airflow_provider_eshopbox.triggers.inventory import InventoryCheck

        return InventoryCheck(**self._kwargs())

    def _make_trigger(self, deadline: float) -> Any:
        from airflow_provider_eshopbox.triggers.inventory import EshopboxInventoryTrigger

        return EshopboxInventoryTrigger(
            **self._kwargs(),
            deadline=deadline,
            poll_interval=float(self.poke_interval),
            eshopbox_conn_id=self.eshopbox_conn_id,
        )

    def _result(self, payload: dict[str, Any]) -> Any:
        return {**self._kwargs(), "sellable": payload.get("sellable")}
