# Set-up and checks. `make test` and `make demo` are the whole set-up on a fresh machine (python3 >= 3.11 + make).
# AIRFLOW selects the Airflow line: 3.3 (default, venv .venv) or 2.11 (venv .venv-2.11).
PYTHON ?= python3
AIRFLOW ?= 3.3
UV_VERSION := 0.13.9
VENV := $(if $(filter 3.3,$(AIRFLOW)),.venv,.venv-$(AIRFLOW))
BIN := $(VENV)/bin
CONSTRAINTS := constraints/airflow-$(AIRFLOW).txt
STAMP := $(VENV)/.installed

.PHONY: venv test lint unit demo reliability lowest smoke bench e2e constraints clean

venv: $(STAMP)

# Re-install only when the pins or the project metadata change; a second `make test` reuses the venv.
$(STAMP): $(CONSTRAINTS) pyproject.toml constraints/requirements-dev.in
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c $(CONSTRAINTS) \
		-r constraints/requirements-dev.in -e .
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check airflow_provider_codecheck tests example_dags benchmarks scripts
	$(BIN)/ruff format --check airflow_provider_codecheck tests example_dags benchmarks scripts
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test: lint unit

reliability: $(STAMP)
	$(BIN)/python -m pytest -q tests/reliability

# The floors in pyproject are true: resolve the lowest versions of our direct dependencies that the metadata
# admits (uv's lowest-direct; today Airflow 2.11.0, common-compat 1.17.0, requests 2.32.4) and run the Airflow
# tests on them. Needs PyPI; a fresh venv each time, so a raised floor is always what gets tested.
LOWEST := .venv-lowest
lowest:
	rm -rf $(LOWEST) && $(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(LOWEST)/bin/uv pip compile --quiet --resolution lowest-direct --python $(LOWEST)/bin/python \
		pyproject.toml -o $(LOWEST)/lowest.txt
	$(LOWEST)/bin/uv pip install --quiet --python $(LOWEST)/bin/python -r $(LOWEST)/lowest.txt \
		-c $(LOWEST)/lowest.txt -r constraints/requirements-dev.in -e .
	grep -E '^(apache-airflow|apache-airflow-providers-common-compat|requests|aiohttp|cryptography)==' $(LOWEST)/lowest.txt
	$(LOWEST)/bin/python -m pytest -q tests/hooks tests/triggers tests/sensors tests/operators tests/links tests/example_dags

# The other Airflow minors the metadata admits (3.1 and 3.2; 3.0 is excluded, see pyproject.toml): the example
# DAGs through dag.test() against the emulator, on the newest release of each line (constraints/airflow-3.x.txt).
# `make smoke` runs every line; `make smoke AIRFLOW=3.1` one. Each line keeps its venv (.venv-3.x) and installs
# only the provider and pytest into it, so a second run costs the tests alone.
SMOKE_LINES := 3.1 3.2
SMOKE_RUN := $(if $(filter command line,$(origin AIRFLOW)),$(AIRFLOW),$(SMOKE_LINES))
SMOKE_TESTS = $(shell find tests -name test_example_dags.py -o -name test_event_example_dag.py)
smoke:
	for line in $(SMOKE_RUN); do \
		venv=.venv-$$line; \
		test -x $$venv/bin/python || $(PYTHON) -m venv $$venv || exit 1; \
		if [ ! -f $$venv/.smoke-installed ] || [ -n "$$(find constraints/airflow-$$line.txt pyproject.toml \
				-newer $$venv/.smoke-installed)" ]; then \
			$$venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)" && \
			$$venv/bin/uv pip install --quiet --python $$venv/bin/python -c constraints/airflow-$$line.txt \
				pytest pytest-asyncio -e . && touch $$venv/.smoke-installed || exit 1; \
		fi; \
		echo "=== smoke: Airflow $$($$venv/bin/python -c 'import airflow; print(airflow.__version__)') ==="; \
		$$venv/bin/python -m pytest -q $(SMOKE_TESTS) || exit 1; \
	done

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

# Full stack on Airflow 3.3: PostgreSQL, api-server, scheduler, dag-processor, triggerer, the emulator and
# headless Chromium (installs the Debian packages postgresql and chromium when missing; needs root for that).
# The tests are tests/e2e (pytest collects them only when named); `-k` picks one, e.g.
# `.venv/bin/python -m pytest tests/e2e -k sensor`. The scale run (marker scale) is `make e2e-scale`.
e2e:
	$(MAKE) venv AIRFLOW=3.3
	.venv/bin/uv pip install --quiet --python .venv/bin/python -r tests/e2e/requirements.txt -c constraints/airflow-3.3.txt
	.venv/bin/python -m pytest -p no:randomly -m "e2e and not scale" -o log_cli=true --log-cli-level=INFO \
		--log-cli-format="[e2e %(asctime)s] %(message)s" --log-cli-date-format=%H:%M:%S tests/e2e

# The provider at scale on the real stack (issue 13 item 4): 1,000 sensors, two triggerers, a triggerer
# failover, a mark-failed; about 20 minutes on 2 cores, so not part of `make e2e`. Figures: BENCHMARKS.md
# "Real stack at scale"; `--write-benchmarks` rewrites that section, `--help` lists the sizes.
.PHONY: e2e-scale
e2e-scale:
	$(MAKE) venv AIRFLOW=3.3
	.venv/bin/python tests/e2e/scale/run_scale.py $(SCALE_ARGS)

# Refresh the pins (needs network to PyPI): edit constraints/*.in or pyproject.toml, then run this and commit.
constraints:
	$(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)" --target .uv-tool
	for line in 3.3 2.11 $(SMOKE_LINES); do \
		PYTHONPATH=.uv-tool .uv-tool/bin/uv pip compile --quiet --universal --python-version 3.11 \
			constraints/airflow-$$line.in constraints/requirements-dev.in pyproject.toml \
			-o constraints/airflow-$$line.txt || exit 1; \
	done
	rm -rf .uv-tool

clean:
	rm -rf .venv .venv-* build dist *.egg-info
