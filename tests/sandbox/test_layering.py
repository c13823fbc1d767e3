"""Module layering: the routes (app.py) do not know the facade (core.py); core builds the app."""

from __future__ import annotations

import ast
from pathlib import Path

import airflow_provider_eshopbox.sandbox as pkg

SANDBOX = Path(pkg.__file__).parent


def _imported(module: str) -> set[str]:
    tree = ast.parse((SANDBOX / f"{module}.py").read_text())
    return {
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 1 and not node.module
        for alias in node.names
    }


def test_app_does_not_import_core_and_core_imports_app_once() -> None:
    assert "core" not in _imported("app")  # not even under TYPE_CHECKING
    assert "app" in _imported("core")
    core_tree = ast.parse((SANDBOX / "core.py").read_text())
    local = [
        node
        for fn in ast.walk(core_tree)
        if isinstance(fn, ast.FunctionDef)
        for node in ast.walk(fn)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    ]
    assert not local, "core.py imports inside functions again (a sign of a cycle)"


def test_public_surface_unchanged() -> None:
    from airflow_provider_eshopbox.sandbox import EshopboxSandbox, FaultConfig, SandboxClock

    sb = EshopboxSandbox(orders=5, seed=3)
    assert isinstance(sb.faults, FaultConfig) and isinstance(sb.clock, SandboxClock)
    assert sb.order("SHOP-100000") is not None and sb.order("NOPE") is None
