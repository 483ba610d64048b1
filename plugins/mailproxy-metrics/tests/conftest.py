"""An instance with the metrics plugin, a scripted SMTP server, a tenant and an account on it.

The patterns of ``tests/dispatch/conftest.py``: tenant ``acme`` ("Acme Corp") and account
``main`` are created over the API, messages are enqueued with ``/messages/add_batch`` and sent
by ``dispatch_now``. ``scrape(app)`` reads ``/metrics`` without a token and parses it. Helpers
are fixtures because test modules are imported with ``--import-mode=importlib``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from quart import Quart

from mailproxy_core import Settings
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.plugin import ADMIN_TOKEN
from mailproxy_core.testing.smtp import ScriptedServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""Parsed ``/metrics``: (sample name, labels) → value."""


def _message(mid: str, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": mid,
        "tenant_id": "acme",
        "account_id": "main",
        "from": "Shop <shop@acme.example>",
        "to": "bob@example.com",
        "subject": f"Order {mid}",
        "body": "Thanks for your order.",
    }
    values.update(fields)
    return values


async def _enqueue(client: ApiClient, *messages: dict[str, Any]) -> None:
    response = await client.post("/messages/add_batch", messages=list(messages))
    assert response.status == 200 and response.json["queued"] == len(messages), response.json


async def _add_account(
    client: ApiClient, server: ScriptedServer, account_id: str = "main", **fields: Any
) -> None:
    if (await client.get("/tenants/get", tenant_id="acme")).status == 404:
        added = await client.post("/tenants/add", id="acme", name="Acme Corp")
        assert added.status == 200, added.json
    account = await client.post(
        "/accounts/add",
        id=account_id,
        tenant_id="acme",
        host="127.0.0.1",
        port=server.port,
        use_tls=False,
        **fields,
    )
    assert account.status == 200, account.json


def _settings(db: str, dispatch_settings: dict[str, Any], **sections: Any) -> Settings:
    return Settings.from_values(
        db=db,
        api_token=ADMIN_TOKEN,
        test_mode=True,
        plugin_sections={
            "smtp": {
                "local_hostname": "client.test",
                "connect_timeout": 2.0,
                "command_timeout": 2.0,
                "data_timeout": 2.0,
                "close_timeout": 0.5,
            },
            **sections,
        },
        **dispatch_settings,
    )


@pytest.fixture
def make_message() -> Callable[..., dict[str, Any]]:
    """``make_message(mid, **fields)``: a message of ``acme`` through account ``main``."""
    return _message


@pytest.fixture
def enqueue() -> Callable[..., Awaitable[None]]:
    """``await enqueue(client, *messages)``: ``/messages/add_batch``, every one accepted."""
    return _enqueue


@pytest.fixture
def add_account() -> Callable[..., Awaitable[None]]:
    """``await add_account(client, server, account_id="main", **fields)``.

    Creates tenant ``acme`` ("Acme Corp") on first use and an account on the scripted server.
    """
    return _add_account


@pytest.fixture
def instance_settings(dispatch_settings: dict[str, Any]) -> Callable[..., Settings]:
    """``instance_settings(db, **plugin_sections)``: settings of one more test instance."""

    def make(db: str, **sections: Any) -> Settings:
        return _settings(db, dispatch_settings, **sections)

    return make


@pytest.fixture
def dispatch_settings() -> dict[str, Any]:
    """Kernel settings a test may change before the app starts.

    A long retry delay keeps a transiently failed message deferred, so it can be seen in the
    counters and the pending gauge instead of being retried within the same ``dispatch_now``.
    """
    return {"max_retries": 2, "retry_delays": (3600.0,), "max_concurrency": 10}


@pytest.fixture
def metrics_section() -> dict[str, Any]:
    """The ``[plugins.metrics]`` section of the test instance (parametrize to change it)."""
    return {}


@pytest.fixture
def mp_settings(
    db_url: str, dispatch_settings: dict[str, Any], metrics_section: dict[str, Any]
) -> Settings:
    return _settings(db_url, dispatch_settings, metrics=metrics_section)


@pytest.fixture
async def server(smtp_server: Callable[..., Awaitable[ScriptedServer]]) -> ScriptedServer:
    return await smtp_server()


@pytest.fixture
async def relay(mp_client: ApiClient, server: ScriptedServer) -> ApiClient:
    """The admin client, with tenant ``acme`` and account ``main`` on the scripted server."""
    await _add_account(mp_client, server)
    return mp_client


@pytest.fixture
def scrape() -> Callable[[Quart], Awaitable[Samples]]:
    """``await scrape(app)``: ``GET /metrics`` without credentials, checked and parsed."""

    async def get(app: Quart) -> Samples:
        response = await app.test_client().get("/metrics")
        assert response.status_code == 200, await response.get_data(as_text=True)
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await response.get_data(as_text=True)
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    return get
