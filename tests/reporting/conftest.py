"""A running instance (not in test mode: the loops run by themselves, with short intervals).

``report_settings`` holds the kernel settings a test may change before the app starts, and
``reporter_settings`` the ``[plugins.reporter_http]`` section. ``client_app()`` starts a recording
client application on loopback (``mailproxy_reporter_http.testing.ClientApp``), stopped after the
test. ``add_tenant``/``add_account`` set up tenants over the API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailproxy_core import Settings
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.plugin import ADMIN_TOKEN

INTERVAL = 0.2
"""``report_interval`` of these tests: idle polls five times a second, back-off from 1 s."""


@pytest.fixture
def report_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Kernel settings; a test changes them with ``parametrize(..., indirect=True)``."""
    values = {"test_mode": False, "report_interval": INTERVAL, "send_loop_interval": 0.05}
    values.update(getattr(request, "param", {}))
    return values


@pytest.fixture
def reporter_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The ``[plugins.reporter_http]`` section; changed like ``report_settings``."""
    values = {"timeout": 5.0, "connect_timeout": 2.0}
    values.update(getattr(request, "param", {}))
    return values


@pytest.fixture
def mp_settings(
    tmp_path: Path,
    db_url: str,
    report_settings: dict[str, Any],
    reporter_settings: dict[str, Any],
) -> Settings:
    sections: dict[str, Any] = {
        "file": {"root": str(tmp_path / "mail-out")},
        "smtp": {"local_hostname": "client.test", "connect_timeout": 2.0},
        "reporter_http": reporter_settings,
    }
    values = {"max_retries": 2, "retry_delays": (0.001,), **report_settings}
    return Settings.from_values(
        db=db_url, api_token=ADMIN_TOKEN, plugin_sections=sections, **values
    )


@pytest.fixture
def client_app() -> Iterator[Callable[..., Any]]:
    """Factory: ``client_app(**attributes)`` starts a ``ClientApp``; all stop after the test."""
    testing = pytest.importorskip("mailproxy_reporter_http.testing")
    apps: list[Any] = []

    def start(**attributes: Any) -> Any:
        app = testing.ClientApp(**attributes).start()
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()


@pytest.fixture
def add_tenant(mp_client: ApiClient) -> Callable[..., Awaitable[None]]:
    """``await add_tenant(id, **fields)`` then an account ``main`` on the ``null`` transport."""

    async def add(tenant_id: str, **fields: Any) -> None:
        added = await mp_client.post("/tenants/add", json={"id": tenant_id, **fields})
        assert added.status == 200, added.json
        account = await mp_client.post(
            "/accounts/add",
            json={
                "id": "main",
                "tenant_id": tenant_id,
                "host": "null.invalid",
                "port": 25,
                "transport": "null",
            },
        )
        assert account.status == 200, account.json

    return add
