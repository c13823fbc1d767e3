"""HTTPS, the path every real user runs: the sandbox's TLS mode with a throw-away CA, trusted through
the connection's ``ca_bundle`` extra, on the hook's sync and async paths; an untrusted certificate
is refused with an error that says what to do."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.exceptions import EshopboxApiError
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
from airflow_provider_eshopbox.hooks.token_cache import TokenCache
from airflow_provider_eshopbox.sandbox import EshopboxSandbox
from tests.dagtest import default_connection, run_dag

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "example_dags"))
from eshopbox_push_orders import sample_order  # noqa: E402

UTC = timezone.utc
RUN_AT = datetime(2026, 11, 3, 13, tzinfo=UTC)  # the hourly DAG's run for [12:00, 13:00)


@pytest.fixture(scope="module")
def tls_sandbox(airflow_db: Path) -> Iterator[EshopboxSandbox]:
    with EshopboxSandbox(order_items=4000, seed=13, tls=True) as sb, default_connection(sb.connection_json()):
        yield sb


def _connection(sb: EshopboxSandbox, **extra: object) -> str:
    conn = json.loads(sb.connection_json())
    conn["extra"].update(extra)
    conn["extra"] = {k: v for k, v in conn["extra"].items() if v is not None}
    return json.dumps(conn)


@pytest.fixture
def fresh_tokens(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No token cached anywhere: the next call must exchange over HTTPS."""
    TokenCache.clear_process_cache()
    yield
    TokenCache.clear_process_cache()


def test_sandbox_serves_https_and_the_connection_says_which_ca_to_trust(tls_sandbox: EshopboxSandbox) -> None:
    assert tls_sandbox.origin.startswith("https://")
    extra = json.loads(tls_sandbox.connection_json())["extra"]
    assert extra["ca_bundle"] == tls_sandbox.ca_bundle and Path(extra["ca_bundle"]).is_file()


def test_orders_sync_over_https_lands_exactly_the_truth(
    tls_sandbox: EshopboxSandbox, output_dir: Path, fresh_tokens: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's async path (httpx.AsyncClient) and its token exchange, over TLS."""
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", _connection(tls_sandbox, token_cache="process"))
    exchanges = tls_sandbox.stats()["token_exchanges"]
    result = run_dag("eshopbox_orders_hourly", logical_date=RUN_AT)
    assert result.state == "success"
    start = RUN_AT - timedelta(hours=1)
    path = output_dir / "orders" / f"dt={start:%Y-%m-%d}" / f"{start:%Y%m%dT%H%M%S}.jsonl.gz"
    import gzip

    with gzip.open(path, "rt") as fh:
        ids = [json.loads(line)["orderItemID"] for line in fh]
    assert sorted(ids) == sorted(tls_sandbox.truth_order_item_ids(start, RUN_AT))
    assert len(ids) == len(set(ids)) > 0
    assert tls_sandbox.stats()["token_exchanges"] == exchanges + 1


def test_sync_and_async_hook_calls_and_creates_over_https(
    tls_sandbox: EshopboxSandbox, fresh_tokens: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token exchange, a read and a create-order on each path; each order is created once."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_ESHOPBOX_DEFAULT",
        _connection(tls_sandbox, token_cache="process", external_channel_id="CH0001"),
    )
    sku = tls_sandbox.products()[0]["sku"]
    exchanges = tls_sandbox.stats()["token_exchanges"]

    hook = EshopboxHook()
    ok, message = hook.test_connection()
    assert ok, message
    assert hook.create_order(sample_order("TLS-SYNC-1", sku)).status == "created"
    assert hook.get_order("TLS-SYNC-1")["customerOrderNumber"] == "TLS-SYNC-1"
    hook.close()
    assert tls_sandbox.stats()["token_exchanges"] == exchanges + 1

    TokenCache.clear_process_cache()

    async def on_a_loop_of_our_own() -> tuple[str, int]:
        async with EshopboxHook() as ahook:
            created = await ahook.acreate_order(sample_order("TLS-ASYNC-1", sku))
            page = await ahook.afetch_orders_page(api.orders_window_filter(0, 2**42), per_page=5)
            return created.status, len(page.hits)

    assert asyncio.run(on_a_loop_of_our_own()) == ("created", 5)
    assert tls_sandbox.stats()["token_exchanges"] == exchanges + 2
    created = tls_sandbox.orders_created()
    assert created["TLS-SYNC-1"] == 1 and created["TLS-ASYNC-1"] == 1


def test_a_certificate_the_client_does_not_trust_is_refused_clearly(
    tls_sandbox: EshopboxSandbox, fresh_tokens: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ca_bundle the sandbox's CA is unknown: no request gets through, on either path, and the
    error names the fix instead of a bare SSL traceback."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_ESHOPBOX_DEFAULT", _connection(tls_sandbox, ca_bundle=None, token_cache="process")
    )
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    before = tls_sandbox.stats()["requests"]
    hook = EshopboxHook()
    ok, message = hook.test_connection()
    assert not ok
    assert "CERTIFICATE_VERIFY_FAILED" in message and "ca_bundle" in message, message
    refused = r"TLS to 127.0.0.1:\d+ failed.*CERTIFICATE_VERIFY_FAILED.*ca_bundle"  # the host is named
    with pytest.raises(EshopboxApiError, match=refused):
        asyncio.run(EshopboxHook().afetch_orders_page(api.orders_window_filter(0, 1)))
    assert tls_sandbox.stats()["requests"] == before  # the handshake failed: nothing was served
