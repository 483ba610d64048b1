"""The ``reporter_http`` plugin inside a test instance, and recording client applications."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailproxy_core import Settings
from mailproxy_core.kernel import MailProxy
from mailproxy_reporter_http import HttpReporter
from mailproxy_reporter_http.testing import ClientApp

TIMEOUT = 1.0
"""The plugin's ``timeout`` in these tests: a hanging client fails fast."""


@pytest.fixture
def mp_settings(tmp_path: Path) -> Settings:
    return Settings.from_values(
        db=str(tmp_path / "mailproxy.db"),
        api_token="test-admin-token",
        test_mode=True,
        plugin_sections={"reporter_http": {"batch_size": 250, "timeout": TIMEOUT}},
    )


@pytest.fixture
def reporter(mp_kernel: MailProxy) -> HttpReporter:
    """The kernel's ``http`` reporter."""
    built = mp_kernel.reporters["http"]
    assert isinstance(built, HttpReporter)
    return built


@pytest.fixture
def client_app() -> Iterator[Any]:
    """Factory: ``client_app(**attributes)`` starts a ``ClientApp``; all stop after the test."""
    apps: list[ClientApp] = []

    def start(**attributes: Any) -> ClientApp:
        app = ClientApp(**attributes).start()
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()
