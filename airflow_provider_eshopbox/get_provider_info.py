"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point.

The connection form is declared here (Airflow >= 3.2 reads ``hook-name``, ``ui-field-behaviour`` and
``conn-fields`` without importing the hook), so listing providers or rendering the form stays cheap.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_eshopbox import __version__

_OPTIONAL_STRING: list[str] = ["string", "null"]
_OPTIONAL_NUMBER: list[str] = ["number", "null"]
_URL_PATTERN = r"^https?://[^\s/?#]+[^\s]*$"

# Keys are the plain ``extra`` names the UI saves and ``connection.py`` reads (a test keeps them equal).
# How Airflow 3.3.2's React UI renders these (components/FlexibleForm/*.tsx; see docs/ARCHITECTURE.md):
# - a field is *required* (red asterisk, Save disabled while empty) iff "type" is not a list holding
#   "null"; its "Required" error shows at once when its value is null, so required fields default to "";
# - the API redacts the *default* of any field whose key looks secret ("token" in refresh_token,
#   token_cache) to "***", which the form would then save: such fields get no default;
# - "enum" becomes a dropdown, a null in it a "null" option: optional dropdowns list only real values
#   (values_display labels them);
# - "minimum"/"maximum" clamp a number when the field loses focus; "maxLength" stops typing;
# - "pattern", "format" and "minLength" are NOT checked by the UI or the API: connection.py checks
#   them before any network call, naming the field's label;
# - "placeholders" of ui-field-behaviour reach only the standard fields (login, password): examples for
#   extra fields therefore live in their descriptions.
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "workspace": {
        "label": "Workspace",
        "description": "Required. Workspace slug, e.g. acme for https://acme.myeshopbox.com: lowercase "
        "letters, digits and inner hyphens.",
        "schema": {
            "type": "string",
            "default": "",
            "minLength": 1,
            "maxLength": 63,
            "pattern": "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
        },
    },
    "refresh_token": {
        "label": "Refresh token",
        "description": "Required. The custom app's refresh token (Apps > your custom app in Eshopbox).",
        "schema": {"type": "string", "format": "password", "minLength": 1},
    },
    "external_channel_id": {
        "label": "External channel ID",
        "description": "Sales channel ID used when creating orders (the app's External Channel ID), "
        "e.g. CH0001.",
        "schema": {"type": _OPTIONAL_STRING, "maxLength": 200},
    },
    "auth_url": {
        "label": "Token URL",
        "description": "Leave empty for Eshopbox. Override only for a sandbox: an http(s) URL. "
        "Default https://auth.myeshopbox.com/api/v1/generateToken.",
        "schema": {"type": _OPTIONAL_STRING, "format": "url", "pattern": _URL_PATTERN},
    },
    "api_url": {
        "label": "Workspace API base URL",
        "description": "Leave empty for Eshopbox. Override only for a sandbox: an http(s) URL. "
        "Default https://<workspace>.myeshopbox.com.",
        "schema": {"type": _OPTIONAL_STRING, "format": "url", "pattern": _URL_PATTERN},
    },
    "wms_url": {
        "label": "WMS API base URL",
        "description": "Leave empty for Eshopbox. Override only for a sandbox: an http(s) URL. "
        "Default https://wms.eshopbox.com.",
        "schema": {"type": _OPTIONAL_STRING, "format": "url", "pattern": _URL_PATTERN},
    },
    "max_requests_per_second": {
        "label": "Max requests per second",
        "description": "Client-side rate limit shared by all requests of one hook, 0.1 to 1000 "
        "(values outside are clamped), e.g. 5. Empty: no limit.",
        "schema": {"type": _OPTIONAL_NUMBER, "minimum": 0.1, "maximum": 1000},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Connect/read/write timeout of each HTTP request, 1 to 600 s (values outside "
        "are clamped). Empty: 30.",
        "schema": {"type": _OPTIONAL_NUMBER, "minimum": 1, "maximum": 600},
    },
    "token_cache": {
        "label": "Token cache",
        "description": "shared (the default when empty): one token exchange per token lifetime for "
        "every task on this host; process: one per task process; deployment: one for every worker and "
        "pod, kept encrypted in an Airflow Variable.",
        "schema": {
            "type": _OPTIONAL_STRING,
            "enum": ["shared", "process", "deployment"],
            "values_display": {
                "shared": "shared (one per host)",
                "process": "process (one per task)",
                "deployment": "deployment (one for all workers)",
            },
        },
    },
    "ca_bundle": {
        "label": "CA bundle (PEM file)",
        "description": "Path, on the workers, of a PEM file of CA certificates to trust instead of the "
        "system's: a corporate TLS proxy's CA, or the sandbox's (--tls), e.g. "
        "/etc/ssl/certs/corporate-proxy-ca.pem. Empty: the system's CAs.",
        "schema": {"type": _OPTIONAL_STRING},
    },
    "verify": {
        "label": "Verify TLS certificates",
        "description": "Leave on. Off disables certificate checks entirely (never for production).",
        "schema": {"type": ["boolean", "null"], "default": True},
    },
    "allow_plain_http": {
        "label": "Allow plain http",
        "description": "Leave off. An http:// URL off loopback is refused, as it would send the client "
        "secret and tokens unencrypted; on allows it, with a warning in every task's log.",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
}


def get_provider_info() -> dict[str, Any]:
    """Return the provider-info dict (validated in tests against Airflow's own schemas)."""
    return {
        "package-name": "airflow-provider-eshopbox",
        "name": "Eshopbox",
        "description": "Eshopbox (e-commerce fulfilment) connection, hook, order and inventory "
        "operators, sensors, and a local Eshopbox sandbox.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Eshopbox",
                "external-doc-url": "https://docs.eshopbox.com",
                "tags": ["service"],
            }
        ],
        "cli": ["airflow_provider_eshopbox.cli.get_cli_commands"],
        "connection-types": [
            {
                "connection-type": "eshopbox",
                "hook-name": "Eshopbox",
                "hook-class-name": "airflow_provider_eshopbox.hooks.eshopbox.EshopboxHook",
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port", "extra"],
                    "relabeling": {"login": "Client ID", "password": "Client Secret"},
                    # Only standard fields show placeholders in Airflow 3.3.2; these can't be marked
                    # required by a provider, so the placeholder says it.
                    "placeholders": {
                        "login": "Required: the custom app's client_id",
                        "password": "Required: the custom app's client_secret",
                    },
                },
                "conn-fields": CONN_FIELDS,
            }
        ],
        "hooks": [
            {
                "integration-name": "Eshopbox",
                "python-modules": ["airflow_provider_eshopbox.hooks.eshopbox"],
            }
        ],
        "operators": [
            {
                "integration-name": "Eshopbox",
                "python-modules": [
                    "airflow_provider_eshopbox.operators.orders",
                    "airflow_provider_eshopbox.operators.inventory",
                    "airflow_provider_eshopbox.operators.create_orders",
                    "airflow_provider_eshopbox.operators.streams",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Eshopbox",
                "python-modules": [
                    "airflow_provider_eshopbox.sensors.order_status",
                    "airflow_provider_eshopbox.sensors.inventory",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "Eshopbox",
                "python-modules": [
                    "airflow_provider_eshopbox.triggers.order_status",
                    "airflow_provider_eshopbox.triggers.inventory",
                ],
            }
        ],
    }
