"""Connection parsing: UI-shaped, legacy-prefixed, env JSON and URI connections; bad input."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
import respx
from airflow.sdk import Connection

from airflow_provider_eshopbox.connection import CONN_EXTRA_FIELDS, parse_connection
from airflow_provider_eshopbox.exceptions import EshopboxConfigError
from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook

from .conftest import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN

EXTRAS = {
    "refresh_token": REFRESH_TOKEN,
    "workspace": "acme",
    "external_channel_id": "CH0001",
    "api_url": "http://127.0.0.1:9/ws/{workspace}",
    "max_requests_per_second": "5",
    "timeout": 12,
    "token_cache": "process",
}


def _env_config(monkeypatch, value: str):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", value)
    return EshopboxHook().get_config()


def test_ui_env_json_uri_and_legacy_build_the_same_config(monkeypatch):
    ui = parse_connection("eshopbox_default", login=CLIENT_ID, password=CLIENT_SECRET, extra=EXTRAS)
    legacy = parse_connection(
        "eshopbox_default",
        login=CLIENT_ID,
        password=CLIENT_SECRET,
        extra={f"extra__eshopbox__{k}": v for k, v in EXTRAS.items()},
    )
    from_json = _env_config(
        monkeypatch,
        json.dumps({"conn_type": "eshopbox", "login": CLIENT_ID, "password": CLIENT_SECRET, "extra": EXTRAS}),
    )
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in EXTRAS.items())
    uri = f"eshopbox://{quote(CLIENT_ID)}:{quote(CLIENT_SECRET)}@/?{query}"
    from_uri = _env_config(monkeypatch, uri)
    assert ui == legacy == from_json == from_uri
    assert ui.api_url == "http://127.0.0.1:9/ws/acme" and ui.max_requests_per_second == 5.0
    assert ui.timeout == 12.0 and ui.token_cache == "process" and ui.external_channel_id == "CH0001"


def test_defaults_and_repr_hides_secrets():
    config = parse_connection(
        "c1",
        login=CLIENT_ID,
        password=CLIENT_SECRET,
        extra={"refresh_token": REFRESH_TOKEN, "workspace": "Acme", "api_url": ""},
    )
    assert config.workspace == "acme"
    assert config.auth_url == "https://auth.myeshopbox.com/api/v1/generateToken"
    assert config.api_url == "https://acme.myeshopbox.com"
    assert config.wms_url == "https://wms.eshopbox.com"
    assert (config.timeout, config.token_cache, config.max_requests_per_second) == (30.0, "shared", None)
    assert CLIENT_SECRET not in repr(config) and REFRESH_TOKEN not in repr(config)
    assert CLIENT_SECRET not in config.cache_key and REFRESH_TOKEN not in config.cache_key


def test_parser_reads_exactly_the_declared_extra_fields():
    read: set[str] = set()

    class Recording(dict):
        def get(self, key, default=None):
            read.add(key)
            return super().get(key, default)

    parse_connection("c", login="a", password="b", extra=Recording(refresh_token="r", workspace="w"))
    plain = {k for k in read if not k.startswith("extra__")}
    assert plain == set(CONN_EXTRA_FIELDS)


def test_edited_connection_changes_cache_key():
    a = parse_connection("c", login="a", password="b", extra={"refresh_token": "r1", "workspace": "w"})
    b = parse_connection("c", login="a", password="b", extra={"refresh_token": "r2", "workspace": "w"})
    assert a.cache_key != b.cache_key and a.cache_key.startswith("c:")


GOOD = {"refresh_token": REFRESH_TOKEN, "workspace": "acme"}


@pytest.mark.parametrize(
    ("field", "login", "password", "extra"),
    [
        ("workspace", CLIENT_ID, CLIENT_SECRET, {"refresh_token": REFRESH_TOKEN}),
        ("refresh_token", CLIENT_ID, CLIENT_SECRET, {"workspace": "acme", "refresh_token": " "}),
        ("login", None, CLIENT_SECRET, GOOD),
        ("password", CLIENT_ID, "", GOOD),
        ("auth_url", CLIENT_ID, CLIENT_SECRET, {**GOOD, "auth_url": "ftp://x/y"}),
        ("api_url", CLIENT_ID, CLIENT_SECRET, {**GOOD, "api_url": "not a url"}),
        ("wms_url", CLIENT_ID, CLIENT_SECRET, {**GOOD, "wms_url": "https://"}),
        ("max_requests_per_second", CLIENT_ID, CLIENT_SECRET, {**GOOD, "max_requests_per_second": "fast"}),
        ("max_requests_per_second", CLIENT_ID, CLIENT_SECRET, {**GOOD, "max_requests_per_second": -1}),
        ("timeout", CLIENT_ID, CLIENT_SECRET, {**GOOD, "timeout": "soon"}),
        ("token_cache", CLIENT_ID, CLIENT_SECRET, {**GOOD, "token_cache": "redis"}),
        ("workspace", CLIENT_ID, CLIENT_SECRET, {**GOOD, "workspace": "acme.myeshopbox.com"}),
        ("workspace", CLIENT_ID, CLIENT_SECRET, {**GOOD, "workspace": "-bad-"}),
        ("ca_bundle", CLIENT_ID, CLIENT_SECRET, {**GOOD, "ca_bundle": "/nonexistent/ca.pem"}),
        ("ca_bundle", CLIENT_ID, CLIENT_SECRET, {**GOOD, "ca_bundle": "/"}),
        ("verify", CLIENT_ID, CLIENT_SECRET, {**GOOD, "verify": "perhaps"}),
        ("allow_plain_http", CLIENT_ID, CLIENT_SECRET, {**GOOD, "allow_plain_http": "perhaps"}),
        # Plain http off loopback would send the secret in clear; userinfo in a URL is a secret in a URL.
        ("api_url", CLIENT_ID, CLIENT_SECRET, {**GOOD, "api_url": "http://eshopbox.example.com/ws"}),
        (
            "auth_url",
            CLIENT_ID,
            CLIENT_SECRET,
            {**GOOD, "auth_url": f"https://u:{CLIENT_SECRET}@a.example/t"},
        ),
        ("wms_url", CLIENT_ID, CLIENT_SECRET, {**GOOD, "wms_url": "https://a@wms.example"}),
        ("ca_bundle", CLIENT_ID, CLIENT_SECRET, {**GOOD, "ca_bundle": __file__}),  # a file, not PEM
    ],
)
def test_bad_connection_fails_before_any_network_call(monkeypatch, field, login, password, extra):
    monkeypatch.setenv(
        "AIRFLOW_CONN_ESHOPBOX_BAD",
        json.dumps({"conn_type": "eshopbox", "login": login, "password": password, "extra": extra}),
    )
    with respx.mock(assert_all_called=False) as mock:  # no routes: any request would error
        with pytest.raises(EshopboxConfigError) as info:
            EshopboxHook("eshopbox_bad").get_order("X-1")
        assert not mock.calls
    message = str(info.value)
    assert info.value.field == field and info.value.conn_id == "eshopbox_bad"
    assert field in message and "'eshopbox_bad'" in message
    assert CLIENT_SECRET not in message and REFRESH_TOKEN not in message


def test_test_connection_reports_config_problem(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ESHOPBOX_DEFAULT", json.dumps({"conn_type": "eshopbox", "login": "x"}))
    ok, message = EshopboxHook().test_connection()
    assert not ok and "password" in message


async def test_aget_config_reads_connection_once(monkeypatch):
    calls = 0
    original = EshopboxHook.aget_connection.__func__

    async def counting(cls, conn_id: str) -> Connection:
        nonlocal calls
        calls += 1
        return await original(cls, conn_id)

    monkeypatch.setattr(EshopboxHook, "aget_connection", classmethod(counting))
    hook = EshopboxHook()
    first = await hook.aget_config()
    assert await hook.aget_config() is first and calls == 1
    assert first.workspace == "acme"


def test_tls_settings_from_the_extras():
    import certifi

    bundle = certifi.where()  # a real PEM bundle: the parser loads it as the client will

    def verify(**extra: object) -> object:
        return parse_connection("c", login=CLIENT_ID, password=CLIENT_SECRET, extra={**GOOD, **extra}).verify

    assert verify() is True
    assert verify(ca_bundle=str(bundle)) == str(bundle)
    assert verify(verify=False) is False and verify(verify="false") is False
    assert verify(verify=True, ca_bundle=str(bundle)) == str(bundle)


def test_insecure_settings_are_refused_or_named_once_per_task(monkeypatch, capfd):
    """http off loopback needs allow_plain_http; then it, and verify=false, each log one warning naming
    the field however many hooks the task makes. Loopback http (the sandbox) stays quiet."""
    plain = {**GOOD, "api_url": "http://eshopbox.example.com/ws", "allow_plain_http": "true"}
    message = "refused without allow_plain_http"
    with pytest.raises(EshopboxConfigError, match="'Allow plain http'") as info:
        parse_connection(
            "c", login=CLIENT_ID, password=CLIENT_SECRET, extra={**plain, "allow_plain_http": None}
        )
    assert info.value.field == "api_url" and "http to eshopbox.example.com" in str(info.value), message
    EshopboxHook._warned_insecure.clear()
    monkeypatch.setenv(
        "AIRFLOW_CONN_ESHOPBOX_DEFAULT",
        json.dumps({"conn_type": "eshopbox", "login": CLIENT_ID, "password": CLIENT_SECRET,
                    "extra": {**plain, "verify": "false", "wms_url": "http://127.0.0.1:9/wms"}}),
    )  # fmt: skip
    for _ in range(3):
        EshopboxHook().get_config()
    out = capfd.readouterr().out  # the hook's own logger (airflow.task.hooks) writes there, not to caplog
    warned = [line.split("[warning  ] ", 1)[1].split(" [airflow.task", 1)[0] for line in out.splitlines()
              if "[warning  ] Eshopbox connection" in line]  # fmt: skip
    assert warned == [
        "Eshopbox connection 'eshopbox_default', form field 'Verify TLS certificates' (verify): false: TLS "
        "certificates are not checked, so a machine on the path can read the client secret and tokens; "
        "never for production",
        "Eshopbox connection 'eshopbox_default', form field 'Workspace API base URL' (api_url): "
        "http://eshopbox.example.com/ws is plain http (allowed by allow_plain_http): the client secret and "
        "tokens travel unencrypted",
    ], warned
