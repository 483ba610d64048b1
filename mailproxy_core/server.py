"""Serving: hypercorn run programmatically, and the API-less dispatch worker.

SIGTERM and SIGINT trigger a graceful shutdown: stop accepting, let in-flight work finish within
``drain_timeout`` seconds, release what is held, and return so the process exits 0. A hard cap
(``drain_timeout`` + 5 s) keeps shutdown bounded even when something refuses to stop.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from quart import Quart

from .kernel import MailProxy

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5.0
"""Seconds beyond the drain timeout before shutdown stops waiting altogether."""


def _install_signal_handlers(stop: asyncio.Event) -> Callable[[], None]:
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)

    def remove() -> None:
        for sig in signals:
            loop.remove_signal_handler(sig)

    return remove


async def serve_app(
    app: Quart, *, host: str, port: int, drain_timeout: float, stop: asyncio.Event | None = None
) -> None:
    """Serve ``app`` until SIGTERM/SIGINT (or ``stop`` is set), then shut down gracefully."""
    stop = stop or asyncio.Event()
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = drain_timeout
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    remove = _install_signal_handlers(stop)
    try:
        server = asyncio.ensure_future(hypercorn_serve(app, config, shutdown_trigger=stop.wait))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({server, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if server.done():  # startup failed (port taken, a plugin's startup raised ...)
            stopping.cancel()
            server.result()
            return
        try:
            await asyncio.wait_for(server, timeout=drain_timeout + SHUTDOWN_GRACE)
        except TimeoutError:
            log.error("shutdown did not finish within %.1f s; exiting anyway", drain_timeout)
    finally:
        remove()


async def run_worker(mp: MailProxy, *, stop: asyncio.Event | None = None) -> None:
    """Run only the dispatch tasks of ``mp`` (no API) until SIGTERM/SIGINT or ``stop``."""
    stop = stop or asyncio.Event()
    remove = _install_signal_handlers(stop)
    try:
        await mp.start("worker")
        try:
            await stop.wait()
        finally:
            await asyncio.wait_for(mp.stop(), timeout=mp.settings.drain_timeout + SHUTDOWN_GRACE)
    finally:
        remove()
