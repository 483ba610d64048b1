"""Opt-in pytest plugin for mail-proxy and its plugins.

Enable it in a ``conftest.py`` with ``pytest_plugins = ["mailproxy_core.testing.plugin"]``.
Fixtures:

* ``mp_settings`` — settings for an isolated instance (SQLite in ``tmp_path``, a known admin
  token, test mode); override the fixture to change them.
* ``register_plugin`` — ``register_plugin(obj, name=None)`` adds an in-process plugin object to
  the next app built by ``mp_app``.
* ``mp_app`` — a started app (inside ``app.test_app()``, so startup and shutdown run).
* ``mp_kernel`` — the app's ``MailProxy``.
* ``mp_client`` — an ``ApiClient`` that sends the admin token; ``as_tenant(id)`` gives one that
  authenticates as a tenant (needs ``TenantTokenPlugin``).
* ``db_url`` / ``database`` — parametrized over SQLite and PostgreSQL (see ``testing/db.py``).
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.testing import TestApp

from ..app import create_app, kernel_of
from ..kernel import MailProxy
from ..settings import Settings
from .client import ApiClient
from .db import database, db_url, pg_server_url  # noqa: F401  (fixtures)
from .fakes import StaticAdminPlugin
from .smtp import smtp_server  # noqa: F401  (fixture)

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture
def mp_settings(tmp_path: Path) -> Settings:
    """Settings of an isolated test instance."""
    return Settings.from_values(
        db=str(tmp_path / "mailproxy.db"),
        api_token=ADMIN_TOKEN,
        test_mode=True,
        plugin_sections={"file": {"root": str(tmp_path / "mail-out")}},
    )


def _installed_plugins() -> set[str]:
    return {ep.name for ep in importlib.metadata.entry_points(group="mailproxy")}


@pytest.fixture
def mp_extra_plugins() -> dict[str, object]:
    """In-process plugins for the next ``mp_app`` (filled by ``register_plugin``).

    Where the ``auth_token`` plugin is not installed (the core alone), a test-only backend makes
    ``ADMIN_TOKEN`` the admin token, so API tests run the same way.
    """
    return admin_token_plugins()


def admin_token_plugins() -> dict[str, object]:
    """What makes ``ADMIN_TOKEN`` the admin token in an app built by a test itself.

    Nothing where the ``auth_token`` plugin is installed (``mp_settings`` configures the token);
    a test-only backend elsewhere (the core alone).
    """
    if "auth_token" in _installed_plugins():
        return {}
    return {"test_admin_token": StaticAdminPlugin(ADMIN_TOKEN)}


@pytest.fixture
def register_plugin(mp_extra_plugins: dict[str, object]) -> Any:
    """Register an in-process plugin object for the app built by ``mp_app``."""

    def register(plugin: object, name: str | None = None) -> object:
        key = name or getattr(plugin, "__name__", None) or type(plugin).__name__.lower()
        mp_extra_plugins[key] = plugin
        return plugin

    return register


@pytest.fixture
async def mp_app(
    mp_settings: Settings, mp_extra_plugins: dict[str, object]
) -> AsyncIterator[Quart]:
    """A running app; startup and shutdown hooks run around the test."""
    app = create_app(mp_settings, extra_plugins=mp_extra_plugins)
    async with app.test_app():
        yield app


@pytest.fixture
def mp_kernel(mp_app: Quart) -> MailProxy:
    """The kernel of ``mp_app``."""
    return kernel_of(mp_app)


@pytest.fixture
def mp_client(mp_app: Quart) -> ApiClient:
    """An API client authenticated as the admin."""
    return ApiClient(mp_app.test_client(), token=ADMIN_TOKEN)


APP_START_TIMEOUT = 60
"""Seconds ``app.test_app()`` waits for startup and shutdown in tests (Quart's default is 6).

Startup runs the migrations of a fresh database; on a busy two-core machine with the test files
spread over several workers, a new PostgreSQL schema can take longer than 6 s to migrate.
"""


class PatientTestApp(TestApp):
    """Quart's test app with :data:`APP_START_TIMEOUT` for startup and shutdown."""

    def __init__(self, app: Quart) -> None:
        super().__init__(app, startup_timeout=APP_START_TIMEOUT, shutdown_timeout=APP_START_TIMEOUT)


def pytest_configure(config: pytest.Config) -> None:
    # every app a test starts (``app.test_app()``) waits as long as a loaded CI machine needs
    Quart.test_app_class = PatientTestApp
    config.addinivalue_line(
        "markers",
        "requires_plugins(*names): the test needs these installed plugins; skipped where they "
        "are not installed (tox envs with a subset of plugins) unless MAILPROXY_TEST_ALL_PLUGINS=1",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Test infrastructure, not the service: reads the environment directly.
    if os.environ.get("MAILPROXY_TEST_ALL_PLUGINS") == "1":
        return  # every plugin must be installed: a missing one fails instead of skipping
    installed = _installed_plugins()
    for item in items:
        for mark in item.iter_markers("requires_plugins"):
            missing = [name for name in mark.args if name not in installed]
            if missing:
                reason = f"needs plugin(s) {', '.join(missing)}, not installed in this environment"
                item.add_marker(pytest.mark.skip(reason=reason))
