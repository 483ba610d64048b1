"""Notifications between processes sharing one PostgreSQL database (``LISTEN``/``NOTIFY``).

``Database.notify`` / ``Database.listen`` are built on this module. What they promise:

- A notification reaches the listeners of *other* processes using the same database and schema;
  a process never hears its own (it wakes its own tasks directly, with events). Every payload is
  prefixed with the sender's origin token to tell the two apart.
- Channels are scoped to the schema (``?schema=``), so instances sharing one PostgreSQL database
  in different schemas never wake each other.
- Listening uses one dedicated asyncpg connection per ``Database``, outside the pool (a pooled
  connection would be reset and handed to others). ``PgListener`` owns it: it reconnects with
  back-off when it drops (checked by a periodic probe as well, for drops the socket does not
  report), and after every reconnect calls each callback with ``None``, because notifications
  sent while it was away are lost and the listener must look for itself. While the database is
  away the log stays bounded (``OutageLog``): one WARNING when reconnecting starts failing, a
  reminder at most once a minute, one INFO when the connection is back.
- Delivery is best effort: ``NOTIFY`` is a wake-up hint, never the only way work is found.

On SQLite there is only ever one process: notifying does nothing and listening registers nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from .outage import OutageLog, is_unavailable

log = logging.getLogger(__name__)

Listener = Callable[[str | None], None]
"""Called with the payload of a notification, or ``None`` after a reconnect (maybe missed)."""

PROBE_INTERVAL = 30.0
"""Seconds between liveness probes of the listening connection."""

PROBE_TIMEOUT = 10.0
"""A probe not answered within this many seconds means the connection is gone."""

RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)
"""Back-off between reconnection attempts (the last repeats)."""

DISPATCH_CHANNEL = "mailproxy_dispatch"
"""The channel that wakes dispatchers in other processes (``mail-proxy worker``)."""

RECEIPT_CHANNEL = "mailproxy_receipts"
"""The channel that asks other processes' receipt loops to poll now (payload: a handler name,
or ``*`` for every handler)."""

_MAX_CHANNEL = 63  # PostgreSQL identifiers are at most 63 bytes


def scoped_channel(channel: str, schema: str | None) -> str:
    """The PostgreSQL channel name of ``channel`` for one schema (at most 63 bytes)."""
    if schema is None:
        return channel[:_MAX_CHANNEL]
    digest = hashlib.sha256(schema.encode()).hexdigest()[:12]
    return f"{channel[: _MAX_CHANNEL - 13]}_{digest}"


def encode_payload(origin: str, payload: str) -> str:
    """What travels in ``NOTIFY``: ``<origin> <payload>``."""
    return f"{origin} {payload}"


def decode_payload(text: str) -> tuple[str, str]:
    """``(origin, payload)`` of a received notification."""
    origin, _, payload = text.partition(" ")
    return origin, payload


class PgListener:
    """One dedicated connection that LISTENs on behalf of a ``Database`` (see module doc).

    ``connect_options`` are the keyword arguments of ``asyncpg.connect`` besides ``dsn``.
    ``start()`` is called on the first ``add``; ``close()`` stops listening for good.
    """

    def __init__(self, dsn: str, connect_options: dict[str, Any], origin: str) -> None:
        self._dsn = dsn
        self._options = connect_options
        self._origin = origin
        self._callbacks: dict[str, list[Listener]] = {}
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._closed = False
        self._outage = OutageLog(log, effect="cross-process wake-ups wait until it is back")

    @property
    def connected(self) -> bool:
        """Whether the listening connection is up right now."""
        return self._connection is not None and not self._connection.is_closed()

    async def add(self, channel: str, callback: Listener) -> None:
        """Call ``callback`` for notifications of (scoped) ``channel`` from other processes."""
        first = channel not in self._callbacks
        self._callbacks.setdefault(channel, []).append(callback)
        if self._task is None:
            self._closed = False
            self._task = asyncio.create_task(self._supervise(), name="mailproxy:pg-listener")
        elif first and self.connected:
            assert self._connection is not None
            await self._connection.add_listener(channel, self._receive)

    async def remove(self, channel: str, callback: Listener) -> None:
        """Stop calling ``callback``; the channel is unlistened when nobody is left."""
        callbacks = self._callbacks.get(channel, [])
        if callback in callbacks:
            callbacks.remove(callback)
        if callbacks or channel not in self._callbacks:
            return
        del self._callbacks[channel]
        if self.connected:
            assert self._connection is not None
            try:
                await self._connection.remove_listener(channel, self._receive)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                self._lost.set()

    async def wait_connected(self, within: float) -> bool:
        """Wait until the connection listens (tests, startup); ``False`` after ``within`` s."""
        try:
            async with asyncio.timeout(within):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop listening and close the connection."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._callbacks.clear()

    def drop_connection(self) -> None:
        """Treat the connection as lost and reconnect (also what a failed probe does)."""
        self._lost.set()

    # -- internals --------------------------------------------------------------------------

    async def _supervise(self) -> None:
        attempt = 0
        reconnected = False
        while not self._closed:
            try:
                await self._open()
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
                attempt += 1
                if is_unavailable(exc) or isinstance(exc, TimeoutError):
                    self._outage.failed(exc)  # bounded: not one line per attempt
                else:  # not an outage (refused credentials, say): worth its text every time
                    log.warning("LISTEN connection failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            attempt = 0
            if reconnected or self._outage.down:
                if self._outage.down:
                    self._outage.succeeded()  # one INFO line ends the outage
                else:
                    log.info("LISTEN connection re-established")
                self._broadcast(None)  # anything sent meanwhile was lost: look for yourselves
            reconnected = True
            try:
                await self._watch()
            finally:
                await self._close_connection()

    async def _open(self) -> None:
        self._lost.clear()
        connection = await asyncpg.connect(self._dsn, **self._options)
        try:
            connection.add_termination_listener(lambda _conn: self._lost.set())
            for channel in list(self._callbacks):
                await connection.add_listener(channel, self._receive)
        except BaseException:
            await connection.close(timeout=2.0)
            raise
        self._connection = connection
        self._connected.set()

    async def _watch(self) -> None:
        """Return when the connection is lost (reported, or a probe failed)."""
        while not self._lost.is_set():
            try:
                async with asyncio.timeout(PROBE_INTERVAL):
                    await self._lost.wait()
            except TimeoutError:
                if not await self._probe():
                    return
        # INFO: a blip is followed by "re-established"; an outage by one WARNING (OutageLog)
        log.info("LISTEN connection lost; reconnecting")

    async def _probe(self) -> bool:
        assert self._connection is not None
        try:
            await self._connection.fetchval("SELECT 1", timeout=PROBE_TIMEOUT)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.warning("LISTEN connection does not answer; reconnecting")
            return False
        return True

    async def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        self._connected.clear()
        if connection is None or connection.is_closed():
            return
        try:
            await connection.close(timeout=2.0)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            connection.terminate()

    def _receive(self, _connection: Any, _pid: int, channel: str, text: str) -> None:
        origin, payload = decode_payload(text)
        if origin == self._origin:
            return  # our own notification: the sender already woke what it needed here
        for callback in list(self._callbacks.get(channel, ())):
            _call(callback, payload)

    def _broadcast(self, payload: str | None) -> None:
        for callbacks in list(self._callbacks.values()):
            for callback in list(callbacks):
                _call(callback, payload)


def _call(callback: Listener, payload: str | None) -> None:
    try:
        callback(payload)
    except Exception:  # a listener's bug must not stop the connection's other listeners
        log.exception("notification listener %r failed", callback)
