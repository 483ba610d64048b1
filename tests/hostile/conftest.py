"""A running mail-proxy for hostile-input tests: real HTTP over loopback, a real SMTP sink.

* ``service`` — mail-proxy served by hypercorn on 127.0.0.1 in a background thread (its own event
  loop), on SQLite, with the installed plugins, in test mode (messages are sent when a client
  calls ``instance/run_now``), and an aiosmtpd sink in its own thread that keeps the exact bytes
  of every DATA it receives.
* ``error_log`` — every log record of level ERROR or above emitted while a test runs (in any
  thread), to assert that hostile input never produces an unhandled-error log.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from hypercorn.asyncio import serve
from hypercorn.config import Config

from mailproxy_core import Settings
from mailproxy_core.app import create_app
from mailproxy_core.testing.plugin import ADMIN_TOKEN

ADMIN = {"X-API-Token": ADMIN_TOKEN}


@dataclass
class Sink:
    """What the SMTP sink accepted: ``(RCPT TOs, raw DATA bytes)`` per message."""

    received: list[tuple[list[str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        with self.lock:
            self.received.append((list(envelope.rcpt_tos), content))
        return "250 OK"

    def messages(self) -> list[tuple[list[str], bytes]]:
        with self.lock:
            return list(self.received)


@dataclass(frozen=True)
class Service:
    """A running mail-proxy: its URL, the SMTP sink and its port."""

    url: str
    sink: Sink
    smtp_port: int
    root: Path

    def post(self, path: str, body: Any = None, *, content: bytes | None = None) -> httpx.Response:
        """``POST`` as the admin (``body`` JSON-encoded, or raw ``content``)."""
        return httpx.post(
            f"{self.url}{path}", json=body, content=content, headers=ADMIN, timeout=120
        )

    def get(self, path: str, **params: Any) -> httpx.Response:
        """``GET`` as the admin."""
        return httpx.get(f"{self.url}{path}", params=params, headers=ADMIN, timeout=60)

    def tenant_with_account(self) -> tuple[str, str]:
        """A new tenant with one SMTP account pointing at the sink."""
        tenant_id = f"t-{uuid.uuid4().hex[:10]}"
        assert self.post("/tenants/add", {"id": tenant_id}).status_code == 200
        account = {
            "id": "smtp",
            "tenant_id": tenant_id,
            "host": "127.0.0.1",
            "port": self.smtp_port,
            "use_tls": False,
        }
        response = self.post("/accounts/add", account)
        assert response.status_code == 200, response.text
        return tenant_id, "smtp"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, alive: Any) -> None:
    for _ in range(600):
        if not alive():
            raise RuntimeError("the mail-proxy server thread died during startup")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        threading.Event().wait(0.05)
    raise RuntimeError(f"mail-proxy at {url} did not come up")


@contextmanager
def running_service(
    db: str,
    root: Path,
    *,
    test_mode: bool = True,
    extra_plugins: dict[str, object] | None = None,
    **values: Any,
) -> Iterator[Service]:
    """mail-proxy on ``db`` served over HTTP in a background thread, with an SMTP sink.

    ``test_mode=False`` runs the dispatcher and reporting loops too; ``extra_plugins`` are
    in-process plugin objects, ``values`` further settings.
    """
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings = Settings.from_values(db=db, api_token=ADMIN_TOKEN, test_mode=test_mode, **values)
    app = create_app(settings, extra_plugins=extra_plugins)
    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete,
        args=(serve(app, config, shutdown_trigger=stop.wait),),  # type: ignore[arg-type]
        daemon=True,
    )
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, thread.is_alive)
        yield Service(url=url, sink=sink, smtp_port=controller.port, root=root)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=15)
        loop.close()
        controller.stop()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """mail-proxy over HTTP on SQLite with an SMTP sink (one per test module)."""
    root = tmp_path_factory.mktemp("hostile")
    with running_service(str(root / "mailproxy.db"), root) as running:
        yield running


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def error_log() -> Iterator[list[logging.LogRecord]]:
    """ERROR (and worse) records logged anywhere in the process during the test."""
    collector = _Collector()
    root = logging.getLogger()
    root.addHandler(collector)
    try:
        yield collector.records
    finally:
        root.removeHandler(collector)
