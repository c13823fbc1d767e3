"""The ASSUMPTION registry: every ``ASSUMPTION`` in api.py names what checks it, a probe row
(``# probe: ROW``, rows of ``airflow_provider_eshopbox.probe``) or a guard (``# guard: SYMBOL``, a
function, class or ``Class.method`` of the package, imported and checked to be one). A tag line sits
in the ASSUMPTION's comment paragraph (for a docstring or an inline ASSUMPTION: in the comment lines
right above the statement)."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from airflow_provider_eshopbox import probe

PACKAGE = Path(__file__).resolve().parents[1] / "airflow_provider_eshopbox"
API = PACKAGE / "api.py"
TAG = re.compile(r"#\s*(probe|guard):\s*(.+)$")
NAME = re.compile(r"^\s*(?:def|class)\s+(\w+)|^\s*(\w+)\s*[:=]")

#: ASSUMPTIONs a read-only probe cannot observe (writes, timing, index internals), waiting for the
#: ``# guard:`` tags being added on other branches. When a merge tags one, this test says to drop it.
AWAITING_GUARD_TAG = {
    "ORDERS_SEARCH_SETTLE_MS",
    "ORDERS_SEARCH_ONE_PLACE",
    "ORDERS_SEARCH_ORDER_UNRELATED_TO_TIME",
    "STATUS_ALIASES",
    "INVENTORY_HIT_CAP",
    "INVENTORY_UPDATED_ON_SETTLE_MS",
    "DUPLICATE_ORDER_STATUS",
    "ORDER_VISIBLE_AFTER_CREATE_S",
}


@dataclass
class Assumption:
    line: int
    name: str
    tags: list[tuple[str, str]] = field(default_factory=list)


def _is_comment(text: str) -> bool:
    return text.lstrip().startswith("#")


def parse_assumptions(source: str) -> list[Assumption]:
    """Every ASSUMPTION of ``source`` with the statement it describes and the tags of its paragraph."""
    lines = source.split("\n")
    found: list[Assumption] = []
    for i, text in enumerate(lines):
        if "ASSUMPTION" not in text or "§N" in text:  # §N: the module docstring explaining the tag
            continue
        stripped = text.lstrip()
        if _is_comment(text):
            j = i + 1
            while j < len(lines) and _is_comment(lines[j]) and "ASSUMPTION" not in lines[j]:
                j += 1
            block = lines[i:j]
            k = j
            while k < len(lines) and _is_comment(lines[k]):
                k += 1
            statement = k
        else:
            statement = i
            if not stripped.startswith(("'''", '"""')) and "ASSUMPTION" in stripped:
                statement = i  # inline comment on the statement itself
            while statement > 0 and not NAME.match(lines[statement]):
                statement -= 1
            j = statement
            while j > 0 and _is_comment(lines[j - 1]):
                j -= 1
            block = lines[j : statement + 1]
        match = NAME.match(lines[statement]) if statement < len(lines) else None
        name = (match.group(1) or match.group(2)) if match else f"<line {i + 1}>"
        tags = []
        for b in block:
            tag = TAG.search(b)
            if tag:
                names = re.sub(r"\s*\(.*$", "", tag.group(2))  # "NAME (a remark)" names NAME
                tags += [(tag.group(1), t.split()[0]) for t in names.split(",") if t.strip()]
        found.append(Assumption(i + 1, name, tags))
    return found


def resolve_guard(symbol: str) -> object | None:
    """The function, class or method ``symbol`` (``name`` or ``Class.method``) names, imported from
    the package module defining ``name`` at its top level; None if there is none. A module, package
    or constant of that name is no guard."""
    head, *rest = symbol.split(".")
    top = re.compile(rf"^(?:(?:async\s+)?def|class)\s+{re.escape(head)}\b", re.M)
    for path in sorted(PACKAGE.rglob("*.py")):
        if not top.search(path.read_text()):
            continue
        module = importlib.import_module(
            ".".join((PACKAGE.name, *path.relative_to(PACKAGE).with_suffix("").parts))
        )
        found: object = getattr(module, head, None)
        for part in rest:
            found = getattr(found, part, None)
        if found is not None and (isinstance(found, type) or callable(found)):
            return found
    return None


def problems(found: list[Assumption], awaiting: set[str] = frozenset()) -> list[str]:
    rows = set(probe.row_names())
    out = []
    for a in found:
        if not a.tags and a.name not in awaiting:
            out.append(f"api.py:{a.line} ASSUMPTION of {a.name} has no '# probe:' or '# guard:' tag")
        for kind, value in a.tags:
            if kind == "probe" and value not in rows:
                out.append(f"api.py:{a.line} ({a.name}) names probe row {value!r}, which the probe lacks")
            if kind == "guard" and resolve_guard(value) is None:
                out.append(
                    f"api.py:{a.line} ({a.name}) names guard {value!r}, which is no function, class or "
                    "method of the package"
                )
    return out


def test_every_assumption_names_its_check() -> None:
    found = parse_assumptions(API.read_text())
    assert len(found) >= 30
    assert problems(found, AWAITING_GUARD_TAG) == []


def test_awaiting_list_is_current() -> None:
    untagged = {a.name for a in parse_assumptions(API.read_text()) if not a.tags}
    assert AWAITING_GUARD_TAG - untagged == set(), "tagged now: drop these from AWAITING_GUARD_TAG"


SYNTHETIC = '''
# ASSUMPTION (eshopbox-api.md §1): tagged with a real probe row.
# probe: ORDERS_PARAM_PAGE
GOOD = 1
# ASSUMPTION (eshopbox-api.md §2): tagged with a real guard.
# guard: parse_orders_page (a remark, with a comma)
ALSO_GOOD = 2
# ASSUMPTION (eshopbox-api.md §3): no tag at all.
UNTAGGED = 3
# ASSUMPTION (eshopbox-api.md §4): a probe row that does not exist.
# probe: NO_SUCH_ROW
BAD_ROW = 4
# ASSUMPTION (eshopbox-api.md §5): a guard that does not exist.
# guard: no_such_guard_anywhere
BAD_GUARD = 5
# ASSUMPTION (eshopbox-api.md §5b): a package module is no guard.
# guard: sandbox
MODULE_GUARD = 7
# ASSUMPTION (eshopbox-api.md §5c): a constant is no guard, nor a method a class lacks.
# guard: ORDERS_HIT_CAP, WindowReader._no_such_method
CONSTANT_GUARD = 8
# ASSUMPTION (eshopbox-api.md §5d): a method that exists is one.
# guard: WindowReader._check_reply
METHOD_GUARD = 9
# probe: ORDERS_LIST
INLINE = "x"  # an inline one (ASSUMPTION)
# ASSUMPTION (eshopbox-api.md §6): the tag of the next paragraph is not this one's.
# ASSUMPTION (eshopbox-api.md §7): this one is tagged.
# probe: TOKEN
SHARED = 6


def f():
    """ASSUMPTION (eshopbox-api.md §8): a docstring one, untagged."""
'''


def test_the_check_can_fail() -> None:
    found = parse_assumptions(SYNTHETIC)
    assert [a.name for a in found] == [
        "GOOD",
        "ALSO_GOOD",
        "UNTAGGED",
        "BAD_ROW",
        "BAD_GUARD",
        "MODULE_GUARD",
        "CONSTANT_GUARD",
        "METHOD_GUARD",
        "INLINE",
        "SHARED",
        "SHARED",
        "f",
    ]
    out = problems(found)
    assert len(out) == 8, out
    for name in (
        "UNTAGGED",
        "NO_SUCH_ROW",
        "no_such_guard_anywhere",
        "'sandbox'",
        "'ORDERS_HIT_CAP'",
        "_no_such_method",
        "f has no",
    ):
        assert any(name in p for p in out), (name, out)
    assert sum("SHARED has no" in p for p in out) == 1  # §6 untagged, §7 tagged


@pytest.mark.parametrize("row", probe.row_names())
def test_probe_rows_are_tag_safe(row: str) -> None:
    assert re.fullmatch(r"[\w:]+", row)
