"""Fixtures for plugin-machinery tests: fake installed distributions on ``sys.path``, and an
app served over real HTTP (``serve_app``)."""

from __future__ import annotations

import asyncio
import socket
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
from hypercorn.asyncio import serve
from hypercorn.config import Config

from mailproxy_core.app import create_app, kernel_of
from mailproxy_core.kernel import MailProxy
from mailproxy_core.settings import Settings
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        port = _free_port()
        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        config.errorlog = None
        stop = asyncio.Event()
        server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
        url = f"http://127.0.0.1:{port}"
        headers = {"X-API-Token": ADMIN_TOKEN}
        try:
            async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
                for _ in range(400):
                    if server.done():
                        server.result()  # raises the startup error
                    try:
                        if (await http.get("/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.025)
                else:
                    raise AssertionError(f"the app at {url} did not come up")
                yield LiveApp(url, kernel_of(app), http)
        finally:
            stop.set()
            await asyncio.wait_for(server, 30)

    return serve_it
