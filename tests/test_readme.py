"""README examples actually run: every ```python block against the sandbox, and the quickstart as a
new user would type it (blocks tagged ``quickstart``), so the README cannot rot."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
# ```bash quickstart: typed into one shell, in order; ```python quickstart PATH: saved as $AIRFLOW_HOME/PATH.
QUICKSTART = re.findall(r"```(bash|python) quickstart ?(\S*)\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_python_examples() -> None:
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index: int, tmp_path: Path) -> None:
    env = dict(os.environ, ESHOPBOX_TOKEN_CACHE_DIR=str(tmp_path / "tokens"))
    result = subprocess.run(
        [sys.executable, "-c", BLOCKS[index]], capture_output=True, text=True, env=env, timeout=180
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(True," in result.stdout or index > 0, result.stdout


def _quickstart_script() -> str:
    parts = []
    for lang, path, body in QUICKSTART:
        if lang == "python":
            target = f'"$AIRFLOW_HOME/{path}"'
            body = f"mkdir -p \"$(dirname {target})\"\ncat > {target} <<'README_FILE'\n{body}README_FILE\n"
        parts.append(body)
    return "\n".join(parts)


def test_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    """A fresh HOME (so ~/eshopbox-quickstart is the test's), no Airflow settings from this session,
    the venv on PATH; the sandbox the blocks start is stopped even if a block fails."""
    assert [lang for lang, _, _ in QUICKSTART] == ["bash", "python", "bash"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ESHOPBOX_"))}
    env |= {
        "HOME": str(tmp_path),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "ESHOPBOX_TOKEN_CACHE_DIR": str(tmp_path / "tokens"),
    }
    log = tmp_path / "quickstart.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", _quickstart_script()],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=600)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    landed = re.search(r"^(\d+) rows, exactly the sandbox's orders of 2026-11-03$", text, flags=re.M)
    assert landed and int(landed[1]) > 0, text[-3000:]
    assert [p.name for p in (tmp_path / "eshopbox-quickstart" / "orders").iterdir()] == ["dt=2026-11-03"]
