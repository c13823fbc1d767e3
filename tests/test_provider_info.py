"""The provider is discoverable and its metadata passes Airflow's own schemas, strictly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import airflow
import jsonschema
import pytest

from airflow_provider_eshopbox import __version__
from airflow_provider_eshopbox.get_provider_info import get_provider_info

AIRFLOW_DIR = Path(airflow.__file__).parent

# The strict rules of airflow-core's provider.yaml.schema.json for conn-fields, tightened where the
# schema is lax ("schema" allows extra keys there; the UI ignores anything not listed here).
ALLOWED_FIELD_KEYS = {"label", "schema", "description"}
ALLOWED_SCHEMA_KEYS = {
    "type",
    "default",
    "format",
    "enum",
    "minimum",
    "maximum",
    "pattern",
    "minLength",
    "maxLength",
}
ALLOWED_FORMATS = {"password", "multiline", "email", "url", "json", "date", "date-time", "time"}
ALLOWED_TYPES = {"string", "integer", "boolean", "number", "object", "array", "null"}
HIDEABLE = {"description", "host", "port", "login", "password", "schema", "extra"}


def _conn_type() -> dict:
    (conn_type,) = get_provider_info()["connection-types"]
    return conn_type


def test_entry_point_resolves_to_get_provider_info() -> None:
    eps = [
        ep
        for ep in entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_eshopbox")
    ]
    assert [ep.load() for ep in eps] == [get_provider_info]


def test_provider_info_validates_against_runtime_schema() -> None:
    schema = json.loads((AIRFLOW_DIR / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_connection_type_validates_against_provider_yaml_schema() -> None:
    schema = json.loads((AIRFLOW_DIR / "provider.yaml.schema.json").read_text())
    jsonschema.validate(_conn_type(), schema["properties"]["connection-types"]["items"])


@pytest.mark.parametrize("name", sorted(_conn_type()["conn-fields"]))
def test_each_conn_field_follows_the_strict_rules(name: str) -> None:
    field = _conn_type()["conn-fields"][name]
    assert set(field) <= ALLOWED_FIELD_KEYS, f"{name}: unexpected keys {set(field) - ALLOWED_FIELD_KEYS}"
    assert isinstance(field["label"], str)
    assert field["label"]
    field_schema = field["schema"]
    assert set(field_schema) <= ALLOWED_SCHEMA_KEYS, f"{name}: {set(field_schema) - ALLOWED_SCHEMA_KEYS}"
    types = field_schema["type"] if isinstance(field_schema["type"], list) else [field_schema["type"]]
    assert set(types) <= ALLOWED_TYPES
    if "format" in field_schema:
        assert field_schema["format"] in ALLOWED_FORMATS
    # Each field's schema must itself be a valid JSON Schema the UI can validate input with.
    jsonschema.Draft7Validator.check_schema(field_schema)


def test_secrets_are_password_fields_and_standard_fields_are_relabelled() -> None:
    conn_type = _conn_type()
    assert conn_type["conn-fields"]["refresh_token"]["schema"]["format"] == "password"
    behaviour = conn_type["ui-field-behaviour"]
    assert set(behaviour["hidden-fields"]) <= HIDEABLE
    assert behaviour["relabeling"] == {"login": "Client ID", "password": "Client Secret"}
    assert {"login", "password", "host", "port", "schema", "extra"} >= set(behaviour["hidden-fields"]) | {
        "login"
    }


def test_conn_fields_match_what_the_connection_parser_reads() -> None:
    from airflow_provider_eshopbox.connection import CONN_EXTRA_FIELDS

    assert set(_conn_type()["conn-fields"]) == set(CONN_EXTRA_FIELDS)


def test_required_form_fields_reject_empty_values() -> None:
    fields = _conn_type()["conn-fields"]
    workspace = jsonschema.Draft7Validator(fields["workspace"]["schema"])
    assert workspace.is_valid("acme-store")
    assert not workspace.is_valid("")
    assert not workspace.is_valid("Acme Store")
    assert not workspace.is_valid(None)
    assert not jsonschema.Draft7Validator(fields["refresh_token"]["schema"]).is_valid("")


def test_hook_class_imports_and_matches_the_declared_connection_type() -> None:
    from airflow_provider_eshopbox.hooks.eshopbox import EshopboxHook

    conn_type = _conn_type()
    assert conn_type["hook-class-name"] == f"{EshopboxHook.__module__}.{EshopboxHook.__qualname__}"
    assert EshopboxHook.conn_type == conn_type["connection-type"] == "eshopbox"
    assert EshopboxHook.conn_name_attr == "eshopbox_conn_id"
    assert EshopboxHook.default_conn_name == "eshopbox_default"


def test_providers_manager_loads_the_declarative_form() -> None:
    """Airflow's own ProvidersManager turns the metadata into form widgets, secrets flagged sensitive."""
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    widgets = manager.connection_form_widgets
    assert widgets["extra__eshopbox__refresh_token"].is_sensitive
    assert not widgets["extra__eshopbox__workspace"].is_sensitive
    behaviours = manager.field_behaviours["eshopbox"]
    assert behaviours["relabeling"]["login"] == "Client ID"
    assert manager.providers["airflow-provider-eshopbox"].version == __version__


def test_airflow_providers_list_shows_the_package_with_its_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=True,
    )
    providers = {p["package_name"]: p["version"] for p in json.loads(result.stdout)}
    assert providers["airflow-provider-eshopbox"] == __version__


def test_every_listed_module_imports() -> None:
    import importlib

    info = get_provider_info()
    modules = [
        m
        for key in ("hooks", "operators", "sensors", "triggers")
        for e in info[key]
        for m in e["python-modules"]
    ]
    assert len(modules) == 9  # + operators.streams (issue 16)
    for module in modules:
        importlib.import_module(module)
