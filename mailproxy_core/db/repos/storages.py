"""The ``storages`` table: a tenant's named file-storage mounts, keyed by (tenant_id, name).

``config`` is opaque text here: the caller stores the mount's JSON config encrypted as a whole
(it may hold cloud credentials) and decrypts it after reading.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa

from ..engine import Database, Row
from ..schema import storages
from .tenants import require_tenant


class StoragesRepo:
    """CRUD on ``storages``."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def upsert(self, tenant_id: str, name: str, *, protocol: str, config: str | None) -> Row:
        """Create mount ``name`` of ``tenant_id`` or replace its protocol and config.

        Returns the row (an existing mount keeps ``created_at``). Raises ``NotFound`` for an
        unknown tenant.
        """
        now = int(self._clock())
        insert = self._db.insert(storages).values(
            tenant_id=tenant_id,
            name=name,
            protocol=protocol,
            config=config,
            created_at=now,
            updated_at=now,
        )
        upsert = insert.on_conflict_do_update(
            index_elements=[storages.c.tenant_id, storages.c.name],
            set_={"protocol": protocol, "config": config, "updated_at": now},
        ).returning(*storages.c)
        async with self._db.transaction():
            await require_tenant(self._db, tenant_id)
            row = await self._db.fetch_one(upsert)
        assert row is not None, "INSERT ... ON CONFLICT DO UPDATE returned no row"
        return dict(row)

    async def get(self, tenant_id: str, name: str) -> Row | None:
        """The mount row, or ``None`` when the tenant has no mount of that name."""
        query = sa.select(storages).where(
            storages.c.tenant_id == tenant_id, storages.c.name == name
        )
        row = await self._db.fetch_one(query)
        return None if row is None else dict(row)

    async def list(self, tenant_id: str) -> list[Row]:
        """Every mount of the tenant, ordered by name."""
        query = (
            sa.select(storages).where(storages.c.tenant_id == tenant_id).order_by(storages.c.name)
        )
        return [dict(row) for row in await self._db.fetch_all(query)]

    async def delete(self, tenant_id: str, name: str) -> bool:
        """Delete the mount; ``False`` if the tenant has no mount of that name."""
        delete = (
            storages.delete()
            .where(storages.c.tenant_id == tenant_id, storages.c.name == name)
            .returning(storages.c.id)
        )
        return await self._db.fetch_one(delete) is not None
