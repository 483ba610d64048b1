"""``dispatch_processes``: the registry of running dispatchers and their heartbeats.

One row per dispatcher, keyed by its lease owner id (``host:pid:random``, as written in
``messages.lease_owner``), with the machine it runs on (``host``: host name plus the pid
namespace, so containers sharing a host name are told apart), its pid, when it started and its
last heartbeat (``last_seen``, unix seconds). A dispatcher is *dead* when its heartbeat is older
than the heartbeat timeout, or, seen from the same machine, when its pid no longer exists; its
leases are then *taken over*: the messages go back to ``pending``/``deferred`` at once (as an
expired lease would, only sooner) and its row is deleted, in one transaction
(docs/dispatch.md, "At-least-once and duplicates").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from ..engine import Database
from ..schema import LEASED_CONDITION, dispatch_processes, messages

_RELEASED_STATUS = sa.case((messages.c.attempts > 0, "deferred"), else_="pending")


class ProcessRepo:
    """Register, heartbeat and take over dispatcher processes."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def register(self, owner: str, host: str, pid: int, now: int) -> None:
        """Add (or refresh) the row of ``owner``."""
        insert = self._db.insert(dispatch_processes).values(
            owner=owner, host=host, pid=pid, started_at=now, last_seen=now
        )
        await self._db.execute(
            insert.on_conflict_do_update(
                index_elements=["owner"], set_={"last_seen": insert.excluded.last_seen}
            )
        )

    async def heartbeat(self, owner: str, now: int) -> bool:
        """Record that ``owner`` is alive; ``False`` when its row is gone (it was taken over)."""
        row = await self._db.fetch_one(
            sa.update(dispatch_processes)
            .where(dispatch_processes.c.owner == owner)
            .values(last_seen=now)
            .returning(dispatch_processes.c.owner)
        )
        return row is not None

    async def unregister(self, owner: str) -> None:
        """Remove the row of ``owner`` (graceful shutdown, after its leases were released)."""
        await self._db.execute(
            sa.delete(dispatch_processes).where(dispatch_processes.c.owner == owner)
        )

    async def stale(self, seen_before: int, *, exclude: str) -> list[str]:
        """Owners whose last heartbeat is older than ``seen_before`` (``exclude`` aside)."""
        rows = await self._db.fetch_all(
            sa.select(dispatch_processes.c.owner).where(
                dispatch_processes.c.last_seen < seen_before,
                dispatch_processes.c.owner != exclude,
            )
        )
        return [row["owner"] for row in rows]

    async def on_host(self, host: str, *, exclude: str) -> list[tuple[str, int]]:
        """``(owner, pid)`` of the other registered dispatchers on machine ``host``."""
        rows = await self._db.fetch_all(
            sa.select(dispatch_processes.c.owner, dispatch_processes.c.pid).where(
                dispatch_processes.c.host == host, dispatch_processes.c.owner != exclude
            )
        )
        return [(row["owner"], int(row["pid"])) for row in rows]

    async def take_over(self, owners: Sequence[str], now: int) -> int:
        """Release every lease of ``owners`` and delete their rows; return the messages freed."""
        if not owners:
            return 0
        keys = list(owners)
        async with self._db.transaction():
            rows = await self._db.fetch_all(
                sa.update(messages)
                .where(LEASED_CONDITION, messages.c.lease_owner.in_(keys))
                .values(status=_RELEASED_STATUS, lease_owner=None, lease_until=None, updated_at=now)
                .returning(messages.c.pk)
            )
            await self._db.execute(
                sa.delete(dispatch_processes).where(dispatch_processes.c.owner.in_(keys))
            )
        return len(rows)

    async def take_over_all(self, owner: str, now: int) -> int:
        """Release every lease not held by ``owner`` and forget every other process.

        For a database only one process uses (SQLite): whoever held a lease there before this
        process started is gone. Returns the messages freed.
        """
        async with self._db.transaction():
            rows = await self._db.fetch_all(
                sa.update(messages)
                .where(
                    LEASED_CONDITION,
                    sa.or_(messages.c.lease_owner.is_(None), messages.c.lease_owner != owner),
                )
                .values(status=_RELEASED_STATUS, lease_owner=None, lease_until=None, updated_at=now)
                .returning(messages.c.pk)
            )
            await self._db.execute(
                sa.delete(dispatch_processes).where(dispatch_processes.c.owner != owner)
            )
        return len(rows)
