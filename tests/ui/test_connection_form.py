"""The Eshopbox connection form in Airflow's React UI, in headless Chromium against a real API server."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import Airflow, save_dialog_screenshot

# Sandbox-looking values only: nothing here is a real credential.
CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret-0123456789"
REFRESH_TOKEN = "sandbox-refresh-0123456789"
EXTRA_LABELS = [
    "Workspace",
    "Refresh token",
    "External channel ID",
    "Token URL",
    "Workspace API base URL",
    "WMS API base URL",
    "Max requests per second",
    "Timeout (seconds)",
    "Token cache",
    "CA bundle (PEM file)",
    "Verify TLS certificates",
]


def field_label(dialog: Any, label: str) -> Any:
    """A form row's label: its text, then the required indicator ("*") if any."""
    return dialog.locator("label").filter(has_text=re.compile(rf"^{re.escape(label)}\s*\*?$"))


def open_add_form(page: Any) -> Any:
    """Admin > Connections > Add Connection, type Eshopbox; returns the dialog."""
    page.goto("/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    combo = dialog.get_by_role("combobox").first
    combo.fill("Eshopbox")
    page.keyboard.press("Enter")
    dialog.get_by_text("Client ID", exact=True).wait_for()
    return dialog


def open_extra_fields(dialog: Any) -> None:
    dialog.get_by_text("Extra Fields", exact=True).click()
    dialog.locator("#element_workspace").wait_for()


def fill_valid(dialog: Any, conn_id: str) -> None:
    dialog.get_by_label("Connection ID").fill(conn_id)
    dialog.locator("input[name=login]").fill(CLIENT_ID)
    dialog.locator("input[name=password]").fill(CLIENT_SECRET)
    open_extra_fields(dialog)
    dialog.locator("#element_workspace").fill("acme")
    dialog.locator("#element_refresh_token").fill(REFRESH_TOKEN)


def stored(airflow_server: Airflow, conn_id: str) -> dict[str, Any]:
    """The connection as the CLI reads it from the metadata DB (secrets in clear: test values only)."""
    out = airflow_server.cli("connections", "get", conn_id, "-o", "json").stdout
    (conn,) = json.loads(out)
    return conn


def test_fields_labels_and_masking(page: Any) -> None:
    dialog = open_add_form(page)
    # Standard fields: relabelled, the unused ones hidden, "Required" said where Airflow lets us.
    expect_visible = {"Client ID", "Client Secret", "Description"}
    for label in expect_visible:
        expect(field_label(dialog, label)).to_be_visible()
    for hidden in ("Host", "Port", "Schema", "Login", "Password"):
        assert dialog.get_by_text(hidden, exact=True).count() == 0, f"{hidden} should be hidden/relabelled"
    assert dialog.locator("input[name=password]").get_attribute("type") == "password"
    assert dialog.locator("input[name=login]").get_attribute("placeholder").startswith("Required")

    open_extra_fields(dialog)
    for label in EXTRA_LABELS:
        expect(field_label(dialog, label)).to_be_visible()
    # Required extra fields carry the UI's required marker; optional ones do not.
    expect(field_label(dialog, "Workspace")).to_have_text(re.compile(r"\*"))
    expect(field_label(dialog, "Refresh token")).to_have_text(re.compile(r"\*"))
    expect(field_label(dialog, "Token URL")).not_to_have_text(re.compile(r"\*"))
    assert dialog.locator("#element_refresh_token").get_attribute("type") == "password"
    # Descriptions carry the examples (the UI shows no placeholder for extra fields).
    expect(dialog.get_by_text(re.compile(r"e\.g\. acme for https://acme\.myeshopbox\.com"))).to_be_visible()
    # No "Required" error under Workspace before the user has typed anything. (Refresh token still
    # shows one: Airflow would send a "" default for it as "***", see get_provider_info.py.)
    workspace_row = dialog.locator("[role=group]", has=page.locator("#element_workspace"))
    expect(workspace_row).not_to_contain_text("This field is required")
    # Token cache: nothing preselected (empty means shared), and no "null" among the options.
    token_cache = dialog.locator("div", has=page.locator("input[name=element_token_cache]")).last
    expect(token_cache).not_to_contain_text("null")
    token_cache.get_by_role("combobox").click()
    options = [o.strip() for o in page.get_by_role("option").all_inner_texts()]
    assert options == [
        "shared (one per host)",
        "process (one per task)",
        "deployment (one for all workers)",
    ], options
    dialog.get_by_role("heading", name="Add Connection").click()  # closes the menu (Escape closes the dialog)
    expect(page.get_by_role("option")).to_have_count(0)
    save_dialog_screenshot(page, dialog, "connection-form.png")


def test_save_is_disabled_until_required_fields_are_filled(page: Any) -> None:
    dialog = open_add_form(page)
    save = dialog.get_by_role("button", name="Save")
    dialog.get_by_label("Connection ID").fill("ui_required")
    dialog.locator("input[name=login]").fill(CLIENT_ID)
    dialog.locator("input[name=password]").fill(CLIENT_SECRET)
    open_extra_fields(dialog)
    expect(save).to_be_disabled()  # Workspace and Refresh token are empty
    dialog.locator("#element_workspace").fill("acme")
    expect(save).to_be_disabled()  # Refresh token is empty
    dialog.locator("#element_refresh_token").fill(REFRESH_TOKEN)
    expect(save).to_be_enabled()
    dialog.locator("#element_refresh_token").fill("")
    expect(dialog.get_by_text("This field is required").first).to_be_visible()
    expect(save).to_be_disabled()


def test_timeout_below_the_minimum_is_clamped_not_stored(page: Any, airflow_server: Airflow) -> None:
    dialog = open_add_form(page)
    fill_valid(dialog, "ui_clamped")
    timeout = dialog.locator("input[name=element_timeout]")
    timeout.fill("0")
    timeout.blur()
    expect(timeout).to_have_value("1")
    dialog.get_by_role("button", name="Save").click()
    page.get_by_text("ui_clamped", exact=True).wait_for()
    assert float(stored(airflow_server, "ui_clamped")["extra_dejson"]["timeout"]) == 1  # the UI stores "1"


@pytest.mark.parametrize(
    ("field", "bad", "expected"),
    [
        ("workspace", "Acme Corp", "form field 'Workspace': workspace 'acme corp' is not a DNS-label slug"),
        ("auth_url", "not a url", "form field 'Token URL': auth_url is not an http(s) URL"),
        ("api_url", "acme.myeshopbox.com", "form field 'Workspace API base URL': api_url is not an http(s)"),
    ],
)
def test_values_the_ui_cannot_check_fail_clearly_in_airflow_connections_test(
    page: Any, airflow_server: Airflow, field: str, bad: str, expected: str
) -> None:
    """Airflow 3.3.2 checks no pattern or format on save; the provider's check names the form label."""
    conn_id = f"ui_bad_{field}"
    dialog = open_add_form(page)
    fill_valid(dialog, conn_id)
    dialog.locator(f"#element_{field}").fill(bad)
    dialog.get_by_role("button", name="Save").click()
    page.get_by_text(conn_id, exact=True).wait_for()
    result = airflow_server.cli("connections", "test", conn_id, check=False)
    assert expected in result.stdout + result.stderr
    assert f"Eshopbox connection {conn_id!r}" in result.stdout + result.stderr


def test_save_then_edit_keeps_the_secrets(page: Any, airflow_server: Airflow) -> None:
    dialog = open_add_form(page)
    fill_valid(dialog, "ui_saved")
    dialog.get_by_role("button", name="Save").click()
    page.get_by_text("ui_saved", exact=True).wait_for()
    conn = stored(airflow_server, "ui_saved")
    extra = conn["extra_dejson"]
    assert conn["login"] == CLIENT_ID
    assert conn["password"] == CLIENT_SECRET
    assert conn["port"] in (None, "", "None")
    assert extra["refresh_token"] == REFRESH_TOKEN
    assert extra["workspace"] == "acme"
    assert extra.get("token_cache") in (None, "")

    # Edit: the secrets come back masked, change only the description, save.
    row = page.get_by_role("row", name=re.compile("ui_saved"))
    row.get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    assert CLIENT_SECRET not in dialog.inner_text()
    dialog.get_by_label("Description").fill("edited in the UI")
    dialog.get_by_role("button", name="Save").click()
    page.get_by_role("cell", name="edited in the UI").wait_for()
    conn = stored(airflow_server, "ui_saved")
    assert conn["password"] == CLIENT_SECRET
    assert conn["extra_dejson"]["refresh_token"] == REFRESH_TOKEN
    assert conn["description"] == "edited in the UI"


def test_extra_fields_json_panel_shows_the_refresh_token(page: Any) -> None:
    """Known Airflow 3.3.2 limitation (no form declaration avoids it): documented, kept visible here."""
    dialog = open_add_form(page)
    open_extra_fields(dialog)
    dialog.locator("#element_refresh_token").fill(REFRESH_TOKEN)
    dialog.get_by_text("Extra Fields JSON", exact=True).click()
    assert REFRESH_TOKEN in dialog.locator(".monaco-editor, textarea").first.inner_text() or (
        REFRESH_TOKEN in dialog.inner_text()
    )
