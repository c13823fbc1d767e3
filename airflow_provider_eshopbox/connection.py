"""Read and validate an Eshopbox Airflow Connection into a typed config, before any network call."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from airflow_provider_eshopbox import api
from airflow_provider_eshopbox.exceptions import EshopboxConfigError

CONN_TYPE = "eshopbox"
DEFAULT_CONN_ID = "eshopbox_default"
LEGACY_EXTRA_PREFIX = f"extra__{CONN_TYPE}__"

# Every extra key the parser reads; the provider-info form must declare exactly these.
CONN_EXTRA_FIELDS: tuple[str, ...] = (
    "refresh_token",
    "workspace",
    "external_channel_id",
    "auth_url",
    "api_url",
    "wms_url",
    "max_requests_per_second",
    "timeout",
    "token_cache",
    "ca_bundle",
    "verify",
    "allow_plain_http",
)
SECRET_EXTRA_FIELDS: tuple[str, ...] = ("refresh_token",)
# What the connection form calls each field (messages name both; a test keeps these equal to the form).
FIELD_LABELS: dict[str, str] = {
    "login": "Client ID",
    "password": "Client Secret",
    "extra": "Extra Fields JSON",
    "refresh_token": "Refresh token",
    "workspace": "Workspace",
    "external_channel_id": "External channel ID",
    "auth_url": "Token URL",
    "api_url": "Workspace API base URL",
    "wms_url": "WMS API base URL",
    "max_requests_per_second": "Max requests per second",
    "timeout": "Timeout (seconds)",
    "token_cache": "Token cache",
    "ca_bundle": "CA bundle (PEM file)",
    "verify": "Verify TLS certificates",
    "allow_plain_http": "Allow plain http",
}
# The UI's Test button tests a copy of the form under a random 8-letter id, exported as an env var.
_TRANSIENT_TEST_ID_RE = re.compile(r"^(?=.*[a-z])(?=.*[A-Z])[A-Za-z0-9]{8}$")

DEFAULT_TIMEOUT = 30.0
TOKEN_CACHE_SHARED = "shared"
TOKEN_CACHE_PROCESS = "process"
#: Opt-in: one token and one rate budget for every worker and pod, through an Airflow Variable.
TOKEN_CACHE_DEPLOYMENT = "deployment"
TOKEN_CACHE_MODES: tuple[str, ...] = (TOKEN_CACHE_SHARED, TOKEN_CACHE_PROCESS, TOKEN_CACHE_DEPLOYMENT)
TokenCacheMode = Literal["shared", "process", "deployment"]
_WORKSPACE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class EshopboxConnectionConfig:
    """Validated settings of one Eshopbox connection; ``repr`` hides the secrets."""

    conn_id: str
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    workspace: str
    auth_url: str = api.DEFAULT_AUTH_URL
    api_url: str = ""
    wms_url: str = api.DEFAULT_WMS_URL
    external_channel_id: str | None = None
    max_requests_per_second: float | None = None
    timeout: float = DEFAULT_TIMEOUT
    token_cache: TokenCacheMode = "shared"
    #: TLS: True (the system's CAs), a PEM bundle's path (a corporate proxy's or a sandbox's CA), or False
    verify: bool | str = True

    @property
    def insecure(self) -> dict[str, str]:
        """Settings that let the credentials travel unprotected, by field: what each means (the hook
        logs each once per task)."""
        found: dict[str, str] = {}
        if self.verify is False:
            found["verify"] = "false: TLS certificates are not checked, so a machine on the path can read "
            found["verify"] += "the client secret and tokens; never for production"
        for name in ("auth_url", "api_url", "wms_url"):
            url = getattr(self, name)
            if urlsplit(url).scheme == "http" and not _loopback(url):
                found[name] = f"{url} is plain http (allowed by allow_plain_http): the client secret and "
                found[name] += "tokens travel unencrypted"
        return found

    def base_url(self, host: api.HostKind) -> str:
        """Base URL for a host kind; the auth 'base' is the full token URL."""
        return {"workspace": self.api_url, "wms": self.wms_url, "auth": self.auth_url}[host]

    @property
    def cache_key(self) -> str:
        """Conn id plus a sha256 of everything that decides which token is valid."""
        material = "\0".join((self.client_id, self.client_secret, self.refresh_token, self.auth_url))
        return f"{self.conn_id}:{hashlib.sha256(material.encode()).hexdigest()}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must be registered with the secret masker."""
        return (self.client_secret, self.refresh_token)


def _describe(conn_id: str) -> str:
    """``connection 'id'``, or a neutral phrase for the temporary id of the UI's Test button."""
    if _TRANSIENT_TEST_ID_RE.match(conn_id) and f"AIRFLOW_CONN_{conn_id.upper()}" in os.environ:
        return "the Eshopbox connection being tested"
    return f"Eshopbox connection {conn_id!r}"


def _fail(conn_id: str, name: str, problem: str, fix: str) -> EshopboxConfigError:
    where = _describe(conn_id)
    label = FIELD_LABELS.get(name, name)
    return EshopboxConfigError(
        f"{where[0].upper()}{where[1:]}, form field {label!r}: {name} {problem}; {fix}.",
        field=name,
        conn_id=conn_id,
    )


def _extra(extra: Mapping[str, Any], name: str) -> Any:
    """Plain key as the UI saves it, else the legacy ``extra__eshopbox__`` key; blanks are unset."""
    for key in (name, LEGACY_EXTRA_PREFIX + name):
        value = extra.get(key)
        if isinstance(value, str):
            value = value.strip()
        if value not in (None, ""):
            return value
    return None


def _loopback(url: str) -> bool:
    """Whether a URL's host is this machine's loopback (plain http to it never leaves the machine)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(conn_id: str, name: str, value: Any, default: str, workspace: str, plain_http: bool) -> str:
    raw = default if value is None else value
    if not isinstance(raw, str):
        raise _fail(conn_id, name, f"must be a string URL, got {type(raw).__name__}", "give an http(s) URL")
    url = raw.replace("{workspace}", workspace).rstrip("/")
    parts = urlsplit(url)
    if "@" in parts.netloc:  # the URL is not quoted: it may hold a password
        raise _fail(
            conn_id,
            name,
            "holds a user name or password before '@'",
            "put credentials only in their own fields",
        )
    if parts.scheme == "http" and parts.hostname and not plain_http and not _loopback(url):
        raise _fail(
            conn_id,
            name,
            f"is plain http to {parts.hostname}, which would send the client secret and tokens unencrypted",
            "use https, or set the extra allow_plain_http to true ('Allow plain http') to accept that",
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail(
            conn_id,
            name,
            f"is not an http(s) URL with a host ({url!r})",
            "give a URL like https://host/path, or leave the field empty for Eshopbox's own",
        )
    return url


def _positive(conn_id: str, name: str, value: Any, default: float | None) -> float | None:
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _fail(conn_id, name, f"must be a number, got {value!r}", "set a positive number") from None
    if not number > 0 or number == float("inf"):
        raise _fail(conn_id, name, f"must be a positive number, got {value!r}", "set a positive number")
    return number


def _required(conn_id: str, name: str, value: Any, fix: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _fail(conn_id, name, "is missing", fix)
    if not isinstance(value, str):
        raise _fail(conn_id, name, f"must be a string, got {type(value).__name__}", fix)
    return value.strip()


def _flag(conn_id: str, extra: Mapping[str, Any], name: str, default: bool) -> bool:
    flag = _extra(extra, name)
    if flag is None:
        return default
    text = str(flag).strip().lower()
    if text not in ("true", "false", "1", "0", "yes", "no"):
        raise _fail(conn_id, name, f"must be true or false, got {flag!r}", f"leave it empty for {default}")
    return text in ("true", "1", "yes")


def _verify(conn_id: str, extra: Mapping[str, Any]) -> bool | str:
    """TLS verification from the ``ca_bundle`` (a PEM file) and ``verify`` (a bool) extras."""
    bundle = _extra(extra, "ca_bundle")
    if not _flag(conn_id, extra, "verify", True):
        return False
    if bundle is None:
        return True
    fix = "give the path of a PEM file holding the CA certificates to trust"
    if not isinstance(bundle, str) or not os.path.isfile(bundle):
        raise _fail(conn_id, "ca_bundle", f"{bundle!r} is not a readable file on this worker", fix)
    try:  # what the client will do with it: a file that is not PEM certificates fails here, not mid-task
        ssl.create_default_context().load_verify_locations(cafile=bundle)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise _fail(conn_id, "ca_bundle", f"{bundle!r} holds no PEM CA certificate ({exc})", fix) from None
    return bundle


def parse_connection(
    conn_id: str, *, login: str | None, password: str | None, extra: Mapping[str, Any] | None
) -> EshopboxConnectionConfig:
    """Validate connection fields into a config; raises EshopboxConfigError naming the field."""
    extra = extra or {}
    if not isinstance(extra, Mapping):
        raise _fail(conn_id, "extra", "is not a JSON object", "store the extras as a JSON object")
    client_id = _required(conn_id, "login", login, "put the custom app's Client ID in the Client ID field")
    client_secret = _required(
        conn_id, "password", password, "put the custom app's Client Secret in the Client Secret field"
    )
    refresh_token = _required(
        conn_id,
        "refresh_token",
        _extra(extra, "refresh_token"),
        "copy the refresh token from the custom app into the Refresh token field",
    )
    workspace = _required(
        conn_id,
        "workspace",
        _extra(extra, "workspace"),
        "set the workspace slug, e.g. acme for https://acme.myeshopbox.com",
    ).lower()
    if not _WORKSPACE_RE.match(workspace):
        raise _fail(
            conn_id,
            "workspace",
            f"{workspace!r} is not a DNS-label slug",
            "use lowercase letters, digits and inner hyphens only (at most 63), e.g. acme",
        )
    token_cache = str(_extra(extra, "token_cache") or TOKEN_CACHE_SHARED).lower()
    if token_cache not in TOKEN_CACHE_MODES:
        raise _fail(
            conn_id,
            "token_cache",
            f"has unknown value {token_cache!r}",
            "use 'shared', 'process' or 'deployment'",
        )
    channel = _extra(extra, "external_channel_id")
    plain = _flag(conn_id, extra, "allow_plain_http", False)
    return EshopboxConnectionConfig(
        conn_id=conn_id,
        client_id=client_id,
        client_secret=client_secret,
        refresh_token=refresh_token,
        workspace=workspace,
        auth_url=_url(conn_id, "auth_url", _extra(extra, "auth_url"), api.DEFAULT_AUTH_URL, workspace, plain),
        api_url=_url(conn_id, "api_url", _extra(extra, "api_url"), api.DEFAULT_API_URL, workspace, plain),
        wms_url=_url(conn_id, "wms_url", _extra(extra, "wms_url"), api.DEFAULT_WMS_URL, workspace, plain),
        external_channel_id=None if channel is None else str(channel),
        max_requests_per_second=_positive(
            conn_id, "max_requests_per_second", _extra(extra, "max_requests_per_second"), None
        ),
        timeout=_positive(conn_id, "timeout", _extra(extra, "timeout"), DEFAULT_TIMEOUT) or DEFAULT_TIMEOUT,
        token_cache="process"
        if token_cache == TOKEN_CACHE_PROCESS
        else "deployment"
        if token_cache == TOKEN_CACHE_DEPLOYMENT
        else "shared",
        verify=_verify(conn_id, extra),
    )


def config_from_connection(conn: Any, extra: Mapping[str, Any] | None = None) -> EshopboxConnectionConfig:
    """Build the config from an Airflow Connection; pass ``extra`` when it was read asynchronously."""
    if extra is None:
        extra = conn.extra_dejson
    return parse_connection(conn.conn_id, login=conn.login, password=conn.password, extra=extra)
