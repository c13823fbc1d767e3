"""The README's Performance figures are bench blocks ``bench.report`` can rewrite (not their numbers)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report

README = (Path(__file__).parent.parent / "README.md").read_text()
PERFORMANCE = README[README.index("## Performance\n") : README.index("## Development\n")]


def test_every_block_is_closed_and_named_once() -> None:
    opened = re.findall(r"<!-- bench:([\w-]+) -->", README)
    closed = re.findall(r"<!-- /bench:([\w-]+) -->", README)
    assert opened == closed, "each <!-- bench:NAME --> needs its <!-- /bench:NAME --> in the same order"
    assert len(opened) == len(set(opened))
    assert sorted(report.blocks_in(README)) == sorted(opened) == sorted(report.BLOCKS)
    assert sorted(report.blocks_in(PERFORMANCE)) == sorted(report.BLOCKS)  # all in the Performance section


@pytest.mark.parametrize("name", sorted(report.BLOCKS))
def test_block_names_its_command_and_the_run(name: str) -> None:
    body = report.blocks_in(README)[name]
    if body.startswith("(not run yet"):
        return  # a new block before its first `make bench-readme`
    command = report.COMMAND.search(body)
    assert command is not None, f"block {name} names no `python -m bench...` command"
    assert f"python {command['args']}" == report.BLOCKS[name].command
    assert re.search(r"^Run \d{4}-\d\d-\d\d \d\d:\d\d UTC on .+ cores.+Python 3\.", body, re.MULTILINE)
    assert "Noise between runs: " in body
    assert "\n```text\n" in body and body.endswith("\n```\n")


@pytest.mark.parametrize("name", sorted(report.BLOCKS))
def test_block_command_exists_with_its_options(name: str) -> None:
    block = report.BLOCKS[name]
    assert importlib.util.find_spec(block.module) is not None, f"no module {block.module}"
    usage = subprocess.run(
        [sys.executable, "-m", block.module, "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in (arg for arg in block.args[2:] if arg.startswith("--")):
        assert option in usage, f"{block.command}: {block.module} has no {option}"


def test_rewrite_replaces_only_the_named_block() -> None:
    text = "a\n<!-- bench:x -->\nold\n<!-- /bench:x -->\n<!-- bench:y -->\nkeep\n<!-- /bench:y -->\n"
    assert report.rewrite(text, "x", "new\n") == text.replace("old", "new")
    with pytest.raises(SystemExit, match="no block <!-- bench:z -->"):
        report.rewrite(text, "z", "new\n")


def test_headlines_are_read_from_every_block_the_readme_holds() -> None:
    """The summary finds each bench's headline numbers in the output the README quotes."""
    for name, body in report.blocks_in(README).items():
        if body.startswith("(not run yet"):
            continue
        output = body.split("\n```text\n", 1)[1].rsplit("\n```\n", 1)[0]
        found = report.Result(name, output, 0, 0.0, report.datetime.now(report.timezone.utc)).headlines()
        assert found, f"block {name}: no headline"
        assert all(value != "(not in the output)" for _, value in found), (name, found)
