"""The ``tenants`` table: basic create, read, update, delete.

Rows come back as dicts with JSON columns decoded. Secrets (``client_auth`` credentials,
``report_signing_secret``) are stored exactly as given: the caller encrypts before writing and
decrypts after reading (``crypto.SecretBox``), and never returns them to a client.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from ...errors import Conflict, NotFound
from ..engine import Database, Row
from ..jsontext import decode_json, encode_json
from ..schema import tenants

TENANT_FIELDS = (
    "name",
    "client_base_url",
    "client_sync_path",
    "client_attachment_path",
    "client_auth",
    "rate_limits",
    "large_file_config",
    "active",
    "suspended_batches",
    "reporter",
    "report_signing_secret",
)
"""The columns a caller may set (besides ``id`` and the timestamps)."""

JSON_FIELDS = frozenset({"client_auth", "rate_limits", "large_file_config", "suspended_batches"})
"""Columns holding JSON documents."""

_NOT_NULL = frozenset({"active", "reporter"})


class TenantsRepo:
    """CRUD on ``tenants``; deleting a tenant cascades to its accounts, messages, events and
    storages (database foreign keys)."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def add(self, tenant_id: str, **fields: Any) -> dict[str, Any]:
        """Create tenant ``tenant_id`` with ``fields`` (see ``TENANT_FIELDS``); return the row.

        Raises ``Conflict`` when the id is taken and ``TypeError`` for an unknown field.
        """
        now = int(self._clock())
        values = {**_encode(fields), "id": tenant_id, "created_at": now, "updated_at": now}
        insert = (
            self._db.insert(tenants)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[tenants.c.id])
            .returning(*tenants.c)
        )
        row = await self._db.fetch_one(insert)
        if row is None:
            raise Conflict(f"tenant '{tenant_id}' already exists")
        return _decode(row)

    async def add_or_update(
        self,
        tenant_id: str,
        *,
        defaults: Mapping[str, Any],
        fields: Mapping[str, Any],
        on_create: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Create tenant ``tenant_id``, or set ``fields`` of the existing one; one transaction.

        A new tenant gets ``defaults`` overridden by ``fields``; an existing one changes only
        ``fields`` (the others keep their values). ``on_create(row)`` is awaited inside the
        transaction right after a creation (never after an update); an exception it raises
        rolls the creation back and propagates. Returns the row and whether it was created.
        Raises ``TypeError`` for an unknown field.
        """
        now = int(self._clock())
        values = {
            **_encode({**defaults, **fields}),
            "id": tenant_id,
            "created_at": now,
            "updated_at": now,
        }
        insert = (
            self._db.insert(tenants)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[tenants.c.id])
            .returning(*tenants.c)
        )
        async with self._db.transaction():
            row = await self._db.fetch_one(insert)
            if row is not None:
                created = _decode(row)
                if on_create is not None:
                    await on_create(created)
                return created, True
            if not fields:
                existing = await self.get(tenant_id)
                if existing is None:  # deleted since the insert saw it
                    raise NotFound(f"tenant '{tenant_id}' not found")
                return existing, False
            return await self.update(tenant_id, **fields), False

    async def get(self, tenant_id: str) -> dict[str, Any] | None:
        """The tenant row, or ``None`` when there is no such tenant."""
        row = await self._db.fetch_one(sa.select(tenants).where(tenants.c.id == tenant_id))
        return None if row is None else _decode(row)

    async def list(self, *, active_only: bool = False) -> list[dict[str, Any]]:
        """Every tenant (only active ones with ``active_only``), ordered by id."""
        query = sa.select(tenants).order_by(tenants.c.id)
        if active_only:
            query = query.where(tenants.c.active.is_(True))
        return [_decode(row) for row in await self._db.fetch_all(query)]

    async def update(self, tenant_id: str, **fields: Any) -> dict[str, Any]:
        """Set ``fields`` (``None`` stores NULL); return the updated row.

        Raises ``NotFound`` for an unknown tenant and ``TypeError`` for an unknown field.
        """
        values = {**_encode(fields), "updated_at": int(self._clock())}
        update = (
            tenants.update().where(tenants.c.id == tenant_id).values(**values).returning(*tenants.c)
        )
        row = await self._db.fetch_one(update)
        if row is None:
            raise NotFound(f"tenant '{tenant_id}' not found")
        return _decode(row)

    async def delete(self, tenant_id: str) -> bool:
        """Delete the tenant and everything that belongs to it; ``False`` if it did not exist.

        One statement: the foreign keys cascade to accounts, messages, events, storages (and any
        plugin table referencing the tenant), so either all of it goes or nothing does.
        """
        delete = tenants.delete().where(tenants.c.id == tenant_id).returning(tenants.c.id)
        return await self._db.fetch_one(delete) is not None

    async def exists(self, tenant_id: str) -> bool:
        """Whether tenant ``tenant_id`` exists."""
        query = sa.select(tenants.c.id).where(tenants.c.id == tenant_id)
        return await self._db.fetch_val(query) is not None

    async def change_suspended_batches(
        self, tenant_id: str, change: Callable[[builtins.list[str]], Sequence[str]]
    ) -> builtins.list[str]:
        """Replace the tenant's suspended batches with ``change(current)``; return the new list.

        Read, change and write happen in one transaction with the row locked (``FOR UPDATE`` on
        PostgreSQL; SQLite transactions take the write lock up front), so concurrent calls do
        not lose each other's batches. An exception raised by ``change`` rolls back and
        propagates. Raises ``NotFound`` for an unknown tenant.
        """
        async with self._db.transaction():
            query = (
                sa.select(tenants.c.suspended_batches)
                .where(tenants.c.id == tenant_id)
                .with_for_update()
            )
            row = await self._db.fetch_one(query)
            if row is None:
                raise NotFound(f"tenant '{tenant_id}' not found")
            current = list(decode_json(row["suspended_batches"], []) or [])
            updated = list(change(current))
            if updated != current:
                await self._db.execute(
                    tenants.update()
                    .where(tenants.c.id == tenant_id)
                    .values(suspended_batches=encode_json(updated), updated_at=int(self._clock()))
                )
        return updated


async def require_tenant(db: Database, tenant_id: str) -> None:
    """Raise ``NotFound`` unless the tenant exists; call it inside a transaction.

    On PostgreSQL the row is share-locked until commit, so a concurrent delete cannot remove the
    tenant between this check and the insert of a child row (which would otherwise fail on the
    foreign key, a server error). SQLite transactions hold the write lock from the start.
    """
    query = sa.select(tenants.c.id).where(tenants.c.id == tenant_id).with_for_update(read=True)
    if await db.fetch_val(query) is None:
        raise NotFound(f"tenant '{tenant_id}' not found")


def _encode(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - set(TENANT_FIELDS))
    if unknown:
        raise TypeError(f"unknown tenant field(s): {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None and name in _NOT_NULL:
            raise TypeError(f"tenant field {name!r} cannot be None")
        if name == "suspended_batches":
            value = list(value or ())
        values[name] = encode_json(value) if name in JSON_FIELDS else value
    return values


def _decode(row: Row) -> dict[str, Any]:
    decoded = dict(row)
    for name in JSON_FIELDS:
        decoded[name] = decode_json(row[name])
    decoded["suspended_batches"] = decoded["suspended_batches"] or []
    decoded["active"] = bool(row["active"])
    return decoded
