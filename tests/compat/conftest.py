"""The genro-mail-proxy 0.7.0 reference client against a running mail-proxy.

* ``reference_client`` — the module ``tools.http_client`` of the genro-mail-proxy 0.7.0 source
  distribution, downloaded from PyPI on first use into ``<venv>/reference-clients/`` (nothing of
  the reference is kept in this repository). It needs ``httpx`` and ``genro-toolbox`` (test
  dependencies).
* ``service`` — mail-proxy served by hypercorn on 127.0.0.1 in a background thread (its own event
  loop), on SQLite and on PostgreSQL, with the installed plugins and a real SMTP sink (aiosmtpd in
  its own thread). Test mode: messages are sent when a client calls ``run_now``.
"""

from __future__ import annotations

import asyncio
import fcntl
import importlib
import socket
import subprocess
import sys
import tarfile
import threading
import types
import uuid
from collections.abc import Iterator
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
from mailproxy_core.testing.db import (
    TEST_SCHEMA_PREFIX,
    drop_schema,
    postgres_server_url,
    postgres_unreachable_reason,
    url_with_schema,
)
from mailproxy_core.testing.plugin import ADMIN_TOKEN

REFERENCE = "genro-mail-proxy==0.7.0"
REFERENCE_DIR = "genro_mail_proxy-0.7.0"
CLIENT_FILE = Path("src", "tools", "http_client", "client.py")


def reference_home() -> Path:
    """Where the reference source distribution is unpacked: inside the running environment."""
    return Path(sys.prefix) / "reference-clients"


def fetch_reference() -> Path:
    """The ``src`` directory of the reference sdist, downloaded and unpacked once per venv."""
    home = reference_home()
    unpacked = home / REFERENCE_DIR
    home.mkdir(parents=True, exist_ok=True)
    # one download per venv, even with several pytest-xdist workers starting at once
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (unpacked / CLIENT_FILE).is_file():
            _download_reference(home)
    return unpacked / "src"


def _download_reference(home: Path) -> None:
    """Download the reference sdist into ``home`` and unpack it there."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-binary",
        ":all:",
        "--no-deps",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(home),
        REFERENCE,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        pytest.fail(
            f"could not download {REFERENCE} from PyPI ({' '.join(command)}): "
            f"{done.stderr.strip()[-2000:]}"
        )
    (archive,) = home.glob(f"{REFERENCE_DIR}.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(home, filter="data")


@pytest.fixture(scope="session")
def reference_client() -> types.ModuleType:
    """``tools.http_client`` of genro-mail-proxy 0.7.0, imported from the downloaded sdist."""
    src = str(fetch_reference())
    if src not in sys.path:
        sys.path.insert(0, src)
    return importlib.import_module("tools.http_client")


@dataclass
class Sink:
    """What the SMTP sink accepted: ``(MAIL FROM, RCPT TOs, message bytes)`` per message."""

    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        with self.lock:
            self.received.append((envelope.mail_from or "", list(envelope.rcpt_tos), content))
        return "250 OK"

    def messages(self) -> list[tuple[str, list[str], bytes]]:
        with self.lock:
            return list(self.received)


@dataclass(frozen=True)
class Service:
    """A running mail-proxy: its URL, the admin token, the SMTP sink and its port."""

    url: str
    token: str
    sink: Sink
    smtp_port: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, alive: Any) -> None:
    for _ in range(400):
        if not alive():
            raise RuntimeError("the mail-proxy server thread died during startup")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        threading.Event().wait(0.05)
    raise RuntimeError(f"mail-proxy at {url} did not come up")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """mail-proxy over HTTP with an SMTP sink, on SQLite or PostgreSQL (one per test module)."""
    schema: str | None = None
    server_url = postgres_server_url()
    if request.param == "sqlite":
        db = str(tmp_path_factory.mktemp("compat") / "mailproxy.db")
    else:
        reason = asyncio.run(postgres_unreachable_reason(server_url))
        if reason is not None:
            pytest.skip(reason)
        schema = TEST_SCHEMA_PREFIX + uuid.uuid4().hex[:16]
        db = url_with_schema(server_url, schema)

    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=_free_port())
    controller.start()
    settings = Settings.from_values(db=db, api_token=ADMIN_TOKEN, test_mode=True)
    app = create_app(settings)
    port = _free_port()
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
        yield Service(url=url, token=ADMIN_TOKEN, sink=sink, smtp_port=controller.port)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=15)
        loop.close()
        controller.stop()
        if schema is not None:
            asyncio.run(drop_schema(server_url, schema))
