"""Telling a database outage from a bug, and logging it without flooding the log.

``is_unavailable`` recognises, anywhere in an exception's cause chain, the errors a driver raises
when the database cannot be reached: a refused or reset connection, a connection that the server
closed (``AdminShutdownError`` when PostgreSQL stops), a server still starting, a connection left
broken by a shutdown that arrived mid-statement. The API answers
those with 503 and ``Retry-After`` instead of 500.

``OutageLog`` keeps the log bounded during an outage: one WARNING when the database goes away, a
reminder at most once per ``REMINDER_SECONDS`` while it stays away (with the number of failures
since the last line), one INFO when it is back. Every background loop that talks to the database
(dispatcher, reporting and its state writer, retention, receipt leases, the PostgreSQL ``LISTEN``
connection) keeps one, with a first line that says what waits meanwhile (``effect``);
``run_every`` is the periodic task built on it (retention, the storage sweeps, plugins' own).

``OutageTracebackFilter`` (installed on the driver's pool logger, ``asyncpg.pool``, when a
PostgreSQL database is opened) keeps asyncpg's own "Failed to restore the pool connection floor;
retrying" line, which asyncpg repeats with a doubling back-off while the server is away, but
drops its traceback when the error is an outage: the exception's type is appended instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

RETRY_AFTER_SECONDS = 5
"""What a 503 tells clients and load balancers to wait before retrying."""

REMINDER_SECONDS = 60.0
"""Least time between two log lines about one outage."""

_DRIVER_OUTAGE_NAMES = frozenset(
    {
        "PostgresConnectionError",  # asyncpg: connection lost or refused by the server
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "ClientCannotConnectError",
        "CannotConnectNowError",  # the server is starting or shutting down
        "AdminShutdownError",
        "CrashShutdownError",
        "ConnectionRejectionError",
        "TooManyConnectionsError",
    }
)

_BROKEN_PROTOCOL = ("another operation", "unknown protocol state")
"""What asyncpg's ``InternalClientError`` says when the server went away in the middle of a
statement and left the connection's protocol in a state it cannot leave (seen when PostgreSQL
stops under load)."""


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) means the database cannot be reached right now."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError):
            return True
        if any(cls.__name__ in _DRIVER_OUTAGE_NAMES for cls in type(current).__mro__):
            return True
        if type(current).__name__ == "InterfaceError" and "closed" in str(current).lower():
            return True  # asyncpg: "connection is closed"
        if type(current).__name__ == "InternalClientError" and any(
            words in str(current) for words in _BROKEN_PROTOCOL
        ):
            return True  # asyncpg: a server shutdown arrived mid-statement on a pooled connection
        current = current.__cause__ or current.__context__
    return False


DRIVER_POOL_LOGGER = "asyncpg.pool"
"""The database driver's pool logger, whose outage tracebacks ``OutageTracebackFilter`` drops."""


class OutageTracebackFilter(logging.Filter):
    """Drops the traceback of a record whose exception is a database outage (see module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and is_unavailable(exc):
            record.msg = f"{record.msg} ({type(exc).__name__}: database unavailable)"
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_driver_outage_tracebacks() -> None:
    """Install ``OutageTracebackFilter`` on the driver's pool logger (once)."""
    pool_log = logging.getLogger(DRIVER_POOL_LOGGER)
    if not any(isinstance(f, OutageTracebackFilter) for f in pool_log.filters):
        pool_log.addFilter(OutageTracebackFilter())


class OutageLog:
    """One WARNING when the database goes away, a reminder per minute, one INFO when it is back."""

    def __init__(
        self,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
        *,
        effect: str = "API calls answer 503 until it is back",
    ) -> None:
        self._logger = logger
        self._effect = effect
        self._clock = clock
        self._down_since: float | None = None
        self._last_line = 0.0
        self._failures = 0

    @property
    def down(self) -> bool:
        """Whether an outage is being reported."""
        return self._down_since is not None

    def failed(self, exc: BaseException) -> None:
        """The database could not be reached (``exc`` says how; its text is not logged)."""
        now = self._clock()
        self._failures += 1
        if self._down_since is None:
            self._down_since = self._last_line = now
            self._failures = 0
            self._logger.warning("database unavailable (%s); %s", type(exc).__name__, self._effect)
        elif now - self._last_line >= REMINDER_SECONDS:
            self._logger.warning(
                "database still unavailable after %.0f s (%d failed calls since the last line)",
                now - self._down_since,
                self._failures,
            )
            self._last_line = now
            self._failures = 0

    def succeeded(self) -> None:
        """The database answered: ends a reported outage with one INFO line."""
        if self._down_since is None:
            return
        self._logger.info("database available again after %.0f s", self._clock() - self._down_since)
        self._down_since = None
        self._failures = 0


async def run_every(
    interval: float,
    work: Callable[[], Awaitable[object]],
    *,
    log: logging.Logger,
    failed: str,
    effect: str,
) -> None:
    """Run ``work()`` now, then every ``interval`` seconds, until the task is cancelled.

    The shape of a periodic background task that must never end on an error: a database outage
    is logged by an :class:`OutageLog` (``effect`` says what waits meanwhile), any other
    exception with its traceback as ``failed``; either way the next round tries again.

    Example::

        async def sweep_round() -> None:
            removed = await delete_expired(mp)
            if removed:
                log.info("deleted %d expired files", removed)

        await run_every(3600, sweep_round, log=log, failed="the sweep failed",
                        effect="expired files are deleted when it is back")
    """
    outage = OutageLog(log, effect=effect)
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the next round tries again; the task never ends
            if is_unavailable(exc):
                outage.failed(exc)  # bounded: not one traceback per round
            else:
                log.exception("%s; trying again in %.0f s", failed, interval)
        else:
            outage.succeeded()
        await asyncio.sleep(interval)
