"""The database handle: one per app, shared by every repository.

``Database`` wraps ``databases.Database`` so that the rest of the kernel never imports
``databases`` and the SQLite/PostgreSQL differences stay in this package:

- SQLite (the embedded default): WAL journal mode, ``foreign_keys = ON`` on every connection, a
  busy timeout, transactions that begin ``IMMEDIATE`` (see ``_sqlite.py``);
- PostgreSQL (asyncpg): a connection pool, optionally confined to one schema: with
  ``?schema=<name>`` every pooled connection starts with ``search_path=<name>`` (sent in the
  startup packet, so the pool's ``RESET ALL`` on release keeps it) and the schema is created on
  connect if it does not exist.

Statements are SQLAlchemy Core expressions (or plain SQL text, one statement per call), run on
the calling task's connection. ``databases`` binds one connection to each asyncio task: inside
``async with db.transaction():`` every statement of that task runs in the transaction, and a
nested ``transaction()`` becomes a savepoint. Work started in *another* task does not join the
transaction, so never fan out database work to child tasks while holding one (on SQLite the child
would wait for the parent's write lock until the busy timeout).

Processes sharing a PostgreSQL database signal each other with ``notify``/``listen`` (``LISTEN`` /
``NOTIFY`` on a dedicated connection, see ``notifications.py``); on SQLite both do nothing, since
only one process uses the file.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import asyncpg
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql import ClauseElement

from ..errors import ConfigurationError
from ._databases import PatchedDatabases
from ._sqlite import DEFAULT_BUSY_TIMEOUT, current_write_lane, set_write_lane
from .notifications import Listener, PgListener, encode_payload, scoped_channel
from .outage import quiet_driver_outage_tracebacks
from .url import DatabaseTarget, Dialect, parse_database_setting

log = logging.getLogger(__name__)

__all__ = ["Database", "Row", "Statement", "current_write_lane", "set_write_lane"]

Statement: TypeAlias = ClauseElement | str
"""A SQLAlchemy Core expression, or SQL text with ``:name`` parameters."""

Row: TypeAlias = dict[str, Any]
"""One result row, keyed by column label, values as the driver returns them."""

Upsert: TypeAlias = pg_dialect.Insert | sqlite_dialect.Insert

NOTIFY_TIMEOUT = 5.0
"""Seconds a ``NOTIFY`` may take; a hint that cannot be sent by then is dropped (logged)."""

# What the drivers raise when the database cannot be reached or opened. Anything else is a bug
# or a cancellation and propagates unchanged.
_CONNECT_ERRORS = (
    OSError,
    TimeoutError,
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


class Database:
    """A connected-or-not handle on the configured database (SQLite file or PostgreSQL).

    Build it with ``Database.from_setting(settings.db)``; ``connect()`` at startup and
    ``disconnect()`` at shutdown. Attributes: ``dialect`` (``"sqlite"`` | ``"postgresql"``),
    ``url`` (the driver URL, password included: never log it), ``display_url`` (password
    masked), ``schema`` (PostgreSQL schema or ``None``).

    The statement methods are for repositories (``db/repos``) only.
    """

    def __init__(
        self,
        setting: str,
        *,
        pool_min_size: int = 1,
        pool_max_size: int = 10,
        connect_timeout: float = 10.0,
        command_timeout: float | None = 300.0,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        """Parse ``setting`` (see ``db/url.py``); nothing is opened until ``connect()``.

        ``pool_*`` apply to PostgreSQL unless the URL's ``min_size``/``max_size`` say otherwise;
        ``connect_timeout`` and ``command_timeout`` (seconds, per statement) too;
        ``busy_timeout`` is how long a SQLite connection waits for the write lock.
        Raises ``ConfigurationError`` for a malformed setting.
        """
        self.target: DatabaseTarget = parse_database_setting(setting)
        self.dialect: Dialect = self.target.dialect
        self.url: str = self.target.url
        self.display_url: str = self.target.display_url
        self.schema: str | None = self.target.schema
        options: dict[str, Any]
        if self.dialect == "sqlite":
            options = {"busy_timeout": busy_timeout}
        else:
            options = self._postgres_options(
                pool_min_size, pool_max_size, connect_timeout, command_timeout
            )
        self._db = PatchedDatabases(self.url, **options)
        self._lifecycle = asyncio.Lock()
        self._busy_timeout = busy_timeout
        self._options = options
        self.origin = uuid.uuid4().hex[:16]
        """Identifies this handle's notifications, so that it does not hear its own."""
        self._listener: PgListener | None = None
        self._notifying: set[asyncio.Task[None]] = set()

    @classmethod
    def from_setting(cls, value: str, **options: Any) -> Database:
        """A ``Database`` for the ``MAILPROXY_DB`` value (plain SQLite path or URL).

        ``options`` are the keyword arguments of the constructor. Raises ``ConfigurationError``
        when the value is not an accepted form.
        """
        return cls(value, **options)

    def __repr__(self) -> str:
        return f"Database({self.display_url!r})"

    @property
    def is_connected(self) -> bool:
        """Whether ``connect()`` succeeded and ``disconnect()`` has not been called since."""
        return bool(self._db.is_connected)

    async def connect(self) -> None:
        """Open the database (pool), apply connection settings, create the schema if needed.

        Raises ``ConfigurationError`` naming the masked URL when the database cannot be reached
        or opened. Calling it again while connected does nothing.
        """
        async with self._lifecycle:
            if self._db.is_connected:
                return
            if self.dialect != "sqlite":
                quiet_driver_outage_tracebacks()  # asyncpg's pool logs with its own back-off
            try:
                await self._db.connect()
                if self.dialect == "sqlite":
                    await self._prepare_sqlite()
                else:
                    await self._prepare_postgres()
            except _CONNECT_ERRORS as exc:
                await self._abandon()
                raise ConfigurationError(self._connect_failure(exc)) from exc
            except BaseException:
                await self._abandon()
                raise
        log.info("connected to database %s", self.display_url)

    async def disconnect(self) -> None:
        """Close every connection (the listening one too). Safe to call when not connected."""
        async with self._lifecycle:
            listener, self._listener = self._listener, None
            if listener is not None:
                await listener.close()
            if self._notifying:
                await asyncio.wait(set(self._notifying), timeout=NOTIFY_TIMEOUT)
            if self._db.is_connected:
                await self._db.disconnect()

    async def __aenter__(self) -> Database:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Run the body in a transaction: commit on success, roll back on any exception.

        Nested use in the same task creates a savepoint. On SQLite the outermost transaction
        begins ``IMMEDIATE`` (takes the write lock at once, waiting up to the busy timeout).
        """
        async with self._db.transaction():
            yield

    async def execute(self, statement: Statement, values: Mapping[str, Any] | None = None) -> None:
        """Run one statement for its effect.

        Returns nothing: what the drivers return here differs (asyncpg: the first column of the
        first row; SQLite: last row id or row count). Use ``RETURNING`` with ``fetch_*`` instead.
        """
        await self._db.execute(statement, _values(values))

    async def execute_count(
        self, statement: Statement, values: Mapping[str, Any] | None = None
    ) -> int:
        """Run one statement for its effect; return how many rows it inserted, changed or
        deleted (0 for other statements)."""
        if self.dialect == "sqlite":
            # changes() counts the last statement of this connection: keep both on one.
            async with self.transaction():
                await self._db.execute(statement, _values(values))
                return int(await self._db.fetch_val("SELECT changes()") or 0)
        # asyncpg reports the count only in the command status ("UPDATE 3"), which
        # ``databases`` drops; run the compiled statement on the task's raw connection.
        async with self._db.connection() as connection:
            query = connection._build_query(statement, _values(values))
            backend: Any = connection._connection
            sql, args, _columns = backend._compile(query)
            async with connection._query_lock:
                status = await backend.raw_connection.execute(sql, *args)
        last = str(status).rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def execute_many(self, statement: Statement, values: Sequence[Mapping[str, Any]]) -> None:
        """Run one statement once per set of values (slow: one round trip each).

        For bulk inserts prefer one multi-row ``insert(table).values([...])`` statement.
        """
        if values:
            await self._db.execute_many(statement, [dict(v) for v in values])

    async def fetch_all(
        self, statement: Statement, values: Mapping[str, Any] | None = None
    ) -> list[Row]:
        """Every row the statement returns, as dicts keyed by column label."""
        records = await self._db.fetch_all(statement, _values(values))
        return [dict(record._mapping) for record in records]

    async def fetch_one(
        self, statement: Statement, values: Mapping[str, Any] | None = None
    ) -> Row | None:
        """The first row the statement returns, or ``None``."""
        record = await self._db.fetch_one(statement, _values(values))
        return None if record is None else dict(record._mapping)

    async def fetch_val(
        self, statement: Statement, values: Mapping[str, Any] | None = None, column: int | str = 0
    ) -> Any:
        """One value of the first row (``column`` by position or label), or ``None``."""
        return await self._db.fetch_val(statement, _values(values), column=column)

    # -- notifications between processes (PostgreSQL LISTEN/NOTIFY) -----------------------------

    async def notify(self, channel: str, payload: str = "") -> None:
        """Send ``payload`` to the ``channel`` listeners of other processes (PostgreSQL only).

        The channel is scoped to this database's schema; this process's own listeners are not
        called. Does nothing on SQLite or when not connected.
        """
        if self.dialect != "postgresql" or not self._db.is_connected:
            return
        await self._db.execute(
            "SELECT pg_notify(:channel, :payload)",
            {
                "channel": scoped_channel(channel, self.schema),
                "payload": encode_payload(self.origin, payload),
            },
        )

    def notify_soon(self, channel: str, payload: str = "") -> None:
        """``notify`` in the background, for callers that cannot wait (failures are logged).

        The task is owned here: ``disconnect`` waits for it (at most ``NOTIFY_TIMEOUT``).
        """
        if self.dialect != "postgresql" or not self._db.is_connected:
            return
        task = asyncio.create_task(self._notify_logged(channel, payload))
        self._notifying.add(task)
        task.add_done_callback(self._notifying.discard)

    async def _notify_logged(self, channel: str, payload: str) -> None:
        try:
            await asyncio.wait_for(self.notify(channel, payload), NOTIFY_TIMEOUT)
        except (*_CONNECT_ERRORS, ConnectionError) as exc:
            log.warning(
                "NOTIFY %s failed: %s; other processes notice on their next poll", channel, exc
            )

    async def listen(self, channel: str, callback: Listener) -> None:
        """Call ``callback(payload)`` for each notification other processes send on ``channel``.

        PostgreSQL: on a dedicated connection opened now, kept open (and re-opened when it
        drops, with ``callback(None)`` after each re-open, since notifications may have been
        missed) until ``unlisten`` or ``disconnect``. The callback runs on the event loop and
        must not block. SQLite: does nothing (no other process can notify).
        """
        if self.dialect != "postgresql":
            return
        if self._listener is None:
            dsn = self.url.replace("postgresql+asyncpg://", "postgresql://", 1)
            options = {k: v for k, v in self._options.items() if k not in ("min_size", "max_size")}
            self._listener = PgListener(dsn, options, self.origin)
        await self._listener.add(scoped_channel(channel, self.schema), callback)

    async def unlisten(self, channel: str, callback: Listener) -> None:
        """Stop calling ``callback`` for ``channel``."""
        if self._listener is not None:
            await self._listener.remove(scoped_channel(channel, self.schema), callback)

    @property
    def listener(self) -> PgListener | None:
        """The listening connection's owner (PostgreSQL, once ``listen`` was called)."""
        return self._listener

    def insert(self, table: Table) -> Upsert:
        """A dialect-specific ``INSERT`` supporting ``on_conflict_do_nothing/do_update``.

        Both dialects spell the conflict clause the same way, so repositories can upsert
        without knowing which database they run on.
        """
        if self.dialect == "sqlite":
            return sqlite_dialect.insert(table)
        return pg_dialect.insert(table)

    def _postgres_options(
        self,
        pool_min_size: int,
        pool_max_size: int,
        connect_timeout: float,
        command_timeout: float | None,
    ) -> dict[str, Any]:
        target = self.target
        max_size = target.pool_max_size if target.pool_max_size is not None else pool_max_size
        min_size = target.pool_min_size if target.pool_min_size is not None else pool_min_size
        options: dict[str, Any] = {
            "min_size": min(min_size, max_size),
            "max_size": max_size,
            "timeout": connect_timeout,
            "command_timeout": command_timeout,
        }
        if target.schema is not None:
            options["server_settings"] = {"search_path": _quote_identifier(target.schema)}
        if target.ssl is not None:
            options["ssl"] = {"true": True, "false": False}.get(target.ssl, target.ssl)
        return options

    async def _prepare_sqlite(self) -> None:
        mode = await self._db.fetch_val("PRAGMA journal_mode")
        if str(mode).lower() != "wal":
            mode = await self._switch_to_wal()
        if str(mode).lower() != "wal":
            log.warning(
                "SQLite database %s runs in journal mode %r, not WAL: readers will block writers",
                self.display_url,
                mode,
            )

    async def _switch_to_wal(self) -> Any:
        # Changing the journal mode needs the database to itself and does not wait on the busy
        # handler, so processes opening a fresh file at the same moment retry for a while.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._busy_timeout
        while True:
            try:
                return await self._db.fetch_val("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or loop.time() >= deadline:
                    raise
            await asyncio.sleep(0.05)

    async def _prepare_postgres(self) -> None:
        schema = self.schema
        if schema is None:
            await self._db.fetch_val("SELECT 1")
            return
        query = "SELECT 1 FROM pg_namespace WHERE nspname = :name"
        if await self._db.fetch_val(query, {"name": schema}):
            return
        # Checked first because CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when
        # the schema exists; the advisory lock keeps two starting processes from racing.
        async with self._db.transaction():
            lock = "SELECT pg_advisory_xact_lock(hashtext(:key))"
            await self._db.fetch_val(lock, {"key": f"mailproxy:schema:{schema}"})
            await self._db.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote_identifier(schema)}")
        log.info("created PostgreSQL schema %s", schema)

    async def _abandon(self) -> None:
        if self._db.is_connected:
            try:
                await self._db.disconnect()
            except _CONNECT_ERRORS:
                log.debug("ignoring error while closing a failed connection", exc_info=True)

    def _connect_failure(self, exc: BaseException) -> str:
        reason = str(exc) or type(exc).__name__
        if self.dialect == "sqlite":
            return (
                f"cannot open the SQLite database {self.target.path} ({self.display_url}): "
                f"{reason}; check that the directory exists and is writable (MAILPROXY_DB)"
            )
        return (
            f"cannot connect to the PostgreSQL database {self.display_url}: "
            f"{type(exc).__name__}: {reason}; check MAILPROXY_DB and that the server is running"
        )


def _values(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if values is None else dict(values)


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
