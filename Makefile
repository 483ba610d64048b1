# mail-proxy: `make serve` and `make test` are the two commands of the README.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PLUGIN_DIRS := $(sort $(wildcard plugins/*))
CLIENT_DIR := clients/mailproxy-client
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: install install-test serve test lint format bench client clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

$(VENV)/.installed: $(BIN)/python pyproject.toml $(wildcard plugins/*/pyproject.toml) $(CLIENT_DIR)/pyproject.toml
	$(PIP) install -e $(CLIENT_DIR) -e . $(foreach p,$(PLUGIN_DIRS),-e $(p))
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -e '.[test,lint]'
	@touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

serve: install
	$(BIN)/mail-proxy serve

# The "all" suite in .venv, then the fast tox envs: the kernel alone and the example plugin.
TOX_FAST_ENVS ?= core,example

test: install-test
	MAILPROXY_TEST_ALL_PLUGINS=1 $(BIN)/python -m pytest -q
	$(BIN)/tox -q -e $(TOX_FAST_ENVS)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy mailproxy_core mailproxy_cli $(CLIENT_DIR)/src $(foreach p,$(PLUGIN_DIRS),$(p)/src)

format: install-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install-test
	$(BIN)/python benchmarks/run_all.py

# The client's route methods, regenerated from the OpenAPI document of every installed plugin.
client: install-test
	$(BIN)/python $(CLIENT_DIR)/regenerate.py

clean:
	rm -rf $(VENV) build *.egg-info
