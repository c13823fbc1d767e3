"""Trigger serialization, secrets, error policy; sensor argument validation."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from airflow.sdk.module_loading import import_string

from airflow_provider_eshopbox.api import normalize_status
from airflow_provider_eshopbox.sensors.inventory import EshopboxInventorySensor
from airflow_provider_eshopbox.sensors.order_status import EshopboxOrderStatusSensor
from airflow_provider_eshopbox.triggers.inventory import EshopboxInventoryTrigger
from airflow_provider_eshopbox.triggers.order_status import EshopboxOrderStatusTrigger

from .conftest import order_with_status, route_count


async def events(trigger):
    return [event.payload async for event in trigger.run()]


def order_trigger(cons, deadline, **kw):
    return EshopboxOrderStatusTrigger(
        customer_order_numbers=cons,
        target_statuses=["shipped"],
        fail_on_statuses=["cancelled"],
        deadline=deadline,
        poll_interval=0.1,
        eshopbox_conn_id="eshopbox_default",
        **kw,
    )


@pytest.mark.parametrize(
    ("trigger", "classpath"),
    [
        (
            order_trigger(["SHOP-100001", "SHOP-100002"], 1_900_000_000.5),
            "airflow_provider_eshopbox.triggers.order_status.EshopboxOrderStatusTrigger",
        ),
        (
            EshopboxInventoryTrigger(
                sku="TSHIRT-BLU-S",
                threshold=5,
                below=True,
                warehouse="BLR01",
                deadline=1_900_000_000.0,
                poll_interval=30,
                eshopbox_conn_id="eshopbox_default",
            ),
            "airflow_provider_eshopbox.triggers.inventory.EshopboxInventoryTrigger",
        ),
    ],
)
def test_serialize_round_trip_without_secrets(sandbox, trigger, classpath):
    path, kwargs = trigger.serialize()
    assert path == classpath
    rebuilt = import_string(path)(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)
    assert type(rebuilt) is type(trigger)
    text = json.dumps(kwargs) + repr(kwargs)
    asyncio.run(events(order_trigger(["SHOP-100001"], time.time() - 1)))  # one poll: mints a token
    access_tokens = list(sandbox.tokens._expiry)  # every access token the sandbox minted
    assert access_tokens
    secrets = [sandbox.client_secret, sandbox.refresh_token, *access_tokens]
    for secret in secrets:
        assert secret not in text
    assert set(kwargs) >= {"deadline", "poll_interval", "eshopbox_conn_id"}
    assert "access_token" not in text and "password" not in text


def test_order_trigger_events_success_failed_timeout(sandbox):
    shipped = order_with_status(sandbox, "shipped")
    processing = order_with_status(sandbox, "processing")
    assert asyncio.run(events(order_trigger([shipped], time.time() + 5))) == [
        {
            "status": "success",
            "message": f"All 1 Eshopbox order(s) reached ['shipped']: {{'{shipped}': ['shipped']}}.",
            "customer_order_numbers": [shipped],
            "order_statuses": {shipped: ["shipped"]},
        }
    ]
    [missing] = asyncio.run(events(order_trigger([shipped, "NOPE-9"], time.time() + 5)))
    assert missing["status"] == "failed"
    assert missing["missing"] == "NOPE-9"
    [timeout] = asyncio.run(events(order_trigger([processing], time.time() - 1)))
    assert timeout["status"] == "timeout"
    assert timeout["order_statuses"] == {processing: ["processing"]}


def test_api_error_is_logged_and_polling_continues(sandbox):
    con = order_with_status(sandbox, "shipped")
    sandbox.faults.script("orders_list", [400, 400])  # not retried by the transport: the trigger sees it
    [event] = asyncio.run(events(order_trigger([con], time.time() + 10)))
    assert event["status"] == "success"
    assert route_count(sandbox, "orders_list") == 3
    assert sandbox.stats()["by_status"]["400"] == 2


def test_auth_error_stops_with_error_event(sandbox, monkeypatch):
    conn = json.loads(sandbox.connection_json())
    conn["password"] = "sbx-secret-" + "0" * 40
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", json.dumps(conn))
    [event] = asyncio.run(events(order_trigger(["SHOP-100001"], time.time() + 30)))
    assert event["status"] == "error"
    assert event["message"].startswith("Eshopbox rejected the request: Eshopbox rejected the credentials")
    assert sandbox.client_secret not in json.dumps(event)
    assert route_count(sandbox, "order_get") == 0


def test_normalize_status():
    assert normalize_status(" Ready_to-Ship ") == "ready to ship"
    assert normalize_status("Canceled") == normalize_status("CANCELLED") == "cancelled"


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        (
            {"customer_order_numbers": [], "target_statuses": "shipped"},
            ValueError,
            "customer_order_numbers must not",
        ),
        (
            {"customer_order_numbers": ["A", 7], "target_statuses": "shipped"},
            TypeError,
            "only non-empty strings",
        ),
        (
            {"customer_order_numbers": "A", "target_statuses": []},
            ValueError,
            "target_statuses must not be empty",
        ),
        ({"customer_order_numbers": 5, "target_statuses": "x"}, TypeError, "a string or a list of strings"),
        (
            {
                "customer_order_numbers": "A",
                "target_statuses": ["Shipped", "canceled"],
                "fail_on_statuses": ["CANCELLED"],
            },
            ValueError,
            "overlap (compared case-insensitively): ['cancelled']",
        ),
    ],
)
def test_order_sensor_validation(kwargs, error, text):
    with pytest.raises(error) as info:
        EshopboxOrderStatusSensor(task_id="s", **kwargs)
    assert text in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"threshold": 1}, ValueError, "exactly one of sku or esin"),
        ({"threshold": 1, "sku": "A", "esin": "B"}, ValueError, "exactly one of sku or esin"),
        ({"threshold": -1, "sku": "A"}, ValueError, "threshold must be an integer >= 0"),
        ({"threshold": 1.5, "sku": "A"}, ValueError, "threshold must be an integer >= 0"),
        ({"threshold": 1, "sku": ""}, TypeError, "sku must be a non-empty string"),
    ],
)
def test_inventory_sensor_validation(kwargs, error, text):
    with pytest.raises(error) as info:
        EshopboxInventorySensor(task_id="s", **kwargs)
    assert text in str(info.value)


def test_deferrable_default_follows_config(monkeypatch):
    sensor = EshopboxOrderStatusSensor(task_id="s", customer_order_numbers="A", target_statuses="shipped")
    assert sensor.deferrable is False  # [operators] default_deferrable is unset in the test config
