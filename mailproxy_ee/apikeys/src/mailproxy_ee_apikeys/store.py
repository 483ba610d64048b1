"""The table of key hashes and every query on it (through the kernel's plugin data facade).

One row per key: a tenant's default key (name ``default``) and its named scoped keys. Only
``hash_token(key)`` is stored. Rows go with their tenant (``ON DELETE CASCADE``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from mailproxy_core import MailProxy, MigrationContext, MigrationSpec

from .keys import DEFAULT_KEY_NAME, KeyScope, decode_scopes

COMPONENT = "ee_apikeys"

LAST_USED_RESOLUTION = 60
"""``last_used_ts`` is written at most once a minute per key (and process): a key used on every
request costs one small ``UPDATE`` a minute, not one per request."""

metadata = sa.MetaData()

# The core table the keys refer to; declared here only so the foreign key can be compiled
# (this plugin never creates or changes it).
_tenants = sa.Table("tenants", metadata, sa.Column("id", sa.Text, primary_key=True))

api_keys = sa.Table(
    "ee_apikeys_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "tenant_id",
        sa.Text,
        sa.ForeignKey("tenants.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("key_hash", sa.Text, nullable=False),
    sa.Column("scopes", sa.Text, nullable=False),
    sa.Column("created_ts", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger),
    sa.Column("last_used_ts", sa.BigInteger),
    sa.UniqueConstraint("tenant_id", "name", name="uq_ee_apikeys_keys_tenant_name"),
    sa.UniqueConstraint("key_hash", name="uq_ee_apikeys_keys_hash"),
)


async def _create_v1(ctx: MigrationContext) -> None:
    await ctx.create_tables(api_keys)


MIGRATIONS = [
    MigrationSpec(
        COMPONENT,
        1,
        "table ee_apikeys_keys: hashes of tenant API keys (default and scoped)",
        _create_v1,
    )
]


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One key as stored (its hash, never the key)."""

    id: int
    tenant_id: str
    name: str
    key_hash: str
    scopes: frozenset[KeyScope]
    created_ts: int
    expires_at: int | None
    last_used_ts: int | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredKey:
        return cls(
            id=int(row["id"]),
            tenant_id=str(row["tenant_id"]),
            name=str(row["name"]),
            key_hash=str(row["key_hash"]),
            scopes=decode_scopes(str(row["scopes"])),
            created_ts=int(row["created_ts"]),
            expires_at=None if row["expires_at"] is None else int(row["expires_at"]),
            last_used_ts=None if row["last_used_ts"] is None else int(row["last_used_ts"]),
        )

    def expired(self, now: int) -> bool:
        """From the second ``expires_at`` on, the key is refused."""
        return self.expires_at is not None and now >= self.expires_at


class KeyStore:
    """Queries on ``ee_apikeys_keys`` (every one through ``mp.data``)."""

    def __init__(self, mp: MailProxy) -> None:
        self._mp = mp

    async def find(self, hashed: str) -> StoredKey | None:
        """The key whose hash is ``hashed`` (one indexed lookup), or ``None``."""
        row = await self._mp.data.fetch_one(
            sa.select(api_keys).where(api_keys.c.key_hash == hashed)
        )
        return None if row is None else StoredKey.from_row(row)

    async def touch(self, key: StoredKey, now: int) -> None:
        """Record a use, at most once per :data:`LAST_USED_RESOLUTION` seconds."""
        if key.last_used_ts is not None and now - key.last_used_ts < LAST_USED_RESOLUTION:
            return
        stale = sa.or_(
            api_keys.c.last_used_ts.is_(None),
            api_keys.c.last_used_ts <= now - LAST_USED_RESOLUTION,
        )
        await self._mp.data.execute(
            sa.update(api_keys).where(api_keys.c.id == key.id, stale).values(last_used_ts=now)
        )

    async def set_default(
        self, tenant_id: str, hashed: str, scopes: str, expires_at: int | None, now: int
    ) -> None:
        """Make ``hashed`` the tenant's default key, replacing the previous one at once."""
        await self._mp.data.upsert(
            api_keys,
            {
                "tenant_id": tenant_id,
                "name": DEFAULT_KEY_NAME,
                "key_hash": hashed,
                "scopes": scopes,
                "created_ts": now,
                "expires_at": expires_at,
                "last_used_ts": None,
            },
            key=("tenant_id", "name"),
            update=("key_hash", "scopes", "created_ts", "expires_at", "last_used_ts"),
        )

    async def add(
        self,
        tenant_id: str,
        name: str,
        hashed: str,
        scopes: str,
        expires_at: int | None,
        now: int,
    ) -> bool:
        """Store a named key; ``False`` when the tenant already has a key of that name."""
        if await self.exists(tenant_id, name):
            return False
        try:
            await self._mp.data.execute(
                sa.insert(api_keys).values(
                    tenant_id=tenant_id,
                    name=name,
                    key_hash=hashed,
                    scopes=scopes,
                    created_ts=now,
                    expires_at=expires_at,
                    last_used_ts=None,
                )
            )
        except Exception:
            # Two calls adding the same name at once: the unique constraint decides.
            if await self.exists(tenant_id, name):
                return False
            raise
        return True

    async def exists(self, tenant_id: str, name: str) -> bool:
        """Whether the tenant has a key named ``name``."""
        found = await self._mp.data.fetch_val(
            sa.select(api_keys.c.id).where(
                api_keys.c.tenant_id == tenant_id, api_keys.c.name == name
            )
        )
        return found is not None

    async def delete(self, tenant_id: str, name: str) -> bool:
        """Remove the tenant's key ``name``; whether there was one."""
        existed = await self.exists(tenant_id, name)
        await self._mp.data.execute(
            sa.delete(api_keys).where(api_keys.c.tenant_id == tenant_id, api_keys.c.name == name)
        )
        return existed

    async def list(self, tenant_id: str) -> list[StoredKey]:
        """The tenant's keys: the default key first, then by name."""
        rows = await self._mp.data.fetch_all(
            sa.select(api_keys)
            .where(api_keys.c.tenant_id == tenant_id)
            .order_by((api_keys.c.name != DEFAULT_KEY_NAME), api_keys.c.name)
        )
        return [StoredKey.from_row(row) for row in rows]

    async def default_keys(self, tenant_ids: Sequence[str]) -> dict[str, StoredKey]:
        """The default key of each of ``tenant_ids`` that has one."""
        if not tenant_ids:
            return {}
        rows = await self._mp.data.fetch_all(
            sa.select(api_keys).where(
                api_keys.c.tenant_id.in_(list(tenant_ids)),
                api_keys.c.name == DEFAULT_KEY_NAME,
            )
        )
        return {str(row["tenant_id"]): StoredKey.from_row(row) for row in rows}
