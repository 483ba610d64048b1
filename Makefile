# mail-proxy: `make serve` and `make test` are the two commands of the README.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PLUGIN_DIRS := $(sort $(wildcard plugins/*))
CLIENT_DIR := clients/mailproxy-client
# Enterprise distributions: every mailproxy_ee/<name>/ with a pyproject.toml, as they appear.
EE_DIRS := $(sort $(patsubst %/pyproject.toml,%,$(wildcard mailproxy_ee/*/pyproject.toml)))
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
SRC_DIRS := $(foreach p,$(PLUGIN_DIRS) $(EE_DIRS),$(p)/src)
SPACE := $(subst ,, )

.PHONY: install install-test emulators test-deps serve test test-faults lint format bench client clean

# System packages the tests drive as real peers: Debian's chromium (the /docs browser test) and
# dovecot-imapd (the private IMAP server of the enterprise bounce and PEC tests).
# Installed with apt-get when missing and we may (root or sudo); otherwise the tests that need
# them are skipped, and pytest -rs says why.
SYSTEM_TEST_PACKAGES := chromium dovecot-imapd
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

$(VENV)/.installed: $(BIN)/python pyproject.toml $(wildcard plugins/*/pyproject.toml) \
		$(wildcard mailproxy_ee/*/pyproject.toml) $(CLIENT_DIR)/pyproject.toml
	$(PIP) install -e $(CLIENT_DIR) -e . $(foreach p,$(PLUGIN_DIRS) $(EE_DIRS),-e $(p))
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -e '.[test,lint]' $(foreach p,$(EE_DIRS),-e '$(p)[test]')
	@touch $@

# Test emulators that do not come from PyPI: Azurite (Azure Blob) from npm, pinned to the last
# release that runs on Node.js 20. Without node/npm the Azure tests skip, saying why.
AZURITE_VERSION := 3.35.0
$(VENV)/azurite/.installed-$(AZURITE_VERSION): | $(BIN)/python
	@if command -v npm >/dev/null 2>&1; then \
		npm install --prefix $(VENV)/azurite --no-audit --no-fund --loglevel=error \
			azurite@$(AZURITE_VERSION) && touch $@; \
	else echo "npm not found: Azurite not installed, the Azure Blob tests will skip"; fi

emulators: $(VENV)/azurite/.installed-$(AZURITE_VERSION)

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test emulators

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
# Test files spread over this many pytest-xdist workers (a file stays on one worker). Most tests
# wait on sockets and subprocesses rather than the CPU, so three workers suit a two-core machine;
# PYTEST_WORKERS=0 runs everything in one process.
PYTEST_WORKERS ?= 3

test: install-test test-deps
	MAILPROXY_TEST_ALL_PLUGINS=1 $(BIN)/python -m pytest -q -rs -n $(PYTEST_WORKERS) \
		--dist loadfile --durations=10
	$(BIN)/tox -q -e $(TOX_FAST_ENVS) -- -n $(PYTEST_WORKERS) --dist loadfile

# The fault suite (docs/operations.md): real processes, SIGKILL, peers and a PostgreSQL cluster
# going away. Minutes long, so `make test` skips it; run before a release. -s shows its figures.
test-faults: install-test
	MAILPROXY_FAULTS=1 MAILPROXY_TEST_ALL_PLUGINS=1 $(BIN)/python -m pytest tests/faults -v -s -rs

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# every src/ on MYPYPATH: an EE distribution imported by another (mailproxy_ee_imap) is then
	# known by its import name, not also as mailproxy_ee.<dir>.src.<name>
	MYPYPATH=$(subst $(SPACE),:,$(SRC_DIRS)) $(BIN)/mypy mailproxy_core mailproxy_cli $(CLIENT_DIR)/src $(SRC_DIRS)

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
