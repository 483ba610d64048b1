"""Serving: hypercorn run programmatically, and the API-less dispatch worker.

SIGTERM and SIGINT trigger a graceful shutdown: stop accepting, let in-flight work finish within
``drain_timeout`` seconds, release what is held, and return so the process exits 0. A hard cap
(``drain_timeout`` + 5 s) keeps shutdown bounded even when something refuses to stop.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
from collections.abc import Callable

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from quart import Quart

from .errors import ConfigurationError
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


class PortUnavailable(ConfigurationError):
    """The listen address cannot be bound (busy port, no permission, unknown host)."""


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``, or ``PortUnavailable`` saying why not.

    Binding before anything is announced means "listening on ..." is only ever printed for a
    port that is really ours, and a busy port is one clear line instead of a traceback.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortUnavailable(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            reason = "the port is already in use (another mail-proxy, or another program)"
        elif exc.errno == errno.EACCES:
            reason = "permission denied (ports below 1024 need privileges)"
        else:
            reason = exc.strerror or str(exc)
        raise PortUnavailable(
            f"cannot listen on {host}:{port}: {reason}; "
            "choose another address with --host/--port or MAILPROXY_HOST/MAILPROXY_PORT"
        ) from exc
    return sock


async def serve_app(
    app: Quart,
    *,
    host: str,
    port: int,
    drain_timeout: float,
    stop: asyncio.Event | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve ``app`` until SIGTERM/SIGINT (or ``stop`` is set), then shut down gracefully.

    The port is bound first; ``announce`` (if given) is then called with the
    ``"mail-proxy listening on ..."`` line. Raises ``PortUnavailable`` when the port cannot be
    bound.
    """
    stop = stop or asyncio.Event()
    listener = bind_listener(host, port)
    if announce is not None:
        shown = f"[{host}]" if ":" in host else host
        announce(f"mail-proxy listening on http://{shown}:{listener.getsockname()[1]}")
    config = Config()
    # hypercorn adopts the descriptor (and closes it on shutdown).
    config.bind = [f"fd://{listener.detach()}"]
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
