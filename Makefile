# mail-proxy: `make serve` and `make test` are the two commands of the README.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PLUGIN_DIRS := $(sort $(wildcard plugins/*))
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: install install-test test-deps serve test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

$(VENV)/.installed: $(BIN)/python pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(PIP) install -e . $(foreach p,$(PLUGIN_DIRS),-e $(p))
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -e '.[test,lint]'
	@touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

# System packages the tests talk to over loopback (Debian/Ubuntu): Dovecot for the IMAP tests.
# Installs only what is missing; needs root (or sudo) the first time.
TEST_DEB_PACKAGES := dovecot-imapd
test-deps:
	@missing=""; for p in $(TEST_DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  echo "installing:$$missing"; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

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
	$(BIN)/mypy mailproxy_core $(foreach p,$(PLUGIN_DIRS),$(p)/src)

format: install-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install-test
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
