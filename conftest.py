"""Enables mail-proxy's own pytest plugin for every test in the repository."""

pytest_plugins = ["mailproxy_core.testing.plugin"]
