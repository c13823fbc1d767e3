"""Sensors: Eshopbox order status and stock, deferrable or poking (the shared base is in ``base``)."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """``from airflow_provider_eshopbox.sensors import EshopboxOrderStatusSensor`` without importing both."""
    if name == "EshopboxOrderStatusSensor":
        from airflow_provider_eshopbox.sensors.order_status import EshopboxOrderStatusSensor

        return EshopboxOrderStatusSensor
    if name == "EshopboxInventorySensor":
        from airflow_provider_eshopbox.sensors.inventory import EshopboxInventorySensor

        return EshopboxInventorySensor
    raise AttributeError(name)


__all__ = ["EshopboxInventorySensor", "EshopboxOrderStatusSensor"]
