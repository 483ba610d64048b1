"""Fixtures of the ``ee_pec`` tests: an instance with an encryption key, a private Dovecot, an
SMTP sink and recording client applications."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from mailproxy_core import Settings
from mailproxy_ee_imap.testing import dovecot, imap_mailbox  # noqa: F401  (fixtures)
from mailproxy_reporter_http.testing import ClientApp

pytest_plugins = ["mailproxy_core.testing.plugin"]

ENCRYPTION_KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def pec_sections(request: pytest.FixtureRequest) -> dict[str, Any]:
    """``[plugins.ee_pec]`` of the test instance (a test may pass its own, ``indirect=True``).

    By default the ``pec_timeout`` task is off: tests call ``record_timeouts`` themselves.
    """
    default: dict[str, Any] = {"poll_interval": 60, "acceptance_timeout": 0}
    return dict(getattr(request, "param", default))


@pytest.fixture
def mp_settings(db_url: str, pec_sections: dict[str, Any]) -> Settings:
    """An instance on SQLite and on PostgreSQL (a private schema), with an encryption key."""
    return Settings.from_values(
        db=db_url,
        api_token="test-admin-token",
        encryption_key=ENCRYPTION_KEY,
        test_mode=True,
        plugin_sections={"ee_pec": pec_sections, "reporter_http": {"timeout": 5.0}},
    )


@pytest.fixture
def client_app() -> Iterator[Any]:
    """Factory: ``client_app(**attributes)`` starts a recording ``ClientApp``."""
    apps: list[ClientApp] = []

    def start(**attributes: Any) -> ClientApp:
        app = ClientApp(**attributes).start()
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()
