"""An instance with the dashboard, the admin token, test tenant keys and two tenants.

Tenant keys come from ``TenantTokenPlugin`` (``tenant-token:<tenant id>`` is that tenant's key),
standing in for the EE API-key plugin, so scoping is tested without it. ``UiClient`` is a
browser-like client of ``/ui/``: it keeps the session cookie and reads the CSRF token from
the pages, as a browser's form would send it.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart

from mailproxy_core import Settings
from mailproxy_core.app import create_app
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.fakes import TenantTokenPlugin
from mailproxy_core.testing.live import free_port
from mailproxy_core.testing.plugin import ADMIN_TOKEN, admin_token_plugins
from mailproxy_core.testing.smtp import ScriptedServer

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
"""What a browser's Accept header says: error pages come as HTML, not JSON."""

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class UiClient:
    """A signed-in (or not) browser session against ``/ui/`` of one app."""

    def __init__(self, app: Quart) -> None:
        self.client = app.test_client()
        self.csrf = ""

    async def sign_in(self, token: str) -> Any:
        form = await self.client.get("/ui/login")
        csrf = CSRF.search(await form.get_data(as_text=True))
        assert csrf, "the sign-in form carries a CSRF token"
        response = await self.client.post(
            "/ui/login", form={"token": token, "csrf_token": csrf.group(1), "next": ""}
        )
        if response.status_code == 302:
            await self.refresh_csrf()
        return response

    async def refresh_csrf(self) -> None:
        page = await self.client.get("/ui/")
        found = CSRF.search(await page.get_data(as_text=True))
        assert found, "a signed-in page carries the session's CSRF token"
        self.csrf = found.group(1)

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str]:
        kwargs["headers"] = {**BROWSER, **kwargs.get("headers", {})}
        response = await self.client.get(path, **kwargs)
        return response.status_code, await response.get_data(as_text=True)

    async def post(self, path: str, csrf: str | None = None, **form: str) -> Any:
        data = {"csrf_token": self.csrf if csrf is None else csrf, **form}
        return await self.client.post(path, form=data, headers=BROWSER)


@pytest.fixture
def mp_extra_plugins(mp_extra_plugins: dict[str, object]) -> dict[str, object]:
    mp_extra_plugins["tenant_tokens"] = TenantTokenPlugin()
    return mp_extra_plugins


@pytest.fixture
def ui(mp_app: Quart) -> Callable[[], UiClient]:
    """``ui()``: a new browser session of the test app (not signed in)."""
    return lambda: UiClient(mp_app)


@pytest.fixture
async def two_tenants(mp_client: ApiClient) -> ApiClient:
    """Tenants ``acme`` and ``globex``, each with account ``main`` and three messages.

    The account points at a closed port; nothing is sent (test mode).
    """
    for tenant in ("acme", "globex"):
        added = await mp_client.post("/tenants/add", id=tenant, name=f"{tenant.title()} Corp")
        assert added.status == 200, added.json
        account = await mp_client.post(
            "/accounts/add", id="main", tenant_id=tenant, host="127.0.0.1", port=9
        )
        assert account.status == 200, account.json
        messages = [
            {
                "id": f"{tenant}-{n}",
                "tenant_id": tenant,
                "account_id": "main",
                "from": f"shop@{tenant}.example",
                "to": f"customer{n}@{tenant}-clients.example",
                "subject": f"{tenant} order {n}",
                "body": "Thanks.",
                "batch_code": f"{tenant}-batch",
            }
            for n in range(3)
        ]
        queued = await mp_client.post("/messages/add_batch", messages=messages)
        assert queued.json["queued"] == 3, queued.json
    return mp_client


@pytest.fixture
def admin_token() -> str:
    return ADMIN_TOKEN


SignIn = Callable[[str], Awaitable[UiClient]]


@pytest.fixture
def signed_in(ui: Callable[[], UiClient]) -> SignIn:
    """``await signed_in(token)``: a browser session signed in with ``token``."""

    async def make(token: str) -> UiClient:
        client = ui()
        response = await client.sign_in(token)
        assert response.status_code == 302, await response.get_data(as_text=True)
        return client

    return make


class LiveService:
    """``start()`` / ``stop()`` a dashboard-enabled service; ``url`` and ``smtp`` once started."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.smtp = ScriptedServer()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="dashboard-live", daemon=True)

    def start(self) -> LiveService:
        self._thread.start()
        if not self._ready.wait(30):
            raise AssertionError("the live service did not start within 30 s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.smtp.start()
            settings = Settings.from_values(
                db=str(self.tmp_path / "mp.db"),
                api_token=ADMIN_TOKEN,
                test_mode=False,
                retry_delays=(3600.0,),
                plugin_sections={
                    "smtp": {"connect_timeout": 2.0, "command_timeout": 2.0, "data_timeout": 2.0},
                    "file": {"root": str(self.tmp_path / "mail-out")},
                },
            )
            plugins: dict[str, Any] = {**admin_token_plugins(), "tenants": TenantTokenPlugin()}
            app = create_app(settings, extra_plugins=plugins)
            config = Config()
            config.bind = [f"127.0.0.1:{self.port}"]
            config.accesslog = None
            server = asyncio.create_task(
                serve(app, config, shutdown_trigger=self._stop.wait)  # type: ignore[arg-type]
            )
            await self._wait_listening()
        except BaseException as error:
            self._error = error
            self._ready.set()
            raise
        self._ready.set()
        await server
        await self.smtp.stop()

    async def _wait_listening(self) -> None:
        for _ in range(300):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return
        raise AssertionError("hypercorn did not listen in time")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LiveService]:
    """A live service over HTTP with an aiosmtpd sink (``service.smtp``), for browser tests."""
    live = LiveService(tmp_path).start()
    try:
        yield live
    finally:
        live.stop()
