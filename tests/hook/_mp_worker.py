"""Worker for the multi-process token test: one task process doing a few API calls."""

from __future__ import annotations

import os
from typing import Any


def work(conn_json: str, cache_dir: str, barrier: Any, calls: int) -> None:
    """Configure, wait for every sibling, then call the API ``calls`` times."""
    os.environ["AIRFLOW_CONN_ESHOPBOX_DEFAULT"] = conn_json
    os.environ["ESHOPBOX_TOKEN_CACHE_DIR"] = cache_dir
    from airflow_provider_eshopbox import api
    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook

    hook = EshopboxHook()
    hook.get_config()  # no network yet
    barrier.wait(timeout=60)
    for _ in range(calls):
        hook.fetch_orders_page(api.orders_window_filter(0, 2**42), per_page=1)
