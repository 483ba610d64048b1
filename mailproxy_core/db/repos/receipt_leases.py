"""``receipt_leases``: which process polls each receipt handler, and how its last poll went.

One row per handler name. A process *holds* a handler while ``owner`` is its id and
``lease_until`` has not passed; it renews the lease well before it ends. A process that dies
stops renewing, and once ``lease_until`` has passed any other process takes the handler over.
``last_poll_ts`` (last successful poll) and ``last_error`` (last failure, cleared by a success)
are written by the holder and read by every process.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..engine import Database, Row
from ..schema import receipt_leases


class ReceiptLeasesRepo:
    """Take, renew and release handler leases; record poll outcomes."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def take(self, name: str, owner: str, now: int, until: int) -> bool:
        """Take or renew the lease of ``name`` for ``owner`` until ``until``.

        Succeeds when nobody holds it, ``owner`` already does, or the holder's lease ended
        before ``now``. Returns whether ``owner`` holds it now.
        """
        insert = self._db.insert(receipt_leases).values(
            name=name, owner=owner, lease_until=until, updated_at=now
        )
        current = receipt_leases.c
        statement = insert.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "owner": insert.excluded.owner,
                "lease_until": insert.excluded.lease_until,
                "updated_at": insert.excluded.updated_at,
            },
            where=sa.or_(
                current.owner == owner,
                current.owner.is_(None),
                current.lease_until.is_(None),
                current.lease_until < now,
            ),
        ).returning(current.owner)
        async with self._db.transaction():
            row = await self._db.fetch_one(statement)
        return row is not None and row["owner"] == owner

    async def release(self, name: str, owner: str) -> None:
        """Give up the lease of ``name`` if ``owner`` holds it (shutdown)."""
        await self._db.execute(
            receipt_leases.update()
            .where(receipt_leases.c.name == name, receipt_leases.c.owner == owner)
            .values(owner=None, lease_until=None)
        )

    async def record_poll(
        self, name: str, owner: str, now: int, *, error: str | None = None
    ) -> None:
        """Record a poll by ``owner``: success (``last_poll_ts = now``, error cleared) or the
        failure text ``error`` (``last_poll_ts`` unchanged)."""
        values: dict[str, Any] = {"updated_at": now, "last_error": error}
        if error is None:
            values["last_poll_ts"] = now
        await self._db.execute(
            receipt_leases.update()
            .where(receipt_leases.c.name == name, receipt_leases.c.owner == owner)
            .values(**values)
        )

    async def get_all(self) -> dict[str, Row]:
        """Every handler's row by name: ``owner, lease_until, last_poll_ts, last_error``."""
        rows = await self._db.fetch_all(sa.select(receipt_leases))
        return {row["name"]: row for row in rows}
