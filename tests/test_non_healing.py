"""Errors that no retry can heal are AirflowFailExceptions, which Airflow's task runner fails on try 1
whatever the task's retries (issue 25, 4); a transient outage is still left to the retries.
(``dag.test()`` does not retry at all, so it cannot tell the two apart: the exception class does.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_eshopbox.exceptions import (
    EshopboxApiError,
    EshopboxConfigError,
    EshopboxCredentialsRejectedError,
)
from airflow_provider_eshopbox.hooks import _http as transport
from airflow_provider_eshopbox.hooks._http import RetryPolicy
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook
from airflow_provider_eshopbox.hooks.token_cache import TokenCache
from airflow_provider_eshopbox.operators.inventory import EshopboxInventoryToStorageOperator
from airflow_provider_eshopbox.sandbox import EshopboxSandbox

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[EshopboxSandbox]:
    with EshopboxSandbox(orders=50, seed=5) as sb:
        yield sb


@pytest.fixture
def sb(
    sandbox: EshopboxSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[EshopboxSandbox]:
    monkeypatch.setenv("ESHOPBOX_TOKEN_CACHE_DIR", str(tmp_path / "tokens"))
    TokenCache.clear_process_cache()
    EshopboxHook._rotated_refresh_tokens.clear()
    transport._limiters.clear()
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", sandbox.connection_json())
    sandbox.faults.clear()
    sandbox.reset_stats()
    yield sandbox
    sandbox.faults.clear()


def _with(sb: EshopboxSandbox, **changes: Any) -> str:
    conn = json.loads(sb.connection_json())
    for key, value in changes.items():
        if key in conn:
            conn[key] = value
        else:
            conn["extra"][key] = value
    return json.dumps(conn)


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("invalid_client", "Eshopbox rejected the credentials of connection 'eshopbox_default'"),
        ("invalid_grant", "Eshopbox rejected the credentials of connection 'eshopbox_default'"),
    ],
)
def test_rejected_credentials_are_not_retried(
    sb: EshopboxSandbox, monkeypatch: pytest.MonkeyPatch, case: str, expect: str
) -> None:
    """Airflow's task runner fails an AirflowFailException without using the task's retries."""
    bad = {"password": "not-the-secret"} if case == "invalid_client" else {"refresh_token": "revoked"}
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", _with(sb, **bad))
    with EshopboxHook() as hook, pytest.raises(EshopboxCredentialsRejectedError, match=expect) as caught:
        hook.fetch_inventory_page()
    assert isinstance(caught.value, AirflowFailException)
    assert case in str(caught.value)  # the server's reason is kept
    assert sb.stats()["by_route"].get("inventory_list", 0) == 0


def test_a_bad_argument_is_not_retried(sb: EshopboxSandbox, output_dir: Path) -> None:
    operator = EshopboxInventoryToStorageOperator(
        task_id="t", destination=f"file://{output_dir}/inv.jsonl", max_concurrency=0
    )
    with pytest.raises(EshopboxConfigError, match="max_concurrency") as caught:
        operator.execute({})
    assert isinstance(caught.value, AirflowFailException)
    assert sb.stats()["requests"] == 0


def test_a_transient_outage_is_still_left_to_the_retries(sb: EshopboxSandbox) -> None:
    sb.faults.configure(error_rate=1.0, error_statuses=(503,), routes=["inventory_list"])
    policy = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.02)
    with EshopboxHook(retry_policy=policy) as hook, pytest.raises(EshopboxApiError, match="503") as caught:
        hook.fetch_inventory_page()
    assert not isinstance(caught.value, AirflowFailException)
    assert sb.stats()["by_route"]["inventory_list"] == 2
