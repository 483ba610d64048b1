"""The SQLite backend for ``databases``, tuned for a durable queue.

``databases`` 0.9 opens a brand-new aiosqlite connection (a thread plus a file open) for every
statement run outside a transaction, applies no per-connection settings, and starts every
transaction with a deferred ``BEGIN``. For a queue that several tasks write concurrently that is
both slow and fragile: a deferred transaction that reads and then writes fails at once with
``database is locked`` when another connection wrote in between (SQLite does not wait on the
busy handler in that case). This backend changes these things and nothing else:

- connections are kept in a small idle pool and reused (a statement outside a transaction costs
  about half as much), and each new one gets ``PRAGMA foreign_keys = ON`` (SQLite's default is
  off, per connection) and a busy timeout;
- a root transaction starts with ``BEGIN IMMEDIATE``, taking the write lock up front and waiting
  for it under the busy timeout, so transactions queue instead of failing; within one process
  they first queue for a *write turn* (``WriteTurns``): writers belong to *lanes* (the dispatcher,
  the reporting loop, everything else, i.e. the API), turns go round-robin across the lanes that
  have writers waiting (the dispatcher's lane weighted: up to ``LANE_WEIGHTS`` turns in a row)
  and first come, first served within a lane, so twenty API clients writing at full speed cannot
  starve the dispatcher's commits (it waits for at most one write per other busy lane);
- nested transactions keep using savepoints, as in ``databases``;
- a connection whose BEGIN/COMMIT/ROLLBACK was interrupted is discarded, never reused (see
  ``_databases.py``), and so is one whose statement was cancelled: the statement may still be
  running in the connection's thread, and its unfinished cursor would make the next owner's
  ``COMMIT`` fail with "SQL statements in progress".

The journal mode (WAL) is persistent in the database file and is set once by ``Database.connect``.
``synchronous`` stays at SQLite's default ``FULL``: an accepted message must survive a power cut.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import threading
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import aiosqlite
from databases.backends.sqlite import (
    SQLiteBackend,
    SQLiteConnection,
    SQLitePool,
    SQLiteTransaction,
)
from databases.core import DatabaseURL
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import TextClause

DEFAULT_BUSY_TIMEOUT = 30.0
"""Seconds a connection waits for another connection's write lock before failing."""

DEFAULT_MAX_IDLE = 8
"""Idle connections kept open for reuse."""


DEFAULT_LANE = "default"
"""The write lane of tasks that chose none (the API's requests, CLI commands)."""

_write_lane: contextvars.ContextVar[str] = contextvars.ContextVar(
    "mailproxy_write_lane", default=DEFAULT_LANE
)


def set_write_lane(lane: str) -> None:
    """Put the current task (and the tasks it creates from now on) in write lane ``lane``."""
    _write_lane.set(lane)


def current_write_lane() -> str:
    """The write lane of the current task."""
    return _write_lane.get()


DISPATCH_LANE = "dispatch"
"""The dispatcher's write lane (its cycles, rate-limit counters and heartbeats)."""

LANE_WEIGHTS: Mapping[str, int] = {DISPATCH_LANE: 3}
"""Turns a lane may take in a row while other lanes wait (default 1). The dispatcher's turns
are short (the outcomes of a few sends) and every one of them frees send slots; an API turn
stores a whole batch. Three to one keeps delivery at half its unloaded rate or better under a
full-speed enqueue load (docs/performance.md)."""

HOLD_BACK_SECONDS = 0.005
"""How long a turn stays reserved for a lane that has turns left in its row but no writer
waiting at the moment it releases (the dispatcher begins its next round within an event-loop
iteration or two). Others wait at most this long; past it the turn passes on."""


class WriteTurns:
    """One writer at a time; waiting writers are served round-robin across lanes (weighted),
    FIFO within a lane.

    A lane that was just served goes to the back of the rotation if it still has writers
    waiting, so every lane with a waiter gets a turn before any lane gets another row of turns:
    a sustained burst in one lane (many API requests) delays another lane's writer by at most
    one row of turns per other busy lane, however many are queued. A lane of weight *w* may take
    up to *w* turns in a row while others wait; when it releases with turns left but no writer
    queued, the turn is held back for it for up to ``hold_back`` seconds (only while others
    wait: with nobody else waiting the turn is simply free).
    """

    def __init__(self, weights: Mapping[str, int] | None = None, hold_back: float = 0.0) -> None:
        self._weights = dict(weights or {})
        self._hold_back = hold_back
        self._held = False
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._rotation: deque[str] = deque()  # lanes with waiters, next to serve first
        self._lane: str | None = None  # the lane of the current (or last) turn
        self._row = 0  # turns in a row of that lane
        self._reserved: asyncio.TimerHandle | None = None

    @property
    def held(self) -> bool:
        """Whether a writer holds the turn (or it is held back for one)."""
        return self._held

    def waiting(self) -> int:
        """Writers waiting for a turn."""
        return sum(len(queue) for queue in self._waiting.values())

    async def acquire(self, lane: str) -> None:
        """Wait for a turn as a writer of ``lane``."""
        if self._reserved is not None and lane == self._lane:
            self._reserved.cancel()  # back within the hold-back: its next turn in the row
            self._reserved = None
            self._row += 1
            return
        if not self._held and not self._rotation:
            self._held = True
            self._count_turn(lane)
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiting.get(lane)
        if queue is None:
            queue = self._waiting[lane] = deque()
            self._rotation.append(lane)
        queue.append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # granted as we were cancelled: hand the turn on
            else:
                self._forget(lane, granted)
            raise

    def release(self) -> None:
        """End the current turn: the same lane again while it has turns left in its row, else
        the next lane in the rotation, if anyone waits."""
        lane = self._lane
        if lane is not None and self._row < self._weights.get(lane, 1):
            if lane in self._waiting and self._grant(lane):
                return
            if self._hold_back > 0 and any(other != lane for other in self._rotation):
                loop = asyncio.get_running_loop()
                self._reserved = loop.call_later(self._hold_back, self._expire)
                return
        self._pass_on()

    def _expire(self) -> None:
        self._reserved = None
        self._row = self._weights.get(self._lane or "", 1)  # its row is over
        self._pass_on()

    def _pass_on(self) -> None:
        while self._rotation:
            if self._grant(self._rotation[0]):
                return  # the turn passes on: still held
        self._held = False

    def _grant(self, lane: str) -> bool:
        """Give the turn to the first live writer of ``lane``; ``False`` if it had none."""
        queue = self._waiting[lane]
        self._rotation.remove(lane)
        while queue:
            granted = queue.popleft()
            if not granted.done():
                if queue:
                    self._rotation.append(lane)
                else:
                    del self._waiting[lane]
                granted.set_result(None)
                self._count_turn(lane)
                return True
        del self._waiting[lane]
        return False

    def _count_turn(self, lane: str) -> None:
        self._row = self._row + 1 if lane == self._lane else 1
        self._lane = lane

    def _forget(self, lane: str, granted: asyncio.Future[None]) -> None:
        queue = self._waiting.get(lane)
        if queue is None or granted not in queue:
            return
        queue.remove(granted)
        if not queue:
            del self._waiting[lane]
            self._rotation.remove(lane)


class QueueSQLiteBackend(SQLiteBackend):
    """``databases`` backend for SQLite with pooled, configured connections (see module doc).

    ``busy_timeout`` (seconds) and ``max_idle`` come from the ``databases.Database`` options.
    """

    def __init__(
        self,
        database_url: DatabaseURL | str,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        max_idle: int = DEFAULT_MAX_IDLE,
    ) -> None:
        super().__init__(database_url)
        self._idle_pool = IdleConnectionPool(
            DatabaseURL(database_url), busy_timeout=busy_timeout, max_idle=max_idle
        )

    async def connect(self) -> None:
        self._idle_pool.open()

    async def disconnect(self) -> None:
        await self._idle_pool.close()

    def connection(self) -> QueueSQLiteConnection:
        return QueueSQLiteConnection(self._idle_pool, self._dialect)


class IdleConnectionPool(SQLitePool):
    """Opens configured aiosqlite connections and keeps up to ``max_idle`` of them for reuse.

    A connection handed back inside an open transaction (its task was cancelled mid-way) is
    closed rather than reused, so no later caller inherits someone else's transaction.
    """

    def __init__(self, url: DatabaseURL, *, busy_timeout: float, max_idle: int) -> None:
        super().__init__(url)
        self._path = url.database
        self._busy_timeout = busy_timeout
        self._max_idle = max_idle
        self._idle: list[aiosqlite.Connection] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
        self._write_turns = WriteTurns(LANE_WEIGHTS, HOLD_BACK_SECONDS)

    def open(self) -> None:
        """Allow reuse again after ``close`` (``Database.connect`` after a disconnect)."""
        self._closed = False

    async def acquire(self) -> aiosqlite.Connection:
        """An idle connection, or a newly opened one with the connection settings applied."""
        if self._idle:
            return self._idle.pop()
        connection = aiosqlite.connect(self._path, isolation_level=None, timeout=self._busy_timeout)
        # Idle connections outlive statements; should the owner never disconnect, their worker
        # threads must not keep the interpreter from exiting. Killing a daemon thread mid-write
        # is safe: SQLite rolls an unfinished transaction back on the next open.
        worker = getattr(connection, "_thread", None)
        if isinstance(worker, threading.Thread):
            worker.daemon = True
        try:
            await connection
        except Exception:
            # aiosqlite stops its worker thread on a failed open; let it finish while the event
            # loop it reports to is still running.
            if isinstance(worker, threading.Thread):
                await asyncio.to_thread(worker.join, 5.0)
            raise
        try:
            async with connection.execute("PRAGMA foreign_keys = ON"):
                pass
        except BaseException:
            await connection.close()
            raise
        return connection

    async def take_write_turn(self) -> None:
        """Wait for a write turn in the current task's lane (``WriteTurns``).

        SQLite's busy handler is not a queue: a waiting writer sleeps and polls, and a
        connection that commits and begins again at once (the dispatcher's cycles) can keep the
        lock for seconds while others wait. Transactions of one process therefore queue here
        before ``BEGIN IMMEDIATE``, round-robin across lanes so that no lane starves another;
        other processes still meet the busy handler. Waiting longer than the busy timeout fails
        as SQLite would ("database is locked").
        """
        # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that
        # arrives just as the lock is granted, and the cancelled task would run on.
        try:
            async with asyncio.timeout(self._busy_timeout):
                await self._write_turns.acquire(_write_lane.get())
        except TimeoutError:
            raise sqlite3.OperationalError("database is locked") from None

    def end_write_turn(self) -> None:
        """Let the next transaction waiting in ``take_write_turn`` begin."""
        self._write_turns.release()

    async def release(self, connection: aiosqlite.Connection, *, discard: bool = False) -> None:
        """Keep ``connection`` for reuse, or close it when the pool is full, closed or dirty.

        ``discard`` means an operation on it was interrupted and may still be running in its
        thread: it is closed in the background (after that operation ends) and never reused.
        """
        if discard:
            closing = asyncio.create_task(connection.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        elif self._closed or connection.in_transaction or len(self._idle) >= self._max_idle:
            await connection.close()
        else:
            self._idle.append(connection)

    async def close(self) -> None:
        """Close every idle connection and wait for discarded ones to finish closing.

        Connections in use are closed when released.
        """
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


class QueueSQLiteConnection(SQLiteConnection):
    """A ``databases`` SQLite connection whose transactions begin immediately.

    ``mark_state_unknown`` (called by ``_databases.ReleasingTransaction`` when BEGIN, COMMIT or
    ROLLBACK was interrupted) makes ``release`` discard the aiosqlite connection.
    """

    def __init__(self, pool: IdleConnectionPool, dialect: Dialect) -> None:
        super().__init__(pool, dialect)
        self._idle_pool = pool
        self._state_unknown = False

    def mark_state_unknown(self) -> None:
        """The transaction state of the underlying connection can no longer be trusted."""
        self._state_unknown = True

    async def acquire(self) -> None:
        await super().acquire()
        self._state_unknown = False

    async def release(self) -> None:
        assert self._connection is not None, "Connection is not acquired"
        connection, self._connection = self._connection, None
        await self._idle_pool.release(connection, discard=self._state_unknown)

    def transaction(self) -> ImmediateTransaction:
        return ImmediateTransaction(self)

    async def fetch_all(self, query: ClauseElement) -> list[Any]:  # databases' Record types differ
        async with self._statement(query):
            return await super().fetch_all(query)

    async def fetch_one(self, query: ClauseElement) -> Any:
        async with self._statement(query):
            return await super().fetch_one(query)

    async def execute(self, query: ClauseElement) -> Any:
        async with self._statement(query):
            return await super().execute(query)

    async def execute_many(self, queries: list[ClauseElement]) -> None:
        for query in queries:
            await self.execute(query)

    async def iterate(self, query: ClauseElement) -> AsyncGenerator[Any, None]:
        async with self._statement(query):
            async for record in super().iterate(query):
                yield record

    @asynccontextmanager
    async def _statement(self, query: ClauseElement) -> AsyncIterator[None]:
        """Around one statement: a write outside a transaction waits for the pool's write turn
        (as a transaction does); a cancelled statement marks the connection for discarding."""
        connection = self._connection
        assert connection is not None, "Connection is not acquired"
        autocommit_write = not connection.in_transaction and _is_write(query)
        if autocommit_write:
            await self._idle_pool.take_write_turn()
        try:
            with self._discard_if_cancelled():
                yield
        finally:
            if autocommit_write:
                self._idle_pool.end_write_turn()

    @contextmanager
    def _discard_if_cancelled(self) -> Iterator[None]:
        try:
            yield
        except asyncio.CancelledError:
            self._state_unknown = True
            raise


class ImmediateTransaction(SQLiteTransaction):
    """``BEGIN IMMEDIATE`` for a root transaction, after the pool's write turn; a savepoint
    when nested."""

    def __init__(self, connection: QueueSQLiteConnection) -> None:
        super().__init__(connection)
        self._pool = connection._idle_pool
        self._has_turn = False

    async def start(self, is_root: bool, extra_options: dict[Any, Any]) -> None:
        if not is_root:
            await super().start(is_root, extra_options)
            return
        connection = self._connection._connection
        assert connection is not None, "Connection is not acquired"
        self._is_root = True
        await self._pool.take_write_turn()
        self._has_turn = True
        try:
            async with connection.execute("BEGIN IMMEDIATE") as cursor:
                await cursor.close()
        except BaseException:
            self._end_turn()
            raise

    async def commit(self) -> None:
        try:
            await super().commit()
        finally:
            self._end_turn()

    async def rollback(self) -> None:
        try:
            await super().rollback()
        finally:
            self._end_turn()

    def _end_turn(self) -> None:
        if self._has_turn:
            self._has_turn = False
            self._pool.end_write_turn()


_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


def _is_write(query: ClauseElement) -> bool:
    """Whether ``query`` writes: an INSERT/UPDATE/DELETE or DDL construct, or SQL text that
    starts with such a verb (``WITH ... INSERT`` text counts as a read: none is written so)."""
    if isinstance(query, UpdateBase | ExecutableDDLElement):
        return True
    if isinstance(query, TextClause):
        return query.text.lstrip()[:7].upper().startswith(_WRITE_VERBS)
    return False
