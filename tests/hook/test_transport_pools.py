"""Concurrent async requests spread over a few small connection pools; a lone caller keeps one."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.hooks._http import _ASYNC_POOLS
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
from airflow_provider_eshopbox.sandbox import EshopboxSandbox


def test_concurrent_requests_spread_over_small_pools_and_a_lone_caller_reuses_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with EshopboxSandbox(order_items=500, seed=3, latency_ms=100) as sb:
        monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sb.connection_json())
        hook = EshopboxHook()
        everything = api.orders_window_filter(0, 2**42)

        async def main() -> tuple[int, int, int]:
            for _ in range(4):
                await hook.afetch_orders_page(everything, per_page=1)
            alone = len(hook._transport._aclients)
            pages = await asyncio.gather(
                *(hook.afetch_orders_page(everything, per_page=1) for _ in range(16))
            )
            together = len(hook._transport._aclients)
            await hook.aclose()
            return alone, together, len(pages)

        alone, together, answered = asyncio.run(main())
        assert (alone, together, answered) == (1, _ASYNC_POOLS, 16)
        assert sb.stats()["max_concurrent"] >= 12  # the 16 really overlapped
