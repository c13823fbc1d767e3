"""EshopboxOrderStatusSensor end to end: the example DAG under dag.test() against the sandbox."""

from __future__ import annotations

import pytest

from tests.dagtest import run_dag

from .conftest import DELIVERED_ORDER, SENSOR, load_dag, order_with_status, route_count, when

pytestmark = pytest.mark.usefixtures("airflow_db")


def test_default_order_already_delivered(sandbox, capfd):
    result = run_dag(load_dag(poke_interval=0.2, timeout=10), capfd)
    assert result.state == "success"
    assert result.returns[SENSOR] == {
        "customer_order_numbers": [DELIVERED_ORDER],
        "order_statuses": {DELIVERED_ORDER: ["delivered"]},
    }
    assert result.returns["notify"]["message"] == f"Eshopbox order(s) {DELIVERED_ORDER} shipped."


def test_defers_then_succeeds_when_order_ships(sandbox, capfd):
    con = order_with_status(sandbox, "processing")
    base = route_count(sandbox, "orders_list")
    # sensor's own first look (1) + at least one poll from the trigger (2) -> then the order ships
    changer = when(
        lambda: route_count(sandbox, "orders_list") >= base + 2,
        lambda: sandbox.set_order_status(con, "Shipped"),
    )
    # timeout: a bound for a broken run, not a measurement (a loaded matrix cell took 50 s to defer).
    result = run_dag(load_dag(poke_interval=0.1, timeout=120), capfd, run_conf={"customer_order_number": con})
    changer.join(1)
    assert result.task_states == {SENSOR: "success", "notify": "success"}
    assert result.returns[SENSOR] == {"customer_order_numbers": [con], "order_statuses": {con: ["shipped"]}}
    assert route_count(sandbox, "order_get") == 2  # existence checked once by the sensor, once by the trigger


def test_deferred_timeout_fails_with_timeout_message(sandbox, capfd):
    con = order_with_status(sandbox, "processing")
    result = run_dag(load_dag(poke_interval=0.1, timeout=1), capfd, run_conf={"customer_order_number": con})
    assert result.task_states == {SENSOR: "failed", "notify": "upstream_failed"}
    assert (
        f"AirflowSensorTimeout: Timed out waiting for Eshopbox order(s) ['{con}'] to reach "
        "['shipped', 'delivered']: deadline passed" in result.log
    )
    # The sensor's look + the trigger's: a deadline already passed still gets one look (triggers/base.py),
    # and how many more fit in the second depends on the machine's load.
    assert route_count(sandbox, "orders_list") >= 2


def test_nonexistent_order_fails_fast(sandbox, capfd):
    result = run_dag(
        load_dag(poke_interval=0.1, timeout=30), capfd, run_conf={"customer_order_number": "NOPE-1"}
    )
    assert result.task_states == {SENSOR: "failed", "notify": "upstream_failed"}
    assert (
        "AirflowFailException: Eshopbox order 'NOPE-1' does not exist (GET /api/order/NOPE-1 answered 404)."
        in result.log
    )
    assert route_count(sandbox, "order_get") == 1
    assert route_count(sandbox, "orders_list") == 0


def test_cancelled_order_fails_fast(sandbox, capfd):
    con = order_with_status(sandbox, "processing")
    sandbox.set_order_status(con, "Canceled")  # UI spelling; compared as "cancelled"
    result = run_dag(load_dag(poke_interval=0.1, timeout=30), capfd, run_conf={"customer_order_number": con})
    assert result.task_states == {SENSOR: "failed", "notify": "upstream_failed"}
    assert (
        f"AirflowFailException: Eshopbox order '{con}' reached status 'cancelled' "
        "(one of fail_on_statuses ['cancelled']); item statuses: ['cancelled']." in result.log
    )
    assert route_count(sandbox, "orders_list") == 2  # page 0 once (1-based pages), then page 1


def test_429_while_deferred_does_not_fail(sandbox, capfd):
    con = order_with_status(sandbox, "new")

    def ship_after_throttle() -> None:
        sandbox.set_order_status(con, "delivered")

    # the sensor's own first look gets "ok"; the trigger's first order_get and orders_list get a 429
    sandbox.faults.script("order_get", ["ok", 429])
    sandbox.faults.script("orders_list", ["ok", 429])
    changer = when(lambda: sandbox.stats()["by_status"].get("429", 0) >= 2, ship_after_throttle)
    result = run_dag(load_dag(poke_interval=0.1, timeout=30), capfd, run_conf={"customer_order_number": con})
    changer.join(1)
    assert result.task_states == {SENSOR: "success", "notify": "success"}
    assert result.returns[SENSOR]["order_statuses"] == {con: ["delivered"]}
    assert route_count(sandbox, "order_get") == 3  # sensor 1, trigger: 429 then retried after Retry-After


def test_poke_mode_succeeds_when_order_ships(sandbox, capfd):
    con = order_with_status(sandbox, "ready to ship")
    base = route_count(sandbox, "orders_list")
    changer = when(
        lambda: route_count(sandbox, "orders_list") >= base + 2,
        lambda: sandbox.set_order_status(con, "shipped"),
    )
    result = run_dag(
        load_dag(poke_interval=0.1, timeout=20, deferrable=False),
        capfd,
        run_conf={"customer_order_number": con},
    )
    changer.join(1)
    assert result.task_states == {SENSOR: "success", "notify": "success"}
    assert result.returns[SENSOR] == {"customer_order_numbers": [con], "order_statuses": {con: ["shipped"]}}
    assert route_count(sandbox, "order_get") == 1  # no trigger: existence checked once by the poking sensor
    assert route_count(sandbox, "orders_list") >= 3
