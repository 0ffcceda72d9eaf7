# One entry point for people and CI. Every target creates .venv when it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: install lint test e2e reliability bench demo clean install-service

$(BIN)/receipt-agent: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/receipt-agent

lint: install
	$(BIN)/ruff check receipt_agent tests benchmarks
	$(BIN)/ruff format --check receipt_agent tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# What CI and the README call: lint, then the fast suite (reliability scenarios in reduced size).
test: lint
	$(BIN)/pytest -m "not slow" --cov --cov-report=term:skip-covered

e2e: install
	$(BIN)/pytest -m e2e

reliability: install
	$(BIN)/pytest -m "crash or reliability" -o timeout=900

bench: install
	$(PY) benchmarks/run_all.py

demo: install
	$(BIN)/receipt-agent demo

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage

# Install as a systemd service (run as root). DESTDIR=/tmp/stage installs into a staging root.
install-service:
	scripts/install.sh $(if $(DESTDIR),--root "$(DESTDIR)") $(if $(WHEEL),--wheel "$(WHEEL)")
