"""Fixtures of the ``ee_bounce`` tests: an instance with an encryption key, a private Dovecot, an
SMTP sink (``smtp_server``) and recording client applications."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from mailproxy_core import Settings
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.fakes import TenantTokenPlugin
from mailproxy_core.testing.plugin import admin_token_plugins
from mailproxy_ee_bounce.testing import configure, setup_tenant
from mailproxy_ee_imap.testing import TestMailbox, dovecot, imap_mailbox  # noqa: F401  (fixtures)
from mailproxy_reporter_http.testing import ClientApp

ENCRYPTION_KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def bounce_section() -> dict[str, Any]:
    """``[plugins.ee_bounce]`` of the test instance; override it in a test module."""
    return {"poll_interval": 60, "idle": False, "imap_timeout": 5.0}


@pytest.fixture
def mp_settings(db_url: str, bounce_section: dict[str, Any]) -> Settings:
    """Every test runs on SQLite and on PostgreSQL (its own schema)."""
    return Settings.from_values(
        db=db_url,
        api_token="test-admin-token",
        encryption_key=ENCRYPTION_KEY,
        test_mode=True,
        plugin_sections={"ee_bounce": bounce_section, "reporter_http": {"timeout": 5.0}},
    )


@pytest.fixture
def mp_extra_plugins() -> dict[str, object]:
    """The admin token, and ``tenant-token:<id>`` keys for ``mp_client.as_tenant(id)``."""
    return {**admin_token_plugins(), "tenant_tokens": TenantTokenPlugin()}


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


@pytest.fixture
async def bounce_smtp(
    mp_client: ApiClient,
    smtp_server: Any,
    imap_mailbox: TestMailbox,  # noqa: F811  (the fixture imported above)
) -> Any:
    """The usual start of a mailbox test: an SMTP sink, tenant ``acme`` sending through it, and
    the bounce mailbox configured on ``imap_mailbox``; the sink is returned."""
    smtp = await smtp_server()
    await setup_tenant(mp_client, smtp)
    await configure(mp_client, imap_mailbox)
    return smtp
