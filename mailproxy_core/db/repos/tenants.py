"""The ``tenants`` table: basic create, read, update, delete.

Rows come back as dicts with JSON columns decoded. Secrets (``client_auth`` credentials,
``report_signing_secret``) are stored exactly as given: the caller encrypts before writing and
decrypts after reading (``crypto.SecretBox``), and never returns them to a client.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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
        """Delete the tenant and everything that belongs to it; ``False`` if it did not exist."""
        delete = tenants.delete().where(tenants.c.id == tenant_id).returning(tenants.c.id)
        return await self._db.fetch_one(delete) is not None


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
