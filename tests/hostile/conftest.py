"""A running mail-proxy for hostile-input tests: real HTTP over loopback, a real SMTP sink.

* ``service`` — mail-proxy served over HTTP on 127.0.0.1 (``mailproxy_core.testing.live``: hypercorn
  in a background thread), on SQLite, with the installed plugins, in test mode (messages are sent
  when a client calls ``instance/run_now``), and an aiosmtpd sink in its own thread that keeps the
  exact bytes of every DATA it receives.
* ``error_log`` — every log record of level ERROR or above emitted while a test runs (in any
  thread), to assert that hostile input never produces an unhandled-error log.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailproxy_core import Settings
from mailproxy_core.testing.live import SmtpSink, live_service
from mailproxy_core.testing.plugin import ADMIN_TOKEN

ADMIN = {"X-API-Token": ADMIN_TOKEN}


@dataclass(frozen=True)
class Service:
    """A running mail-proxy: its URL, the SMTP sink and its port."""

    url: str
    sink: SmtpSink
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


@contextmanager
def running_service(
    db: str,
    root: Path,
    *,
    test_mode: bool = True,
    slow_callback: float | None = None,
    extra_plugins: dict[str, object] | None = None,
    **values: Any,
) -> Iterator[Service]:
    """mail-proxy on ``db`` served over HTTP in a background thread, with an SMTP sink.

    ``test_mode=False`` runs the dispatcher and reporting loops too; ``extra_plugins`` are
    in-process plugin objects, ``values`` further settings. ``slow_callback`` (seconds) runs the
    server's event loop in asyncio debug mode, which logs (logger ``asyncio``, WARNING) every
    step that held the loop longer than that.
    """
    settings = Settings.from_values(db=db, api_token=ADMIN_TOKEN, test_mode=test_mode, **values)
    with live_service(settings, extra_plugins=extra_plugins, slow_callback=slow_callback) as live:
        yield Service(url=live.url, sink=live.sink, smtp_port=live.smtp_port, root=root)


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
