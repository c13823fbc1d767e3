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
# schema is lax ("schema" allows extra keys there; the 3.3.2 UI reads only these, values_display
# labelling the options of an enum).
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
    "values_display",
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
    if "default" in field_schema:
        # A default the field itself rejects would be saved as is: only "" for a required field,
        # which the UI treats as empty (Save stays disabled) without showing an error up front.
        valid = jsonschema.Draft7Validator(field_schema).is_valid(field_schema["default"])
        assert valid or field_schema["default"] == "", f"{name}: default {field_schema['default']!r}"


def test_secrets_are_password_fields_and_standard_fields_are_relabelled() -> None:
    conn_type = _conn_type()
    assert conn_type["conn-fields"]["refresh_token"]["schema"]["format"] == "password"
    behaviour = conn_type["ui-field-behaviour"]
    assert set(behaviour["hidden-fields"]) <= HIDEABLE
    assert behaviour["relabeling"] == {"login": "Client ID", "password": "Client Secret"}
    # Airflow shows placeholders of standard fields only (extra fields: in their descriptions).
    assert set(behaviour["placeholders"]) <= {"login", "password"}
    assert all(p.startswith("Required") for p in behaviour["placeholders"].values())
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


def test_optional_dropdowns_offer_no_null_and_required_fields_have_no_null_type() -> None:
    """A null in an enum shows as a "null" option; a list type holding "null" makes a field optional."""
    fields = _conn_type()["conn-fields"]
    for name, field in fields.items():
        assert None not in field["schema"].get("enum", []), name
    for name in ("workspace", "refresh_token"):
        assert fields[name]["schema"]["type"] == "string", f"{name} must be required in the form"


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("auth_url", "not a url"),
        ("api_url", "acme.myeshopbox.com"),
        ("wms_url", "https://"),
        ("workspace", "Acme Corp"),
    ],
)
def test_declared_patterns_reject_what_the_parser_rejects(name: str, bad: str) -> None:
    from airflow_provider_eshopbox.connection import parse_connection
    from airflow_provider_eshopbox.exceptions import EshopboxConfigError

    assert not jsonschema.Draft7Validator(_conn_type()["conn-fields"][name]["schema"]).is_valid(bad)
    extra = {"workspace": "acme", "refresh_token": "r" * 20, name: bad}
    with pytest.raises(EshopboxConfigError) as err:
        parse_connection("mine", login="id", password="secret", extra=extra)
    assert err.value.field == name
    assert _conn_type()["conn-fields"][name]["label"] in str(err.value)


def test_no_default_on_a_field_whose_key_airflow_redacts() -> None:
    """The API sends such a default as "***", which the form would save unless the user retypes it."""
    from airflow.sdk.log import redact

    for name, field in _conn_type()["conn-fields"].items():
        if "default" in field["schema"]:
            assert redact(field["schema"]["default"], name) == field["schema"]["default"], name


def test_messages_use_the_form_labels() -> None:
    from airflow_provider_eshopbox.connection import FIELD_LABELS

    conn_type = _conn_type()
    for name, field in conn_type["conn-fields"].items():
        assert FIELD_LABELS[name] == field["label"], name
    for name, label in conn_type["ui-field-behaviour"]["relabeling"].items():
        assert FIELD_LABELS[name] == label, name


def test_the_test_buttons_temporary_id_is_not_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_eshopbox.connection import parse_connection
    from airflow_provider_eshopbox.exceptions import EshopboxConfigError

    monkeypatch.setenv("AIRFLOW_CONN_QWERTZ12", "eshopbox://")
    with pytest.raises(EshopboxConfigError) as err:
        parse_connection("QwErTz12", login="", password="s", extra={})
    assert str(err.value).startswith("The Eshopbox connection being tested, form field 'Client ID': login")
    with pytest.raises(EshopboxConfigError) as err:
        parse_connection("eshopbox_default", login="", password="s", extra={})
    assert str(err.value).startswith("Eshopbox connection 'eshopbox_default', form field 'Client ID'")


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
