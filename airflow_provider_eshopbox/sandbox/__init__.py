"""Local Eshopbox emulator (starlette + uvicorn): seeded data, faults, ground truth. No Airflow import.

    from airflow_provider_eshopbox.sandbox import EshopboxSandbox

    with EshopboxSandbox(orders=2000, seed=7) as sb:
        sb.api_url, sb.connection_json(), sb.truth_order_item_ids(start, end)

CLI: ``python -m airflow_provider_eshopbox.sandbox --port 8765 --orders 5000 --seed 7 [--tls]``;
against a running one: ``... ship|deliver|cancel --url ORIGIN ORDER...``, ``... set-stock ...``,
``... faults KEY=VALUE...`` (``--help`` lists every fault key).
"""

from __future__ import annotations

from .clock import SandboxClock
from .core import EshopboxSandbox
from .faults import ROUTES, FaultConfig

__all__ = ["ROUTES", "EshopboxSandbox", "FaultConfig", "SandboxClock"]
