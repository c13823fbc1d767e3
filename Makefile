# Two commands do all the setup on a fresh machine with Python 3.11+:
#   make demo   - sandbox + example DAGs end to end on a throw-away SQLite Airflow
#   make test   - lint + the full test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
AIRFLOW_VERSION ?= 3.3.2
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	# --compile-bytecode: as pip does by default; without .pyc files (and with PYTHONDONTWRITEBYTECODE
	# set, as on CI) every Airflow process would compile its imports from source again.
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python "apache-airflow==$(AIRFLOW_VERSION)" -e ".[test,bench]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python scripts/demo.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
