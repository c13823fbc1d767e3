"""Deferrable-sensor triggers of the Eshopbox provider (importable from sys.path by the triggerer).

``EshopboxOrderStatusTrigger`` (``triggers.order_status``) and ``EshopboxInventoryTrigger``
(``triggers.inventory``) share the polling loop of ``triggers.base``; both are importable from here.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "EshopboxOrderStatusTrigger":
        from airflow_provider_eshopbox.triggers.order_status import EshopboxOrderStatusTrigger

        return EshopboxOrderStatusTrigger
    if name == "EshopboxInventoryTrigger":
        from airflow_provider_eshopbox.triggers.inventory import EshopboxInventoryTrigger

        return EshopboxInventoryTrigger
    raise AttributeError(name)


__all__ = ["EshopboxInventoryTrigger", "EshopboxOrderStatusTrigger"]
