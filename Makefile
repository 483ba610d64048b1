# mail-proxy: `make serve` and `make test` are the two commands of the README.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PLUGIN_DIRS := $(sort $(wildcard plugins/*))
# Enterprise distributions: every mailproxy_ee/<name>/ with a pyproject.toml, as they appear.
EE_DIRS := $(sort $(patsubst %/pyproject.toml,%,$(wildcard mailproxy_ee/*/pyproject.toml)))
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: install install-test test-deps serve test lint format bench clean

# System packages the tests drive as real peers: Debian's chromium (the /docs browser test).
# Installed with apt-get when missing and we may (root or sudo); otherwise the tests that need
# them are skipped, and pytest -rs says why.
SYSTEM_TEST_PACKAGES := chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

$(VENV)/.installed: $(BIN)/python pyproject.toml $(wildcard plugins/*/pyproject.toml) \
		$(wildcard mailproxy_ee/*/pyproject.toml)
	$(PIP) install -e . $(foreach p,$(PLUGIN_DIRS) $(EE_DIRS),-e $(p))
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -e '.[test,lint]'
	@touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

test-deps:
	@missing=""; for p in $(SYSTEM_TEST_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null && $(SUDO) true 2>/dev/null; then \
	    echo "installing system test packages:$$missing"; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	  else echo "not installing$$missing (no apt-get or no root): the tests needing them are skipped"; fi; \
	fi

serve: install
	$(BIN)/mail-proxy serve

# The "all" suite in .venv, then the fast tox envs: the kernel alone and the example plugin.
TOX_FAST_ENVS ?= core,example

test: install-test test-deps
	MAILPROXY_TEST_ALL_PLUGINS=1 $(BIN)/python -m pytest -q -rs
	$(BIN)/tox -q -e $(TOX_FAST_ENVS)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy mailproxy_core $(foreach p,$(PLUGIN_DIRS) $(EE_DIRS),$(p)/src)

format: install-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install-test
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
