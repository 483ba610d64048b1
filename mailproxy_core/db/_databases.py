"""``databases.Database`` with the four fixes this service needs.

1. SQLite uses ``QueueSQLiteBackend`` (``_sqlite.py``) instead of the stock backend.
2. Transactions always give their connection back. In ``databases`` 0.9, when ``BEGIN``,
   ``COMMIT`` or ``ROLLBACK`` raises or is cancelled, the task's connection is never released:
   on PostgreSQL the pool slowly runs dry; on SQLite an interrupted ``BEGIN IMMEDIATE`` later
   succeeds on a connection nobody owns, which then holds the write lock forever (and its thread
   keeps the process from exiting). ``ReleasingTransaction`` releases the connection in every
   case; the backend connection is told the transaction state is unknown so SQLite discards it.
3. Query arguments are not turned into text unless they are logged. The SQLite and PostgreSQL
   backends build ``repr(tuple(args))`` for a DEBUG log line on every statement, logged or not:
   for a statement carrying a large JSON parameter (an ``add_batch`` chunk, the command log's
   copy of a 27 MB body) that alone held the event loop for tens of milliseconds per statement.
   The backends' ``repr`` is replaced by one that defers the work until the line is formatted.
4. A PostgreSQL connection is forgotten even when giving it back fails. asyncpg's pool resets a
   connection on release; when the server went away, the reset fails, asyncpg terminates the
   connection and re-raises. The stock backend then keeps the dead connection as "acquired", and
   every later query of the same task fails with ``Connection is already acquired``: a
   long-lived loop (the dispatcher) never worked again after a database outage.
   ``ReleasingPostgresConnection`` drops its reference first.

This module touches private attributes of ``databases.core.Connection``; the dependency is pinned
to ``databases>=0.9,<0.10`` and ``tests/db`` exercises both paths.
"""

from __future__ import annotations

import importlib
from typing import Any

import databases
from databases.backends.postgres import PostgresBackend, PostgresConnection
from databases.core import Connection, Transaction

from ._sqlite import QueueSQLiteBackend


class ReleasingPostgresConnection(PostgresConnection):
    """A PostgreSQL backend connection that is released even when asyncpg's release raises."""

    async def release(self) -> None:
        connection, self._connection = self._connection, None
        assert connection is not None, "Connection is not acquired"
        assert self._database._pool is not None, "DatabaseBackend is not running"
        # on failure asyncpg has terminated the connection and taken it back: nothing to keep
        await self._database._pool.release(connection)


class ReleasingPostgresBackend(PostgresBackend):
    """``databases``' asyncpg backend handing out ``ReleasingPostgresConnection``s."""

    def connection(self) -> ReleasingPostgresConnection:
        return ReleasingPostgresConnection(self, self._dialect)


_SQLITE_BACKEND = f"{QueueSQLiteBackend.__module__}:{QueueSQLiteBackend.__qualname__}"
_POSTGRES_BACKEND = f"{ReleasingPostgresBackend.__module__}:{ReleasingPostgresBackend.__qualname__}"


class PatchedDatabases(databases.Database):
    """``databases.Database`` using our SQLite backend and ``ReleasingTransaction``."""

    SUPPORTED_BACKENDS = {
        **databases.Database.SUPPORTED_BACKENDS,
        "sqlite": _SQLITE_BACKEND,
        "sqlite+aiosqlite": _SQLITE_BACKEND,
        "postgresql": _POSTGRES_BACKEND,
        "postgres": _POSTGRES_BACKEND,
        "postgresql+asyncpg": _POSTGRES_BACKEND,
    }

    def transaction(self, *, force_rollback: bool = False, **kwargs: Any) -> Transaction:
        return ReleasingTransaction(self.connection, force_rollback=force_rollback, **kwargs)


class ReleasingTransaction(Transaction):
    """A ``databases`` transaction that releases its connection even when interrupted."""

    async def start(self) -> ReleasingTransaction:
        connection: Connection = self._connection
        backend_transaction = connection._connection.transaction()
        self._transaction = backend_transaction
        async with connection._transaction_lock:
            is_root = not connection._transaction_stack
            await connection.__aenter__()
            try:
                await backend_transaction.start(is_root=is_root, extra_options=self._extra_options)
            except BaseException:
                self._transaction = None
                _mark_state_unknown(connection)
                await connection.__aexit__()
                raise
            connection._transaction_stack.append(self)
        return self

    async def commit(self) -> None:
        await self._finish(commit=True)

    async def rollback(self) -> None:
        await self._finish(commit=False)

    async def _finish(self, *, commit: bool) -> None:
        connection: Connection = self._connection
        async with connection._transaction_lock:
            assert connection._transaction_stack[-1] is self
            connection._transaction_stack.pop()
            backend_transaction = self._transaction
            assert backend_transaction is not None
            self._transaction = None
            try:
                if commit:
                    await backend_transaction.commit()
                else:
                    await backend_transaction.rollback()
            except BaseException:
                _mark_state_unknown(connection)
                raise
            finally:
                await connection.__aexit__()


def _mark_state_unknown(connection: Connection) -> None:
    """Tell the backend connection (if it cares) that its transaction state is unknown."""
    mark = getattr(connection._connection, "mark_state_unknown", None)
    if mark is not None:
        mark()


class _DeferredRepr:
    """``repr(value)``, computed only when a log line is actually formatted."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)

    __str__ = __repr__


def _defer_argument_repr() -> None:
    for name in ("databases.backends.sqlite", "databases.backends.postgres"):
        try:
            module = importlib.import_module(name)
        except ImportError:  # the backend's driver is not installed
            continue
        # the module's global ``repr`` is looked up before the builtin one
        module.repr = _DeferredRepr  # type: ignore[attr-defined]


_defer_argument_repr()
