"""The version matrix, from the built wheel: what a user installs, on each Python and Airflow we claim.

Builds the sdist and wheel (``uv build``), checks their metadata against ``pyproject.toml`` and the
cells below, then per cell installs the **wheel** (never the checkout) into a clean venv and runs a
compatibility subset of ``tests/`` from a scratch copy, so ``airflow_provider_eshopbox`` can only be
the installed one. Airflow's constraints files live on raw.githubusercontent.com, which CI cannot
reach. As the README says to install, each cell installs ``apache-airflow==X`` first, resolved from
the index as it was when that Airflow was released (``--exclude-newer``: what its constraints
pinned), then the wheel, which upgrades only what it needs; it prints the resolved versions that matter.
Invoked by ``make matrix`` (and ``.ci/run``); exits non-zero if any check or cell fails.

    python scripts/matrix.py [--jobs 3] [--keep]
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
NAME = "airflow-provider-eshopbox"
# (Python, Airflow): the lowest claimed Airflow (its latest patch) on each Python. The main pair (Python
# 3.11 + Airflow 3.3.2, editable) runs the full suite in make test; here it runs from the wheel. Airflow
# 3.2.2 was a cell: its deferred sensor test failed in 3 of 4 runs, so the claim is >=3.3 (pyproject).
CELLS = (("3.11", "3.3.2"), ("3.12", "3.3.2"), ("3.13", "3.3.2"))
# Stand-in for Airflow's constraints file (unreachable from CI): resolve from the index as it was the
# day after that Airflow's upload to PyPI, as its constraints were (unpinned, Airflow 3.2.2 broke
# on pydantic 2.14: TITerminalStatePayload "needs a discriminator field").
RELEASED = {"3.3.2": "2026-09-18"}
# Import cost and example DAG parsing, provider info and the connection form, a token exchange, an
# orders sync and an inventory snapshot through dag.test(), a deferrable sensor through its trigger.
SUBSET = (
    "tests/test_dag_parsing.py",
    "tests/test_provider_info.py",
    "tests/hook/test_tokens.py::test_50_calls_in_one_process_make_one_exchange",
    "tests/operators/test_orders_e2e.py::test_hourly_window_below_the_cap_lands_exactly_the_truth",
    "tests/inventory/test_inventory.py::test_snapshot_equals_the_stock_table",
    "tests/sensors/test_e2e_orders.py::test_defers_then_succeeds_when_order_ships",
)
SHOWN = ("apache-airflow-task-sdk", "apache-airflow-providers-common-compat", "pydantic", "httpx")
PY_CLASSIFIER = "Programming Language :: Python :: 3."
ENTRY_POINT = "provider_info = airflow_provider_eshopbox.get_provider_info:get_provider_info"


@dataclass
class Cell:
    python: str
    airflow: str
    ok: bool = False
    seconds: float = 0.0
    summary: str = ""
    log: Path | None = None


def _run(cmd: list[str], log: Path, **kwargs: object) -> bool:
    """Run ``cmd`` appending its output to ``log``; True if it exited 0."""
    with log.open("a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        return subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False, **kwargs).returncode == 0


def _uv() -> str:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        raise SystemExit("make matrix needs uv (make install puts it in .venv/bin)")
    return uv


def _interpreter(minor: str) -> str:
    """The newest pyenv Python of that minor version, else ``python3.X`` on PATH."""
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    found = sorted(
        Path(root, "versions").glob(f"{minor}.*/bin/python3"),
        key=lambda p: tuple(int(x) for x in p.parts[-3].split(".") if x.isdigit()),
    )
    path = str(found[-1]) if found else shutil.which(f"python{minor}")
    if path is None:
        raise SystemExit(f"no Python {minor}: install it with pyenv (pyenv install {minor})")
    return path


def _version_in_source() -> str:
    tree = ast.parse((REPO / "airflow_provider_eshopbox" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__version__":
            return str(ast.literal_eval(node.value))
    raise SystemExit("airflow_provider_eshopbox/__init__.py defines no __version__")


def check_metadata(wheel: Path, sdist: Path) -> list[str]:
    """What is wrong with the built artifacts' metadata, against pyproject.toml and CELLS."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    version = _version_in_source()
    problems: list[str] = []
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        dist_info = f"airflow_provider_eshopbox-{version}.dist-info"
        meta = HeaderParser().parsestr(zf.read(f"{dist_info}/METADATA").decode())
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
    if meta["Name"] != NAME:
        problems.append(f"Name {meta['Name']!r} != {NAME!r}")
    if meta["Version"] != version or f"-{version}." not in sdist.name:
        problems.append(f"version: wheel {meta['Version']}, sdist {sdist.name}, __version__ {version}")
    if meta["Requires-Python"] != project["requires-python"]:
        problems.append(f"Requires-Python {meta['Requires-Python']!r}")
    base = {str(Requirement(r)) for r in meta.get_all("Requires-Dist", []) if "extra ==" not in r}
    if base != {str(Requirement(r)) for r in project["dependencies"]}:
        problems.append(f"Requires-Dist differs from pyproject dependencies: {sorted(base)}")
    if set(meta.get_all("Provides-Extra", [])) != set(project["optional-dependencies"]):
        problems.append(f"Provides-Extra {meta.get_all('Provides-Extra')}")
    classifiers = set(meta.get_all("Classifier", []))
    pythons = {c.rsplit(" ", 1)[-1] for c in classifiers if c.startswith(PY_CLASSIFIER)}
    if pythons != {py for py, _ in CELLS}:
        problems.append(f"Python classifiers {sorted(pythons)} != the matrix {[py for py, _ in CELLS]}")
    for needed in ("Framework :: Apache Airflow", "Framework :: Apache Airflow :: Provider"):
        if needed not in classifiers:
            problems.append(f"classifier missing: {needed}")
    (airflow_req,) = [r for r in map(Requirement, project["dependencies"]) if r.name == "apache-airflow"]
    for py, af in CELLS:
        if not airflow_req.specifier.contains(af):
            problems.append(f"cell Airflow {af} is outside the claim {airflow_req}")
        if f"{py}.0" not in Requirement(f"python{project['requires-python']}").specifier:
            problems.append(f"cell Python {py} is outside requires-python")
    if "[apache_airflow_provider]" not in entry_points or ENTRY_POINT not in entry_points:
        problems.append(f"entry point missing: {entry_points!r}")
    if meta["Description-Content-Type"] != "text/markdown":
        problems.append(f"Description-Content-Type {meta['Description-Content-Type']!r}")
    if "airflow_provider_eshopbox/py.typed" not in names:
        problems.append("py.typed not in the wheel")
    if stray := sorted({n.split("/")[0] for n in names} - {"airflow_provider_eshopbox", dist_info}):
        problems.append(f"the wheel ships more than the package: {stray}")
    return problems


def run_cell(cell: Cell, wheel: Path, scratch: Path) -> Cell:
    """Clean venv, the wheel and its pinned Airflow, then the subset from a copy of tests/."""
    began = time.monotonic()
    home = scratch / f"py{cell.python}-af{cell.airflow}"
    work, venv = home / "work", home / "venv"
    work.mkdir(parents=True)
    cell.log = home / "log.txt"
    python = str(venv / "bin" / "python")
    for part in ("tests", "example_dags"):
        shutil.copytree(REPO / part, work / part, ignore=shutil.ignore_patterns("__pycache__"))
    # pytest's settings (asyncio mode, timeout, warning filters) without the project it describes.
    pytest_ini = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    ini = ["[pytest]"]
    for key, val in pytest_ini.items():
        ini += [f"{key} =", *(f"    {v}" for v in val)] if isinstance(val, list) else [f"{key} = {val}"]
    (work / "pytest.ini").write_text("\n".join(ini) + "\n")
    uv = _uv()
    # The provider must come from the venv's site-packages, never from a checkout on sys.path.
    where = f"import airflow_provider_eshopbox as p; assert p.__file__.startswith({str(venv)!r}), p.__file__"
    pin = [f"apache-airflow=={cell.airflow}", "--exclude-newer", f"{RELEASED[cell.airflow]}T00:00:00Z"]
    steps = {
        "venv": [uv, "venv", "-q", "--python", _interpreter(cell.python), str(venv)],
        "airflow": [uv, "pip", "install", "-q", "-p", python, *pin],
        "wheel": [uv, "pip", "install", "-q", "-p", python, f"{wheel}[test]"],
        "where": [python, "-c", where],
        "subset": [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE", *SUBSET],
    }
    # No --compile-bytecode: a scratch venv compiles only what its processes import, once (so
    # PYTHONDONTWRITEBYTECODE, as CI sets it, is dropped here).
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "AIRFLOW")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    took: list[str] = []
    for name, step in steps.items():
        step_began = time.monotonic()
        if not _run(step, cell.log, cwd=work, env=env):
            cell.summary = f"failed at {name}: {' '.join(step[:4])} ..."
            break
        took.append(f"{name} {time.monotonic() - step_began:.0f}s")
    else:
        cell.ok = True
        lines = cell.log.read_text().splitlines()
        passed = next((ln for ln in reversed(lines) if " passed" in ln), "")
        freeze = subprocess.run(
            [uv, "pip", "freeze", "--python", python], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        (home / "resolved.txt").write_text("\n".join(freeze) + "\n")
        pins = [ln for ln in freeze if ln.split("==")[0].lower() in SHOWN]
        cell.summary = f"{passed.strip('= ')}; resolved {', '.join(pins)}"
    cell.summary += f"\n{'':<32}({', '.join(took)})"
    cell.seconds = time.monotonic() - began
    return cell


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=len(CELLS), help="cells at once")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory and logs")
    args = parser.parse_args()
    began = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="eshopbox-matrix-"))
    try:
        dist = scratch / "dist"
        subprocess.run([_uv(), "build", "-q", "-o", str(dist), str(REPO)], check=True)
        (wheel,) = dist.glob("*.whl")
        (sdist,) = dist.glob("*.tar.gz")
        problems = check_metadata(wheel, sdist)
        print(f"built {sdist.name}, {wheel.name}; metadata: {'; '.join(problems) or 'OK'}")
        cells = [Cell(py, af) for py, af in CELLS]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            done = list(pool.map(lambda c: run_cell(c, wheel, scratch), cells))
        print(f"\n{'Python':<8}{'Airflow':<9}{'result':<8}{'time':>7}  details")
        for cell in done:
            print(f"{cell.python:<8}{cell.airflow:<9}{'ok' if cell.ok else 'FAILED':<8}"
                  f"{cell.seconds:>6.0f}s  {cell.summary}")  # fmt: skip
        for cell in done:
            if not cell.ok and cell.log is not None:
                print(f"\n--- Python {cell.python} + Airflow {cell.airflow}: end of {cell.log}")
                print("\n".join(cell.log.read_text().splitlines()[-60:]))
        print(f"\nmatrix: {time.monotonic() - began:.0f} s wall")
        return 0 if not problems and all(c.ok for c in done) else 1
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
