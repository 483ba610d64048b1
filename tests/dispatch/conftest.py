"""An instance with the SMTP plugin, a scripted SMTP server, a tenant and an account on it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mailproxy_core import Settings
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.plugin import ADMIN_TOKEN
from mailproxy_core.testing.smtp import ScriptedServer

pytestmark = pytest.mark.requires_plugins("smtp", "auth_token")


@pytest.fixture
def dispatch_settings() -> dict[str, Any]:
    """Settings a test may change before the app starts."""
    return {"max_retries": 2, "retry_delays": (0.001,), "max_concurrency": 10, "max_per_account": 3}


@pytest.fixture
def mp_settings(tmp_path, db_url, dispatch_settings) -> Settings:
    return Settings.from_values(
        db=db_url,
        api_token=ADMIN_TOKEN,
        test_mode=True,
        plugin_sections={
            "file": {"root": str(tmp_path / "mail-out")},
            "smtp": {
                "local_hostname": "client.test",
                "connect_timeout": 2.0,
                "command_timeout": 2.0,
                "data_timeout": 2.0,
                "close_timeout": 0.5,
            },
        },
        **dispatch_settings,
    )


@pytest.fixture
async def server(smtp_server: Callable[..., Awaitable[ScriptedServer]]) -> ScriptedServer:
    return await smtp_server()


@pytest.fixture
async def relay(mp_client: ApiClient, server: ScriptedServer) -> ApiClient:
    """Tenant ``acme`` with account ``main`` on the scripted server."""
    assert (await mp_client.post("/tenants/add", id="acme", name="Acme")).status == 200
    account = await mp_client.post(
        "/accounts/add",
        id="main",
        tenant_id="acme",
        host="127.0.0.1",
        port=server.port,
        use_tls=False,
    )
    assert account.status == 200, account.json
    return mp_client
