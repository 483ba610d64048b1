"""mail-proxy served over real HTTP for tests: hypercorn on loopback and an aiosmtpd sink.

For tests that talk to the service the way a client does (an HTTP client library, a CLI, a
second process), not through Quart's test client:

- :func:`serve_in_thread` serves a Quart app with hypercorn on ``127.0.0.1`` in a background
  thread with its own event loop (for synchronous tests and module-scoped fixtures); it yields
  the base URL once ``health_path`` answers 200, and stops the server (running the app's
  shutdown) on exit.
- :func:`serve_in_loop` does the same as a task in the running event loop (for ``async`` tests
  that also want the app's kernel: ``mailproxy_core.app.kernel_of(app)``).
- :class:`SmtpSink` and :func:`smtp_sink`: an aiosmtpd server in its own thread that accepts every
  message and keeps its envelope and exact bytes (``sink.messages()``).
- :func:`live_service`: both together, the usual "running mail-proxy with a mailbox" of an end to
  end test: ``with live_service(settings) as service: service.url, service.sink,
  service.smtp_port``.

The app runs its startup and shutdown through hypercorn's lifespan, exactly as under
``mail-proxy serve``. Needs ``aiosmtpd`` (a test dependency) for the sink.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
from hypercorn.asyncio import serve
from hypercorn.config import Config

if TYPE_CHECKING:
    from aiosmtpd.smtp import SMTP, Envelope, Session
    from quart import Quart

    from ..settings import Settings

STARTUP_SECONDS = 30.0
"""How long a server may take to answer its health path before the helpers give up."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(port: int) -> Config:
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    return config


def wait_until_up(
    url: str, alive: Callable[[], bool] | None = None, *, within: float = STARTUP_SECONDS
) -> None:
    """Block until ``GET url`` answers 200; ``RuntimeError`` after ``within`` seconds or as soon
    as ``alive()`` (when given) turns false."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"the server thread for {url} died during startup")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200 within {within} s")


@contextmanager
def serve_in_thread(
    app: Quart, *, health_path: str = "/health", slow_callback: float | None = None
) -> Iterator[str]:
    """Serve ``app`` on a free loopback port from a background thread; yields its base URL.

    ``slow_callback`` (seconds) runs the server's event loop in asyncio debug mode, which logs
    (logger ``asyncio``, WARNING) every step that held the loop longer than that.
    """
    port = free_port()
    loop = asyncio.new_event_loop()
    if slow_callback is not None:
        loop.set_debug(True)
        loop.slow_callback_duration = slow_callback
    stop = asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete,
        args=(serve(app, _config(port), shutdown_trigger=stop.wait),),
        daemon=True,
    )
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + health_path, thread.is_alive)
        yield url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=15)
        loop.close()


@asynccontextmanager
async def serve_in_loop(app: Quart, *, health_path: str = "/health") -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port as a task of the running loop; yields its base URL.

    A startup failure of the app is raised here (not left in a background task)."""
    port = free_port()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, _config(port), shutdown_trigger=stop.wait))
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            deadline = asyncio.get_running_loop().time() + STARTUP_SECONDS
            while True:
                if server.done():
                    server.result()  # raises the startup error
                    raise RuntimeError(f"the server for {url} stopped during startup")
                try:
                    if (await http.get(url + health_path)).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"{url} did not come up within {STARTUP_SECONDS} s")
                await asyncio.sleep(0.025)
        yield url
    finally:
        stop.set()
        await asyncio.wait_for(server, 30)


@dataclass(frozen=True)
class SinkMessage:
    """A message the sink accepted: the envelope and the exact bytes of DATA."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class SmtpSink:
    """An aiosmtpd handler that accepts every message (``250 OK``) and keeps it."""

    received: list[SinkMessage] = field(default_factory=list)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = SinkMessage(envelope.mail_from or "", list(envelope.rcpt_tos), content)
        with self.lock:
            self.received.append(message)
        return "250 OK"

    def messages(self) -> list[SinkMessage]:
        """What arrived so far (a copy: the server thread keeps appending)."""
        with self.lock:
            return list(self.received)


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    """An :class:`SmtpSink` listening on a free loopback port (``sink.port``) in its own thread."""
    from aiosmtpd.controller import Controller

    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    sink.port = controller.port
    try:
        yield sink
    finally:
        controller.stop()


@dataclass(frozen=True)
class LiveService:
    """A running mail-proxy: its base URL and the SMTP sink its accounts can point at."""

    url: str
    sink: SmtpSink

    @property
    def smtp_port(self) -> int:
        return self.sink.port


@contextmanager
def live_service(
    settings: Settings,
    *,
    extra_plugins: Mapping[str, object] | None = None,
    slow_callback: float | None = None,
) -> Iterator[LiveService]:
    """mail-proxy built from ``settings`` (installed plugins, plus ``extra_plugins``) served by
    :func:`serve_in_thread` (``slow_callback`` as there), with an :func:`smtp_sink`."""
    from ..app import create_app

    with smtp_sink() as sink:
        app = create_app(settings, extra_plugins=dict(extra_plugins or {}))
        with serve_in_thread(app, slow_callback=slow_callback) as url:
            yield LiveService(url=url, sink=sink)
