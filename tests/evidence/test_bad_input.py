"""Bad input: malformed connections, operator arguments, DAG params and server replies.

Every kind gets an error that names the problem. Local input fails before any request (the sandbox's
request counter does not move), and nothing is written (no file at the destination) or created (no
order in the sandbox). Server replies the sandbox cannot stage are served by respx.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.exceptions import (
    EshopboxApiError,
    EshopboxAuthError,
    EshopboxConfigError,
    EshopboxError,
)
from airflow_provider_eshopbox.hooks import _http as transport
from airflow_provider_eshopbox.hooks._http import RetryPolicy
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
from airflow_provider_eshopbox.hooks.token_cache import TokenCache
from airflow_provider_eshopbox.operators.create_orders import EshopboxCreateOrdersOperator
from airflow_provider_eshopbox.operators.inventory import EshopboxInventoryToStorageOperator
from airflow_provider_eshopbox.operators.orders import EshopboxOrdersToStorageOperator
from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from airflow_provider_eshopbox.sensors.inventory import EshopboxInventorySensor
from airflow_provider_eshopbox.sensors.order_status import EshopboxOrderStatusSensor
from tests.dagtest import run_dag

UTC = timezone.utc
FAST = RetryPolicy(max_attempts=3, backoff_base=0.001, backoff_max=0.005)
DAY = {
    "data_interval_start": datetime(2026, 11, 2, tzinfo=UTC),
    "data_interval_end": datetime(2026, 11, 3, tzinfo=UTC),
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[EshopboxSandbox]:
    """This module's sandbox (also overrides any ``sandbox`` fixture of a shared conftest)."""
    with EshopboxSandbox(orders=60, products=30, seed=31) as sb:
        yield sb


@pytest.fixture
def sb(sandbox: EshopboxSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> EshopboxSandbox:
    """The sandbox wired as the default connection, with private, empty token caches."""
    monkeypatch.setenv("ESHOPBOX_TOKEN_CACHE_DIR", str(tmp_path / "tokens"))
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sandbox.connection_json())
    monkeypatch.setenv("ESHOPBOX_DEMO_OUTPUT", f"file://{tmp_path / 'out'}")
    TokenCache.clear_process_cache()
    EshopboxHook._rotated_refresh_tokens.clear()
    transport._limiters.clear()
    sandbox.faults.clear()
    return sandbox


class Untouched:
    """Asserts that a block sent no request to the sandbox, created no order and wrote no file."""

    def __init__(self, sandbox: EshopboxSandbox, *paths: Path) -> None:
        self.sandbox, self.paths = sandbox, paths

    def __enter__(self) -> Untouched:
        self.requests = self.sandbox.stats()["requests"]
        self.created = self.sandbox.orders_created()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.sandbox.stats()["requests"] == self.requests, "an API request was sent"
        assert self.sandbox.orders_created() == self.created, "an order was created"
        for path in self.paths:
            assert not path.exists(), f"{path} was written"
            leftovers = list(path.parent.glob(f".{path.name}.tmp-*")) if path.parent.exists() else []
            assert not leftovers, f"temporary files left: {leftovers}"


def _secrets(sandbox: EshopboxSandbox) -> tuple[str, ...]:
    return (sandbox.client_secret, sandbox.refresh_token)


# --- 1. connections ----------------------------------------------------------------------------
def _conn(sandbox: EshopboxSandbox, *, drop: tuple[str, ...] = (), **extra: Any) -> str:
    conn = json.loads(sandbox.connection_json())
    for key in drop:
        (conn if key in ("login", "password") else conn["extra"]).pop(key)
    conn["extra"].update(extra)
    return json.dumps(conn)


CONNECTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("conn-missing-workspace", {"drop": ("workspace",)}, "workspace is missing"),
    ("conn-missing-refresh-token", {"drop": ("refresh_token",)}, "refresh_token is missing"),
    ("conn-missing-client-id", {"drop": ("login",)}, "login is missing; put the custom app's Client ID"),
    ("conn-missing-client-secret", {"drop": ("password",)}, "password is missing"),
    ("conn-blank-refresh-token", {"refresh_token": "   "}, "refresh_token is missing"),
    ("conn-malformed-auth-url", {"auth_url": "auth.example.com/token"}, "auth_url is not an http.s. URL"),
    ("conn-ftp-api-url", {"api_url": "ftp://files.example.com"}, "api_url is not an http.s. URL"),
    ("conn-non-numeric-timeout", {"timeout": "thirty"}, "timeout must be a number, got 'thirty'"),
    ("conn-zero-timeout", {"timeout": "0"}, "timeout must be a positive number"),
    (
        "conn-negative-rate-limit",
        {"max_requests_per_second": -2},
        "max_requests_per_second must be a positive",
    ),
    ("conn-unknown-token-cache", {"token_cache": "redis"}, "token_cache has unknown value 'redis'"),
    ("conn-workspace-not-a-slug", {"workspace": "Acme Corp!"}, "is not a DNS-label slug"),
]


@pytest.mark.parametrize(
    ("changes", "message"), [c[1:] for c in CONNECTIONS], ids=[c[0] for c in CONNECTIONS]
)
def test_bad_connection_fails_before_any_request(sb, monkeypatch, tmp_path, changes, message) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", _conn(sb, **changes))
    destination = tmp_path / "inventory.jsonl"
    operator = EshopboxInventoryToStorageOperator(task_id="t", destination=f"file://{destination}")
    with Untouched(sb, destination), pytest.raises(EshopboxConfigError, match=message) as raised:
        operator.execute({})
    text = str(raised.value)
    assert "'eshopbox_default'" in text  # names the connection too
    assert not any(secret in text for secret in _secrets(sb))


def test_conn_extra_not_an_object_names_the_extra(sb, monkeypatch) -> None:
    from airflow_provider_eshopbox.connection import parse_connection

    with Untouched(sb), pytest.raises(EshopboxConfigError, match="extra is not a JSON object"):
        parse_connection("c", login="id", password="pw", extra=["workspace", "acme"])  # type: ignore[arg-type]


# --- 2. operator and sensor arguments -----------------------------------------------------------
def _orders(dest: str, **kw: Any) -> EshopboxOrdersToStorageOperator:
    return EshopboxOrdersToStorageOperator(task_id="o", destination=dest, **kw)


def _inventory(dest: str, **kw: Any) -> EshopboxInventoryToStorageOperator:
    return EshopboxInventoryToStorageOperator(task_id="i", destination=dest, **kw)


def _push(dest: str, **kw: Any) -> EshopboxCreateOrdersOperator:
    order = {"customerOrderNumber": "BADIN-1"}
    return EshopboxCreateOrdersOperator(task_id="p", rejects=dest, **{"source": [order], **kw})


ARGUMENTS: list[tuple[str, Callable[[str], Any], dict[str, Any], str]] = [
    ("orders-inverted-window",
     lambda d: _orders(d, start="2026-11-03T00:00:00Z", end="2026-11-02T00:00:00Z"), {}, "is after end"),
    ("orders-zero-length-window", lambda d: _orders(d),
     {**DAY, "data_interval_end": DAY["data_interval_start"]},
     "the window is empty"),
    ("orders-unparseable-start", lambda d: _orders(d, start="yesterday", end="2026-11-02T00:00:00Z"), {},
     "start='yesterday' is not an ISO-8601 date-time"),
    ("orders-bad-destination-scheme", lambda d: _orders(d.replace("file://", "nosuch://")), DAY,
     "no filesystem is registered for scheme 'nosuch'"),
    ("orders-destination-without-scheme", lambda d: _orders(d.replace("file://", "")), DAY, "has no scheme"),
    ("orders-destination-is-a-directory", lambda d: _orders(d + "/"), DAY,
     "must name a file, not a directory"),
    ("orders-max-concurrency-0", lambda d: _orders(d, max_concurrency=0), DAY,
     "max_concurrency must be an integer from 1 to 64, got 0"),
    ("orders-negative-lookback", lambda d: _orders(d, lookback=-60), DAY, "lookback must not be negative"),
    ("inventory-unknown-mode", lambda d: _inventory(d, mode="delta"), DAY,
     "mode must be one of snapshot, changed, got 'delta'"),
    ("inventory-unknown-on-totals-mismatch", lambda d: _inventory(d, on_totals_mismatch="ignore"), DAY,
     "on_totals_mismatch must be one of warn, fail"),
    ("inventory-changed-inverted-window",
     lambda d: _inventory(d, mode="changed", start="2026-11-03T00:00:00Z", end="2026-11-02T00:00:00Z"), {},
     "is after end"),
    ("inventory-changed-without-interval", lambda d: _inventory(d, mode="changed"), {},
     "this run has no data interval"),
    ("push-missing-source-file", lambda d: _push(d, source=d.replace("rejects", "nowhere")), {},
     "source='.*nowhere.*' does not exist"),
    ("push-source-none", lambda d: _push(d, source=None), {}, "source must be an object-storage URL"),
    ("push-max-concurrency-0", lambda d: _push(d, max_concurrency=0), {},
     "max_concurrency must be an integer from 1 to 64, got 0"),
    ("push-negative-max-rejected", lambda d: _push(d, max_rejected="-1"), {},
     "max_rejected must be a non-negative integer, got '-1'"),
    ("push-bad-rejects-scheme", lambda d: _push(d.replace("file://", "nosuch://")), {},
     "rejects=.* no filesystem is registered for scheme 'nosuch'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("factory", "context", "message"), [a[1:] for a in ARGUMENTS], ids=[a[0] for a in ARGUMENTS]
)
def test_bad_operator_argument_fails_before_any_request(sb, tmp_path, factory, context, message) -> None:
    destination = tmp_path / "out" / "rejects.jsonl"
    operator = factory(f"file://{destination}")
    with Untouched(sb, destination), pytest.raises(EshopboxConfigError, match=message):
        operator.execute(context)


SENSORS: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("inventory-sensor-sku-and-esin",
     lambda: EshopboxInventorySensor(task_id="s", sku="A", esin="B", threshold=1),
     ValueError, "give exactly one of sku or esin"),
    ("inventory-sensor-negative-threshold",
     lambda: EshopboxInventorySensor(task_id="s", sku="A", threshold=-1),
     ValueError, "threshold must be an integer >= 0, got -1"),
    ("order-sensor-no-target", lambda: EshopboxOrderStatusSensor(
        task_id="s", customer_order_numbers="X", target_statuses=[]), ValueError, "target_statuses"),
    ("order-sensor-overlapping-statuses", lambda: EshopboxOrderStatusSensor(
        task_id="s", customer_order_numbers="X", target_statuses=["shipped"], fail_on_statuses=["Shipped"]),
     ValueError, "overlap"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("factory", "error", "message"), [s[1:] for s in SENSORS], ids=[s[0] for s in SENSORS]
)
def test_bad_sensor_argument_is_refused_at_definition(sb, factory, error, message) -> None:
    with Untouched(sb), pytest.raises(error, match=message):
        factory()


def test_sensor_argument_blank_after_rendering_fails_before_any_request(sb) -> None:
    sensor = EshopboxInventorySensor(task_id="s", sku="{{ params.sku }}", threshold=1, deferrable=True)
    sensor.sku = "   "  # what an empty param renders to
    with Untouched(sb), pytest.raises(AirflowFailException, match="sku must be a non-empty string"):
        sensor.execute({})


# --- 3. DAG params (through dag.test) -----------------------------------------------------------
PARAMS: list[tuple[str, str, dict[str, Any], str]] = [
    ("param-resync-destination-not-a-url", "eshopbox_orders_resync", {"destination": "orders.jsonl"},
     "destination"),
    ("param-resync-start-not-a-date", "eshopbox_orders_resync", {"start": "next monday"}, "start"),
    ("param-inventory-unknown-mode", "eshopbox_inventory_snapshot", {"mode": "delta"}, "mode"),
    ("param-push-bad-order-prefix", "eshopbox_push_orders", {"order_prefix": "no spaces!"}, "order_prefix"),
    ("param-push-negative-max-rejected", "eshopbox_push_orders", {"max_rejected": -1}, "max_rejected"),
    ("param-shipment-empty-order-number", "eshopbox_wait_for_shipment", {"customer_order_number": ""},
     "customer_order_number"),
]  # fmt: skip


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize(("dag_id", "conf", "name"), [p[1:] for p in PARAMS], ids=[p[0] for p in PARAMS])
def test_bad_dag_param_fails_before_any_request(sb, tmp_path, capfd, dag_id, conf, name) -> None:
    out = tmp_path / "out"
    with Untouched(sb):
        try:
            result = run_dag(dag_id, capfd, run_conf=conf)
        except Exception as exc:  # refused by the param schema before a run exists
            text = f"{type(exc).__name__}: {exc}"
        else:
            assert result.state == "failed", result.task_states
            text = result.log
    assert "ParamValidationError" in text or "EshopboxConfigError" in text, text[-2000:]
    assert name in text
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()], "something was written"


# --- 4. server replies (respx) ------------------------------------------------------------------
AUTH = "https://auth.example.test/api/v1/generateToken"
WS = "https://acme.example.test"
WMS = "https://wms.example.test"
API_HOSTS = r"^https://(acme|wms)\.example\.test/"
GOOD_TOKEN = {"access_token": "at-respx-1", "expires_in": 3600, "token_type": "Bearer"}


@pytest.fixture
def fake(sb, monkeypatch) -> Iterator[respx.MockRouter]:
    """A connection to hosts served by respx (the sandbox cannot stage malformed replies)."""
    conn = json.loads(sb.connection_json())
    conn["extra"].update(auth_url=AUTH, api_url=WS, wms_url=WMS)
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", json.dumps(conn))
    with respx.mock(assert_all_called=False) as router:
        yield router


def _sample_order(number: str) -> dict[str, Any]:
    """A valid create-order body: the push example DAG's demo order."""
    import importlib.util

    from tests.dagtest import EXAMPLE_DAGS

    spec = importlib.util.spec_from_file_location(
        "push_orders_sample", EXAMPLE_DAGS / "eshopbox_push_orders.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.sample_order(number, "TSHIRT-BLU-S")


def _json(body: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


def _orders_page(hook: EshopboxHook) -> Any:
    return hook.fetch_orders_page(api.orders_window_filter(0, 1000))


REPLIES: list[tuple[str, Any, Any, Callable[[EshopboxHook], Any], type[Exception], str]] = [
    ("reply-orders-hits-not-a-list", GOOD_TOKEN, {"hits": {"a": 1}, "hasNext": False}, _orders_page,
     EshopboxApiError, "'hits' is not a list"),
    ("reply-orders-missing-hasNext", GOOD_TOKEN, {"hits": []}, _orders_page, EshopboxApiError,
     "'hasNext' is missing"),
    ("reply-orders-hit-not-an-object", GOOD_TOKEN, {"hits": [{"orderItemID": "1"}, "oops"], "hasNext": False},
     _orders_page, EshopboxApiError, "hit 1 is not an object"),
    ("reply-orders-html", GOOD_TOKEN, httpx.Response(200, text="<html>Login</html>",
                                                     headers={"content-type": "text/html"}),
     _orders_page, EshopboxApiError, "not valid JSON .*text/html"),
    ("reply-token-negative-expires-in", {**GOOD_TOKEN, "expires_in": -5}, None, _orders_page,
     EshopboxAuthError, "expires_in is not a positive number"),
    ("reply-token-non-numeric-expires-in", {**GOOD_TOKEN, "expires_in": "soon"}, None, _orders_page,
     EshopboxAuthError, "expires_in is not a number"),
    ("reply-token-without-access-token", {"token_type": "Bearer", "expires_in": 3600}, None, _orders_page,
     EshopboxAuthError, "no access_token"),
    ("reply-token-not-an-object", ["at-respx-1"], None, _orders_page, EshopboxAuthError,
     "body is not a JSON object"),
    ("reply-inventory-page-is-a-list", GOOD_TOKEN, [{"esin": "E1"}],
     lambda hook: hook.fetch_inventory_page(), EshopboxApiError, "want ESIN-keyed object, got a list"),
    ("reply-order-get-is-a-list", GOOD_TOKEN, [{"customerOrderNumber": "X"}],
     lambda hook: hook.get_order("X"), EshopboxApiError, "order .X. is not a JSON object"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("token_reply", "api_reply", "call", "error", "message"),
    [r[1:] for r in REPLIES],
    ids=[r[0] for r in REPLIES],
)
def test_malformed_server_reply_is_named(fake, token_reply, api_reply, call, error, message) -> None:
    token = fake.post(AUTH).mock(
        return_value=token_reply if isinstance(token_reply, httpx.Response) else _json(token_reply)
    )
    reply = api_reply if isinstance(api_reply, httpx.Response) else _json(api_reply)
    endpoint = fake.route(url__regex=API_HOSTS).mock(return_value=reply)
    with EshopboxHook(retry_policy=FAST) as hook, pytest.raises(error, match=message) as raised:
        call(hook)
    assert token.call_count == 1
    if api_reply is None:  # the token reply was the bad one: no API request was made with it
        assert endpoint.call_count == 0
    assert "at-respx-1" not in str(raised.value)


def test_inventory_page_list_fails_the_operator_and_writes_nothing(fake, sb, tmp_path) -> None:
    fake.post(AUTH).mock(return_value=_json(GOOD_TOKEN))
    fake.get(url__regex=API_HOSTS).mock(return_value=_json([{"esin": "E1"}]))
    destination = tmp_path / "inventory.jsonl"
    operator = _inventory(f"file://{destination}")
    with pytest.raises(EshopboxApiError, match="want ESIN-keyed object, got a list"):
        operator.execute({})
    assert not destination.exists()
    assert not list(tmp_path.glob(".inventory.jsonl.tmp-*"))


def test_token_reply_without_access_token_fails_the_push_and_creates_nothing(fake, sb, tmp_path) -> None:
    fake.post(AUTH).mock(return_value=_json({"expires_in": 3600}))
    create = fake.route(url__regex=API_HOSTS).mock(return_value=_json({}, 201))
    rejects = tmp_path / "rejects.jsonl"
    order = _sample_order("BADIN-2")
    operator = EshopboxCreateOrdersOperator(task_id="p", source=[order], rejects=f"file://{rejects}")
    with pytest.raises(EshopboxError, match="no access_token"):
        operator.execute({})
    assert create.call_count == 0
    assert not rejects.exists()
