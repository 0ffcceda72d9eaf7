# One entry point for people and CI. Every target creates .venv when it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

# The versions every install uses (runtime and dev), pinned; pyproject keeps the ranges.
# `make lock` refreshes it on purpose; nothing else changes it.
LOCK   := requirements/constraints.txt

.PHONY: install lint test e2e reliability bench demo clean install-service lock dist

$(BIN)/receipt-agent: pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade -c $(LOCK) pip
	$(PY) -m pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $@

# The editable install leaves receipt_agent uncompiled, and with PYTHONDONTWRITEBYTECODE set
# (CI, containers) every start compiled each module again: ~350 M instructions, ~0.15 s of
# every `run --once`. compileall writes the .pyc files a wheel install writes anyway; a
# module edited since is compiled in memory as before (its .pyc is stale, never wrong).
install: $(BIN)/receipt-agent
	$(PY) -m compileall -q receipt_agent

lint: install
	$(BIN)/ruff check receipt_agent tests benchmarks
	$(BIN)/ruff format --check receipt_agent tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# What CI and the README call: lint, then the fast suite (reliability scenarios in reduced size)
# on WORKERS processes (pytest-xdist): most tests wait on subprocesses and sockets, so two
# workers on two cores take ~5.5 min where one takes ~8. `make test WORKERS=0` runs one process.
WORKERS ?= 2
test: lint
	$(BIN)/pytest -n $(WORKERS) -m "not slow" --cov --cov-report=term:skip-covered

e2e: install
	$(BIN)/pytest -m e2e

reliability: install
	$(BIN)/pytest -m "crash or reliability" -o timeout=900

bench: install
	$(PY) benchmarks/run_all.py

demo: install
	$(BIN)/receipt-agent demo

# Resolve the newest versions pyproject's ranges allow in a fresh venv and pin them all.
# Review the diff (a new ruff or mypy may need code changes) before committing it.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet '.[dev]'
	mkdir -p $(dir $(LOCK))
	{ echo "# Pinned versions of every runtime and dev dependency (pip constraints file)."; \
	  echo "# Made by 'make lock' from a fresh venv; pyproject.toml keeps the ranges."; \
	  echo "# Used by make install, .ci/run and scripts/install.sh (the release archive)."; \
	  .lock-venv/bin/python -m pip freeze --all --exclude receipt-agent \
	    --exclude setuptools --exclude wheel; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	rm -rf .lock-venv
	@echo "wrote $(LOCK): $$(grep -vc '^#' $(LOCK)) pins"

# The offline release archive: dist/receipt-agent-<version>-<python>-<platform>.tar.gz with
# the wheel, a wheelhouse of every runtime dependency for this Python, install.sh, the
# unit, logrotate and example configs. Unpack it on the store machine and run
# `sudo ./scripts/install.sh --offline` (README, "Install on a store machine").
dist: install
	scripts/make_dist.sh --python $(PY) --out dist

clean:
	rm -rf $(VENV) .lock-venv build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage

# Install as a systemd service (run as root). DESTDIR=/tmp/stage installs into a staging root.
install-service:
	scripts/install.sh $(if $(DESTDIR),--root "$(DESTDIR)") $(if $(WHEEL),--wheel "$(WHEEL)")
