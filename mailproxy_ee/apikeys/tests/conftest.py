"""An instance with ``ee_apikeys`` served by hypercorn on loopback, on SQLite and PostgreSQL.

``live`` starts the app with a real HTTP server in the test's event loop and gives an httpx
client for it, the kernel, and helpers to call the API as the admin or with any key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailproxy_core import MailProxy, Settings
from mailproxy_core.app import create_app, kernel_of
from mailproxy_core.crypto import generate_key
from mailproxy_core.testing.live import serve_in_loop
from mailproxy_core.testing.plugin import ADMIN_TOKEN


@pytest.fixture
def mp_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings.from_values(
        db=db_url,
        api_token=ADMIN_TOKEN,
        test_mode=True,
        encryption_key=generate_key(),
        plugin_sections={"file": {"root": str(tmp_path / "mail-out")}},
    )


@dataclass
class Live:
    """A running instance: its URL, an HTTP client, its kernel."""

    url: str
    http: httpx.AsyncClient
    mp: MailProxy

    async def call(
        self, method: str, path: str, token: str | None = ADMIN_TOKEN, **params: Any
    ) -> httpx.Response:
        """``GET`` with ``params`` as the query string, ``POST`` with them as the JSON body."""
        headers = {"X-API-Token": token} if token else {}
        if method == "GET":
            return await self.http.get(path, params=params, headers=headers)
        return await self.http.post(path, json=params, headers=headers)

    async def get(self, path: str, token: str | None = ADMIN_TOKEN, **params: Any) -> Any:
        """The JSON body of a ``GET`` that must succeed."""
        response = await self.call("GET", path, token, **params)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    async def post(self, path: str, token: str | None = ADMIN_TOKEN, **params: Any) -> Any:
        """The JSON body of a ``POST`` that must succeed."""
        response = await self.call("POST", path, token, **params)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()


@pytest.fixture
async def live(mp_settings: Settings, mp_extra_plugins: dict[str, object]) -> AsyncIterator[Live]:
    app = create_app(mp_settings, extra_plugins=mp_extra_plugins)
    async with serve_in_loop(app) as url, httpx.AsyncClient(base_url=url, timeout=30.0) as http:
        yield Live(url, http, kernel_of(app))
