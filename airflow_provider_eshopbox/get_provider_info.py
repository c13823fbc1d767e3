"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point.

The connection form is declared here (Airflow >= 3.2 reads ``hook-name``, ``ui-field-behaviour`` and
``conn-fields`` without importing the hook), so listing providers or rendering the form stays cheap.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_eshopbox import __version__

_OPTIONAL_STRING: list[str] = ["string", "null"]
_OPTIONAL_NUMBER: list[str] = ["number", "null"]

# Keys are the plain ``extra`` names the UI saves and ``connection.py`` reads (a test keeps them equal).
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "workspace": {
        "label": "Workspace",
        "description": "Workspace slug: the first label of https://<workspace>.myeshopbox.com.",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": 63,
            "pattern": "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
        },
    },
    "refresh_token": {
        "label": "Refresh token",
        "description": "The custom app's refresh token (Apps > your custom app in Eshopbox).",
        "schema": {"type": "string", "format": "password", "minLength": 1},
    },
    "external_channel_id": {
        "label": "External channel ID",
        "description": "Sales channel ID used when creating orders (the app's External Channel ID).",
        "schema": {"type": _OPTIONAL_STRING},
    },
    "auth_url": {
        "label": "Token URL",
        "description": "Override only for a sandbox. Default https://auth.myeshopbox.com/api/v1/generateToken.",
        "schema": {"type": _OPTIONAL_STRING, "format": "url"},
    },
    "api_url": {
        "label": "Workspace API base URL",
        "description": "Override only for a sandbox. Default https://<workspace>.myeshopbox.com.",
        "schema": {"type": _OPTIONAL_STRING, "format": "url"},
    },
    "wms_url": {
        "label": "WMS API base URL",
        "description": "Override only for a sandbox. Default https://wms.eshopbox.com.",
        "schema": {"type": _OPTIONAL_STRING, "format": "url"},
    },
    "max_requests_per_second": {
        "label": "Max requests per second",
        "description": "Client-side rate limit shared by all requests of one hook. Empty: no limit.",
        "schema": {"type": _OPTIONAL_NUMBER, "minimum": 0.1, "maximum": 1000},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Connect/read/write timeout of each HTTP request. Default 30.",
        "schema": {"type": _OPTIONAL_NUMBER, "minimum": 1, "maximum": 600},
    },
    "token_cache": {
        "label": "Token cache",
        "description": "shared: one token exchange per lifetime for every task on this host; "
        "process: one per task process.",
        "schema": {"type": _OPTIONAL_STRING, "enum": ["shared", "process", None]},
    },
    "ca_bundle": {
        "label": "CA bundle (PEM file)",
        "description": "Path, on the workers, of a PEM file of CA certificates to trust instead of the "
        "system's: a corporate TLS proxy's CA, or the sandbox's (--tls). Empty: the system's CAs.",
        "schema": {"type": _OPTIONAL_STRING},
    },
    "verify": {
        "label": "Verify TLS certificates",
        "description": "Leave on. Off disables certificate checks entirely (never for production).",
        "schema": {"type": ["boolean", "null"]},
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
        "connection-types": [
            {
                "connection-type": "eshopbox",
                "hook-name": "Eshopbox",
                "hook-class-name": "airflow_provider_eshopbox.hooks.eshopbox.EshopboxHook",
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port", "extra"],
                    "relabeling": {"login": "Client ID", "password": "Client Secret"},
                    "placeholders": {
                        "login": "client_id of the custom app",
                        "password": "client_secret of the custom app",
                        "workspace": "acme",
                        "external_channel_id": "CH0001",
                        "auth_url": "https://auth.myeshopbox.com/api/v1/generateToken",
                        "api_url": "https://<workspace>.myeshopbox.com",
                        "wms_url": "https://wms.eshopbox.com",
                        "max_requests_per_second": "5",
                        "timeout": "30",
                        "token_cache": "shared",
                        "ca_bundle": "/etc/ssl/certs/corporate-proxy-ca.pem",
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
