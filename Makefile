# Two commands do all the setup on a fresh machine with Python 3.11+:
#   make demo   - sandbox + example DAGs end to end on a throw-away SQLite Airflow
#   make test   - lint + the full test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
AIRFLOW_VERSION ?= 3.3.2
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)
# Every uv install compiles bytecode, as pip does by default: with PYTHONDONTWRITEBYTECODE set (as on
# CI) a package installed without .pyc files is compiled from source again by every process that
# imports it (boto3 from [s3test] cost each task process 0.28 s of compile, inside the operator's
# first object-storage call, where Airflow imports every provider's filesystem).
export UV_COMPILE_BYTECODE := 1

.PHONY: install demo test lint bench bench-readme clean test-deploy deploy-deps test-ui test-scale test-s3 matrix

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	$(BIN)/uv pip install -q --python $(BIN)/python "apache-airflow==$(AIRFLOW_VERSION)" -e ".[test,bench,openlineage]"
	touch $(STAMP)

install: $(STAMP)
	@# the checkout's own bytecode too (an editable install has none): 55 ms less per process that
	@# imports the provider, and a test run starts a few hundred (stale files are recompiled by mtime)
	@$(BIN)/python -m compileall -q airflow_provider_eshopbox

demo: install
	$(BIN)/python scripts/demo.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The suite mostly waits (sandbox round trips, dag.test(), retries), so more xdist workers than cores
# pay (measured on 2 cores: -n 4 5m40s vs 9m27s serial). Each worker has its own Airflow home, DB and token cache
# (tests/conftest.py). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 4
test: install lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --ignore=tests/s3

# The *ToStorage syncs on a real S3 API: moto's server on loopback, started by the tests, behind a gate
# that holds or refuses one upload; SIGTERM and SIGKILL through Airflow's real task runner (tests/s3).
# Installs the [s3test] extra only when it does not import. About 2 minutes.
test-s3: install
	@$(BIN)/python -c "import moto.server, s3fs, airflow.providers.amazon" 2>/dev/null || \
		$(BIN)/uv pip install -q --python $(BIN)/python -e ".[s3test]"
	$(BIN)/python -m pytest tests/s3 -p no:cacheprovider -v -rA

# The version matrix from the built wheel (scripts/matrix.py): sdist + wheel with their metadata checked,
# then per (Python, Airflow) cell a clean venv with the wheel and a compatibility subset of tests/.
matrix: install
	$(BIN)/python scripts/matrix.py

# A real Airflow deployment (api-server, scheduler, dag-processor, triggerer; LocalExecutor on a private
# PostgreSQL cluster) started by the test itself against an in-process sandbox: a backfill, deferrable
# sensors, and the secret-leak scan over real task logs and the metadata DB (deploy_tests/).
# deploy-deps is idempotent: Debian's postgresql only when its initdb is missing, the drivers only when
# they do not import.
deploy-deps: install
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }
	@$(BIN)/python -c "import asyncpg, psycopg2" 2>/dev/null || \
		$(BIN)/uv pip install -q --python $(BIN)/python -e ".[deploy]"

test-deploy: deploy-deps
	$(BIN)/python -m pytest deploy_tests -p no:cacheprovider --timeout=1500 -v -rA

bench: install
	$(BIN)/python -m bench

# Rewrites the README's Performance blocks (<!-- bench:NAME -->) from fresh runs, each block as its
# bench ends; BENCH_NOTE says what else ran on the machine. The 5M-row case: BENCH_SLOW=--with-slow.
BENCH_NOTE ?=
BENCH_SLOW ?=
bench-readme: install
	$(BIN)/python -m bench.report --write README.md --note "$(BENCH_NOTE)" $(BENCH_SLOW)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# Browser tests of the connection, trigger and backfill forms: headless Debian Chromium (installed with
# apt when missing and run as root) driven by Playwright, against the deployment of test-deploy (api-server,
# scheduler, dag-processor, triggerer on a private PostgreSQL) the tests start: a backfill made in the
# UI must run, and Airflow refuses to create one on SQLite while a scheduler writes.
CHROMIUM ?= $(firstword $(wildcard /usr/bin/chromium /usr/bin/chromium-browser))
test-ui: deploy-deps
	@if [ -z "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "make test-ui needs Chromium: apt-get install chromium (as root)" >&2; exit 1; fi; \
	fi
	$(BIN)/uv pip install -q --python $(BIN)/python -e ".[ui]"
	ESHOPBOX_UI_TESTS=1 ESHOPBOX_CHROMIUM=$${ESHOPBOX_CHROMIUM:-$$(command -v chromium || command -v chromium-browser)} \
	  $(BIN)/python -m pytest tests/ui -p no:cacheprovider

# Issue 17: CeleryExecutor (Redis) with two workers standing for two hosts, pods simulated, on the
# deploy_tests harness; token_cache=shared vs deployment. Installs Debian's redis-server and the
# [scale] extra only when missing.
test-scale: deploy-deps
	@command -v redis-server >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }
	@$(BIN)/python -c "import airflow.providers.celery.executors.celery_executor, redis" 2>/dev/null || \
		$(BIN)/uv pip install -q --python $(BIN)/python -e ".[scale]"
	$(BIN)/python -m pytest scale_tests -p no:cacheprovider --timeout=900 -v -rA
