"""The ``tenant_sync_state`` table: where the reporting loop stands with each tenant.

One row per tenant that was ever polled (core migration v2): the last successful delivery-report
exchange, the client's do-not-disturb deadline (``next_sync_after``), and the back-off state after
failed exchanges (``failures``, ``next_attempt_ts``, ``last_error``). A tenant without a row has
never been polled. Rows go away with their tenant (``ON DELETE CASCADE``).

The reporting loop (``dispatch/reporting.py``) keeps this table current and reads it at start, so
back-off and do-not-disturb survive a restart; ``instance/get_sync_status`` shows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from ..engine import Database, Row
from ..schema import tenant_sync_state
from .events import EventsRepo

MAX_ERROR_LENGTH = 1000
"""``last_error`` is cut to this many characters: it is a hint for operators, not a log."""

_STATE_FIELDS = (
    "tenant_id",
    "last_sync_ts",
    "next_sync_after",
    "failures",
    "next_attempt_ts",
    "last_error",
    "updated_at",
)


class SyncStateRepo:
    """Reads and writes the per-tenant reporting state.

    Writes are upserts: the first success or failure of a tenant creates its row. Writing the
    state of a tenant that does not exist fails with the database's foreign-key error.
    """

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def get(self, tenant_id: str) -> dict[str, Any] | None:
        """The state of one tenant (keys as in the table), or ``None`` if it was never polled."""
        query = sa.select(tenant_sync_state).where(tenant_sync_state.c.tenant_id == tenant_id)
        row = await self._db.fetch_one(query)
        return None if row is None else _decode(row)

    async def get_all(self) -> dict[str, dict[str, Any]]:
        """The state of every tenant that has one, keyed by tenant id."""
        rows = await self._db.fetch_all(
            sa.select(tenant_sync_state).order_by(tenant_sync_state.c.tenant_id)
        )
        return {row["tenant_id"]: _decode(row) for row in rows}

    async def record_success(
        self,
        tenant_id: str,
        ts: int,
        next_sync_after: int | None = None,
        *,
        reported: Sequence[int] = (),
    ) -> dict[str, Any]:
        """Record a successful exchange at ``ts``; return the new state.

        Resets the failure count and back-off; ``updated_at`` becomes ``ts``.
        ``next_sync_after`` is the client's do-not-disturb deadline from its answer; ``None``
        (the client sent none) clears it. ``reported`` are the row ids of the events the
        exchange delivered: they are marked reported at ``ts`` in the same transaction, so the
        acknowledgement and the state never disagree.
        """
        values = {
            "last_sync_ts": ts,
            "next_sync_after": next_sync_after,
            "failures": 0,
            "next_attempt_ts": None,
            "last_error": None,
        }
        if not reported:
            return await self._upsert(tenant_id, ts, values, values)
        async with self._db.transaction():
            await EventsRepo(self._db).mark_reported(reported, ts)
            return await self._upsert(tenant_id, ts, values, values)

    async def record_failure(
        self,
        tenant_id: str,
        ts: int,
        next_attempt_ts: int,
        error: str,
        *,
        failures: int | None = None,
    ) -> dict[str, Any]:
        """Record a failed exchange at ``ts``; return the new state.

        Increments ``failures`` (so the caller can compute the next back-off step from the
        returned state), or sets it to ``failures`` when given (a caller that counts itself);
        stores when to try again and the error text (cut to ``MAX_ERROR_LENGTH`` characters; it
        must not contain secrets). ``last_sync_ts`` and the do-not-disturb deadline are kept;
        ``updated_at`` becomes ``ts``.
        """
        error = error[:MAX_ERROR_LENGTH]
        insert = {
            "failures": 1 if failures is None else failures,
            "next_attempt_ts": next_attempt_ts,
            "last_error": error,
        }
        update = {
            **insert,
            "failures": tenant_sync_state.c.failures + 1 if failures is None else failures,
        }
        return await self._upsert(tenant_id, ts, insert, update)

    async def clear_dnd(self, tenant_id: str) -> bool:
        """Forget the tenant's do-not-disturb deadline; ``False`` if it has no state row."""
        update = (
            tenant_sync_state.update()
            .where(tenant_sync_state.c.tenant_id == tenant_id)
            .values(next_sync_after=None, updated_at=int(self._clock()))
            .returning(tenant_sync_state.c.tenant_id)
        )
        return await self._db.fetch_one(update) is not None

    async def _upsert(
        self, tenant_id: str, now: int, insert: dict[str, Any], update: dict[str, Any]
    ) -> dict[str, Any]:
        statement = (
            self._db.insert(tenant_sync_state)
            .values(tenant_id=tenant_id, updated_at=now, **insert)
            .on_conflict_do_update(
                index_elements=[tenant_sync_state.c.tenant_id],
                set_={**update, "updated_at": now},
            )
            .returning(*tenant_sync_state.c)
        )
        row = await self._db.fetch_one(statement)
        assert row is not None, "an upsert with RETURNING returned no row"
        return _decode(row)


def _decode(row: Row) -> dict[str, Any]:
    return {name: row[name] for name in _STATE_FIELDS}
