"""The ``accounts`` table: a tenant's outgoing accounts, keyed by (tenant_id, id).

Rows come back as dicts with ``options`` decoded and ``use_tls`` as ``True``/``False``/``None``.
The password and secret options are stored exactly as given: the caller encrypts before writing
and decrypts after reading (``crypto.SecretBox``), and never returns them to a client.
"""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from ..engine import Database, Row
from ..jsontext import decode_json, encode_json
from ..schema import accounts
from .tenants import require_tenant

ACCOUNT_FIELDS = (
    "transport",
    "host",
    "port",
    "user",
    "password",
    "use_tls",
    "ttl",
    "batch_size",
    "limit_per_minute",
    "limit_per_hour",
    "limit_per_day",
    "limit_behavior",
    "options",
)
"""The columns a caller may set (besides the key and the timestamps)."""


class AccountsRepo:
    """CRUD on ``accounts``; the surrogate key ``pk`` is a UUID string kept across updates."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def upsert(self, tenant_id: str, account_id: str, **fields: Any) -> tuple[Row, bool]:
        """Create account ``account_id`` of ``tenant_id``, or overwrite ``fields`` of it.

        An existing account keeps its ``pk`` and ``created_at``; columns not in ``fields`` keep
        their value (a new row gets the column defaults). Returns the row and whether it was
        created. Raises ``NotFound`` for an unknown tenant, ``TypeError`` for an unknown field.
        """
        now = int(self._clock())
        new_pk = str(uuid.uuid4())
        encoded = _encode(fields)
        insert = self._db.insert(accounts).values(
            **encoded, pk=new_pk, tenant_id=tenant_id, id=account_id, created_at=now, updated_at=now
        )
        changes = {name: insert.excluded[name] for name in encoded}
        upsert = insert.on_conflict_do_update(
            index_elements=[accounts.c.tenant_id, accounts.c.id],
            set_={**changes, "updated_at": now},
        ).returning(*accounts.c)
        async with self._db.transaction():
            await require_tenant(self._db, tenant_id)
            row = await self._db.fetch_one(upsert)
        assert row is not None, "INSERT ... ON CONFLICT DO UPDATE returned no row"
        return _decode(row), row["pk"] == new_pk

    async def get(self, tenant_id: str, account_id: str) -> Row | None:
        """The account row, or ``None`` when the tenant has no such account."""
        query = sa.select(accounts).where(
            accounts.c.tenant_id == tenant_id, accounts.c.id == account_id
        )
        row = await self._db.fetch_one(query)
        return None if row is None else _decode(row)

    async def get_by_pk(self, pk: str) -> Row | None:
        """The account row with surrogate key ``pk``, or ``None``."""
        row = await self._db.fetch_one(sa.select(accounts).where(accounts.c.pk == pk))
        return None if row is None else _decode(row)

    async def list(self, tenant_id: str) -> list[Row]:
        """Every account of the tenant, ordered by id."""
        query = sa.select(accounts).where(accounts.c.tenant_id == tenant_id).order_by(accounts.c.id)
        return [_decode(row) for row in await self._db.fetch_all(query)]

    async def list_all(self) -> builtins.list[Row]:
        """Every account of every tenant, ordered by tenant then id."""
        query = sa.select(accounts).order_by(accounts.c.tenant_id, accounts.c.id)
        return [_decode(row) for row in await self._db.fetch_all(query)]

    async def delete(self, tenant_id: str, account_id: str) -> bool:
        """Delete the account (its messages stay, with ``account_pk`` NULL); ``False`` if absent."""
        delete = (
            accounts.delete()
            .where(accounts.c.tenant_id == tenant_id, accounts.c.id == account_id)
            .returning(accounts.c.pk)
        )
        return await self._db.fetch_one(delete) is not None


def _encode(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - set(ACCOUNT_FIELDS))
    if unknown:
        raise TypeError(f"unknown account field(s): {', '.join(unknown)}")
    values = dict(fields)
    if "options" in values:
        values["options"] = encode_json(values["options"] or {})
    return values


def _decode(row: Row) -> Row:
    decoded = dict(row)
    decoded["options"] = decode_json(row["options"], {}) or {}
    decoded["use_tls"] = None if row["use_tls"] is None else bool(row["use_tls"])
    return decoded
