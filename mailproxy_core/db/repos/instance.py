"""The ``instance`` singleton row: name, edition, free-form config, admin token hash."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from ...errors import InvalidInput
from ..engine import Database, Row
from ..jsontext import decode_json, encode_json
from ..schema import INSTANCE_ROW_ID, instance

DEFAULT_NAME = "mail-proxy"
DEFAULT_EDITION = "ce"

_PUBLIC_COLUMNS = (
    instance.c.name,
    instance.c.edition,
    instance.c.config,
    instance.c.created_at,
    instance.c.updated_at,
)


def default_instance_row(now: int) -> dict[str, Any]:
    """The values of a fresh ``instance`` row (written by core migration v1)."""
    return {
        "id": INSTANCE_ROW_ID,
        "name": DEFAULT_NAME,
        "edition": DEFAULT_EDITION,
        "admin_token_hash": None,
        "config": "{}",
        "created_at": now,
        "updated_at": now,
    }


class InstanceRepo:
    """Reads and writes the single ``instance`` row.

    The row is written by core migration v1; should it be missing (deleted by hand) it is
    recreated with defaults on first use. ``get`` never returns the admin token hash.
    """

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def ping(self) -> None:
        """One round trip to the database (readiness probe); raises when it cannot be reached."""
        await self._db.fetch_val(sa.text("SELECT 1"))

    async def get(self) -> dict[str, Any]:
        """``{name, edition, config (dict), created_at, updated_at}``."""
        row = await self._db.fetch_one(_select_public())
        if row is None:
            await self._ensure_row()
            row = await self._db.fetch_one(_select_public())
            assert row is not None, "instance row vanished right after it was created"
        return _public(row)

    async def update(
        self,
        *,
        name: str | None = None,
        edition: str | None = None,
        config: Mapping[str, Any] | None = None,
        admin_token_hash: str | None = None,
    ) -> dict[str, Any]:
        """Change the name and/or edition, merge ``config`` into the stored config and replace
        the admin token hash, all in one transaction.

        The merge is shallow: each key of ``config`` replaces the stored key, and a key whose
        value is ``None`` is removed. Arguments left as ``None`` are not changed. Returns the
        updated row as ``get`` does. Raises ``InvalidInput`` for an empty name or edition or a
        config that is not an object.
        """
        values: dict[str, Any] = {}
        if admin_token_hash is not None:
            values["admin_token_hash"] = admin_token_hash
        for field, value in (("name", name), ("edition", edition)):
            if value is not None:
                if not isinstance(value, str) or not value.strip():
                    raise InvalidInput(f"instance {field} must be a non-empty string")
                values[field] = value
        if config is not None and not isinstance(config, Mapping):
            raise InvalidInput("instance config must be a JSON object")
        async with self._db.transaction():
            await self._ensure_row()
            if config is not None:
                query = sa.select(instance.c.config).where(_this_row()).with_for_update()
                merged = dict(decode_json(await self._db.fetch_val(query), {}))
                for key, value in config.items():
                    if value is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = value
                values["config"] = encode_json(merged)
            values["updated_at"] = self._now()
            await self._db.execute(instance.update().where(_this_row()).values(**values))
        return await self.get()

    async def get_admin_token_hash(self) -> str | None:
        """The stored hash of the admin token, or ``None`` when no token was set yet."""
        query = sa.select(instance.c.admin_token_hash).where(_this_row())
        value = await self._db.fetch_val(query)
        return None if value is None else str(value)

    async def set_admin_token_hash(self, token_hash: str | None) -> None:
        """Store (or with ``None`` clear) the admin token hash, replacing any previous one."""
        async with self._db.transaction():
            await self._ensure_row()
            await self._db.execute(
                instance.update()
                .where(_this_row())
                .values(admin_token_hash=token_hash, updated_at=self._now())
            )

    async def set_admin_token_hash_if_unset(self, token_hash: str) -> bool:
        """Store ``token_hash`` only if no hash is stored yet; ``True`` if this call stored it.

        Two processes starting at once each generate a token; only one of them wins, and the
        loser must not print a token that does not work.
        """
        async with self._db.transaction():
            await self._ensure_row()
            stored = await self._db.fetch_one(
                instance.update()
                .where(_this_row(), instance.c.admin_token_hash.is_(None))
                .values(admin_token_hash=token_hash, updated_at=self._now())
                .returning(instance.c.id)
            )
        return stored is not None

    async def _ensure_row(self) -> None:
        insert = self._db.insert(instance).values(**default_instance_row(self._now()))
        await self._db.execute(insert.on_conflict_do_nothing(index_elements=[instance.c.id]))

    def _now(self) -> int:
        return int(self._clock())


def _this_row() -> sa.ColumnElement[bool]:
    return instance.c.id == INSTANCE_ROW_ID


def _select_public() -> sa.Select[Any]:
    return sa.select(*_PUBLIC_COLUMNS).where(_this_row())


def _public(row: Row) -> dict[str, Any]:
    return {
        "name": row["name"],
        "edition": row["edition"],
        "config": decode_json(row["config"], {}),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
