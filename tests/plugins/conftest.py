"""Fixtures for plugin-machinery tests: fake installed distributions on ``sys.path``, and an
app served over real HTTP (``serve_app``)."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailproxy_core.app import create_app, kernel_of
from mailproxy_core.kernel import MailProxy
from mailproxy_core.settings import Settings
from mailproxy_core.testing.live import serve_in_loop
from mailproxy_core.testing.plugin import ADMIN_TOKEN


@pytest.fixture
def install_fake_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Create a distribution with a ``mailproxy`` entry point, visible to importlib.metadata.

    Returns the module name (unique per call, removed from ``sys.modules`` afterwards).
    """
    site = tmp_path / f"site-{uuid.uuid4().hex[:8]}"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def install(entry_name: str, source: str, *, dist: str | None = None) -> str:
        module = f"fake_{entry_name}_{uuid.uuid4().hex[:8]}"
        dist = dist or f"fake-{entry_name}"
        info = site / f"{dist.replace('-', '_')}-0.3.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3.1\n")
        (info / "entry_points.txt").write_text(f"[mailproxy]\n{entry_name} = {module}\n")
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        monkeypatch.delitem(sys.modules, module, raising=False)
        return module

    return install


@dataclass
class LiveApp:
    """An app served by hypercorn on loopback: its URL, its kernel and an admin HTTP client."""

    url: str
    mp: MailProxy
    http: httpx.AsyncClient

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(path, json=body)

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params)


@pytest.fixture
def serve_app(
    tmp_path: Path, mp_extra_plugins: dict[str, object]
) -> Callable[..., AbstractAsyncContextManager[LiveApp]]:
    """``async with serve_app(plugins, db=..., **settings) as live``: a real HTTP server.

    The app runs its startup and shutdown through hypercorn's lifespan, exactly as under
    ``mail-proxy serve``; ``live.http`` sends the admin token.
    """

    @asynccontextmanager
    async def serve_it(
        plugins: dict[str, object], *, db: str | None = None, **values: Any
    ) -> AsyncIterator[LiveApp]:
        settings = Settings.from_values(
            db=db or str(tmp_path / "live.db"),
            api_token=ADMIN_TOKEN,
            test_mode=True,
            **values,
        )
        app = create_app(settings, extra_plugins={**mp_extra_plugins, **plugins})
        async with serve_in_loop(app) as url:
            headers = {"X-API-Token": ADMIN_TOKEN}
            async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
                yield LiveApp(url, kernel_of(app), http)

    return serve_it
