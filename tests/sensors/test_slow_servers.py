"""A server that trickles bytes past every per-read timeout: each request has an overall deadline,
and sensors and triggers end at their own timeout, not whenever the server finishes."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.exceptions import EshopboxApiError
from airflow_provider_eshopbox.hooks._http import DEADLINE_FACTOR, RetryPolicy
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from airflow_provider_eshopbox.sensors.order_status import EshopboxOrderStatusSensor
from airflow_provider_eshopbox.triggers.order_status import EshopboxOrderStatusTrigger

from .conftest import order_with_status, route_count

TWO_TRIES = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.01)
# Without a deadline a trickled reply would last this long (the sandbox's drip_max_s).
TRICKLE_S = 600.0


def _timeout(sb: EshopboxSandbox, monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    conn = json.loads(sb.connection_json())
    conn["extra"]["timeout"] = seconds
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", json.dumps(conn))


@pytest.mark.parametrize("phase", ["headers", "body"])
@pytest.mark.parametrize("path", ["sync", "async"])
def test_a_trickling_reply_ends_at_the_deadline_of_each_attempt(sandbox, monkeypatch, phase, path):
    _timeout(sandbox, monkeypatch, 0.5)  # each read waits 0.5 s at most; each attempt 1.5 s in all
    hook = EshopboxHook(retry_policy=TWO_TRIES)
    hook.get_config()
    hook.get_order("SHOP-100001")  # the token is minted before the fault: only the list trickles
    sandbox.faults.configure(
        drip_bytes_per_s=4, drip_phase=phase, drip_max_s=TRICKLE_S, drip_routes=["orders_list"]
    )
    filters = api.orders_window_filter(0, 2**42)
    started = time.monotonic()
    with pytest.raises(EshopboxApiError) as info:
        if path == "sync":
            hook.fetch_orders_page(filters)
        else:
            asyncio.run(hook.afetch_orders_page(filters))
    assert f"no complete reply within {0.5 * DEADLINE_FACTOR:g} s" in str(info.value)
    assert "gave up after 2 attempts" in str(info.value)
    assert route_count(sandbox, "orders_list") == 2
    assert time.monotonic() - started < TRICKLE_S / 10  # it ended: the trickle alone lasts 600 s


def test_a_poking_sensor_never_outlives_its_timeout_on_a_trickling_server(sandbox, monkeypatch):
    """The connection's own timeout (60 s a read) would let one poke run for minutes; the sensor's
    3 s timeout ends it, as a sensor timeout (so soft_fail applies), naming what happened."""
    _timeout(sandbox, monkeypatch, 60)
    con = order_with_status(sandbox, "processing")
    sandbox.faults.configure(
        drip_bytes_per_s=4, drip_phase="body", drip_max_s=TRICKLE_S, drip_routes=["orders_list"]
    )
    sensor = EshopboxOrderStatusSensor(
        task_id="wait", customer_order_numbers=[con], target_statuses=["shipped"],
        timeout=3, poke_interval=0.1, mode="poke", deferrable=False,
    )  # fmt: skip
    started = time.monotonic()
    with pytest.raises(AirflowSensorTimeout, match=r"timed out after 3 s while Eshopbox had not answered"):
        sensor.execute({})
    assert time.monotonic() - started < TRICKLE_S / 10


def test_a_trigger_ends_at_its_deadline_while_a_poll_trickles(sandbox, monkeypatch):
    _timeout(sandbox, monkeypatch, 60)
    con = order_with_status(sandbox, "processing")
    sandbox.faults.configure(
        drip_bytes_per_s=4, drip_phase="headers", drip_max_s=TRICKLE_S, drip_routes=["orders_list"]
    )
    trigger = EshopboxOrderStatusTrigger(
        customer_order_numbers=[con], target_statuses=["shipped"], fail_on_statuses=["cancelled"],
        deadline=time.time() + 3, poll_interval=0.1, eshopbox_conn_id="eshopbox_default",
    )  # fmt: skip

    async def first_event() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    started = time.monotonic()
    event = asyncio.run(first_event())
    assert event["status"] == "timeout", event
    assert time.monotonic() - started < TRICKLE_S / 10
