"""``PluginData``: the small data facade plugins use for their own tables (``mp.data``).

A plugin declares its tables with its own ``sqlalchemy.MetaData()``, creates them in a
``MigrationSpec`` (``ctx.create_tables(...)``), and reads and writes them through this facade,
never through ``databases`` or the kernel's repositories. Statements are SQLAlchemy Core
expressions or SQL text with ``:name`` parameters; they run on the calling task's connection,
so inside ``async with mp.data.transaction():`` every statement of that task is part of the
transaction. The facade is the same on SQLite and PostgreSQL; ``dialect`` tells a plugin which
one it talks to when it writes SQL text that differs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import TextClause

from .engine import Database, Statement

__all__ = ["PluginData"]


class PluginData:
    """Run a plugin's statements on the service's database (``MailProxy.data``).

    ``dialect`` is ``"sqlite"`` or ``"postgresql"``. Every method raises the driver's error
    when the database refuses the statement (a constraint violated, a table missing).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self.dialect: str = db.dialect

    async def fetch_all(
        self, query: Statement, values: Mapping[str, Any] | None = None
    ) -> list[Mapping[str, Any]]:
        """Every row of ``query``, as mappings keyed by column label."""
        statement, params = _prepare(query, values)
        return list(await self._db.fetch_all(statement, params))

    async def fetch_one(
        self, query: Statement, values: Mapping[str, Any] | None = None
    ) -> Mapping[str, Any] | None:
        """The first row of ``query``, or ``None``."""
        statement, params = _prepare(query, values)
        return await self._db.fetch_one(statement, params)

    async def fetch_val(self, query: Statement, values: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row of ``query``, or ``None``."""
        statement, params = _prepare(query, values)
        return await self._db.fetch_val(statement, params)

    async def execute(self, query: Statement, values: Mapping[str, Any] | None = None) -> int:
        """Run ``query`` for its effect; return how many rows it inserted, changed or deleted."""
        statement, params = _prepare(query, values)
        return await self._db.execute_count(statement, params)

    async def upsert(
        self,
        table: sa.Table,
        values: Mapping[str, Any],
        *,
        key: Sequence[str],
        update: Sequence[str] | None = None,
    ) -> None:
        """Insert ``values`` into ``table``, or update the row whose ``key`` columns match.

        ``key`` must be the primary key or a unique constraint of ``table``. ``update`` names the
        columns to overwrite on conflict (default: every column in ``values`` outside ``key``;
        empty: keep the existing row as it is). Raises ``ValueError`` for a column that
        ``table`` does not have or a key column missing from ``values``.
        """
        unknown = sorted(set(values) - set(table.c.keys()))
        if unknown:
            raise ValueError(f"table {table.name} has no column(s) {unknown}")
        missing = [column for column in key if column not in values]
        if not key or missing:
            raise ValueError(
                f"upsert into {table.name}: key column(s) {missing or key} need values"
            )
        columns = [c for c in values if c not in key] if update is None else list(update)
        outside = sorted(set(columns) - set(values))
        if outside:
            raise ValueError(f"upsert into {table.name}: no value for update column(s) {outside}")
        insert = self._db.insert(table).values(**values)
        if columns:
            statement = insert.on_conflict_do_update(
                index_elements=list(key), set_={c: insert.excluded[c] for c in columns}
            )
        else:
            statement = insert.on_conflict_do_nothing(index_elements=list(key))
        await self._db.execute(statement)

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """``async with mp.data.transaction():`` commits the body's statements together, or
        rolls all of them back on any exception. A nested call joins the open transaction as a
        savepoint (its own exception rolls back only its part)."""
        return self._db.transaction()


def _prepare(
    query: Statement, values: Mapping[str, Any] | None
) -> tuple[Statement, Mapping[str, Any] | None]:
    # ``databases`` binds values to SQL strings itself but calls ``.values()`` on any expression:
    # right for INSERT/UPDATE (the values to write), wrong elsewhere. Bind those here.
    if not values or isinstance(query, str | sa.Insert | sa.Update):
        return query, values
    if isinstance(query, TextClause):
        return query.bindparams(**values), None
    return query.params(**values), None
