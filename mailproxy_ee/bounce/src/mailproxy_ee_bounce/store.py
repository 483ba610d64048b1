"""Reads and writes of the plugin's tables, through the kernel's data facade (``mp.data``)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .tables import bounce_config, suppressions

if TYPE_CHECKING:
    from mailproxy_core import MailProxy

CONFIG_ID = 1
CONFIG_FIELDS = (
    "enabled",
    "imap_host",
    "imap_port",
    "imap_ssl",
    "imap_user",
    "imap_password",
    "imap_folder",
    "poll_interval",
    "return_path",
)
"""The fields ``instance/set_bounce_config`` may change."""


@dataclass(frozen=True, slots=True)
class BounceConfig:
    """The stored bounce configuration and mailbox state (``imap_password`` still encrypted)."""

    enabled: bool = False
    imap_host: str | None = None
    imap_port: int = 993
    imap_ssl: bool = True
    imap_user: str | None = None
    imap_password: str | None = None
    imap_folder: str = "INBOX"
    poll_interval: int | None = None
    return_path: str | None = None
    reload_seq: int = 0
    mailbox_key: str | None = None
    uidvalidity: int | None = None
    last_uid: int = 0
    last_poll_ts: int | None = None
    last_error: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | None) -> BounceConfig:
        if row is None:
            return cls()
        return cls(
            enabled=bool(row["enabled"]),
            imap_host=row["imap_host"],
            imap_port=int(row["imap_port"]),
            imap_ssl=bool(row["imap_ssl"]),
            imap_user=row["imap_user"],
            imap_password=row["imap_password"],
            imap_folder=row["imap_folder"] or "INBOX",
            poll_interval=None if row["poll_interval"] is None else int(row["poll_interval"]),
            return_path=row["return_path"],
            reload_seq=int(row["reload_seq"] or 0),
            mailbox_key=row["mailbox_key"],
            uidvalidity=None if row["uidvalidity"] is None else int(row["uidvalidity"]),
            last_uid=int(row["last_uid"] or 0),
            last_poll_ts=None if row["last_poll_ts"] is None else int(row["last_poll_ts"]),
            last_error=row["last_error"],
        )


@dataclass(frozen=True, slots=True)
class Suppression:
    """One suppressed address of a tenant."""

    tenant_id: str
    address: str
    reason: str
    bounce_code: str | None
    created_ts: int

    def view(self) -> dict[str, Any]:
        """The API object: ``{address, reason, bounce_code, created_ts}``."""
        return {
            "address": self.address,
            "reason": self.reason,
            "bounce_code": self.bounce_code,
            "created_ts": self.created_ts,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Suppression:
        return cls(
            tenant_id=row["tenant_id"],
            address=row["address"],
            reason=row["reason"],
            bounce_code=row["bounce_code"],
            created_ts=int(row["created_ts"]),
        )


def normalize_address(address: str) -> str:
    """The form addresses are stored and compared in: trimmed, without ``<>``, lower case."""
    return address.strip().strip("<>").strip().lower()


class BounceStore:
    """The plugin's data: the bounce configuration, the mailbox state, the suppression list."""

    def __init__(self, mp: MailProxy) -> None:
        self.mp = mp

    # -- configuration and mailbox state --------------------------------------------------

    async def config(self) -> BounceConfig:
        """The stored configuration (defaults when none was ever stored)."""
        row = await self.mp.data.fetch_one(
            sa.select(bounce_config).where(bounce_config.c.id == CONFIG_ID)
        )
        return BounceConfig.from_row(row)

    async def save_config(self, fields: Mapping[str, Any]) -> None:
        """Store the given configuration fields (others keep their value). The reader notices a
        changed server, user or folder by its mailbox key and reads that mailbox from the start."""
        values = {k: v for k, v in fields.items() if k in CONFIG_FIELDS}
        values["id"] = CONFIG_ID
        values["updated_ts"] = int(time.time())
        await self.mp.data.upsert(
            bounce_config, values, key=["id"], update=[k for k in values if k != "id"]
        )

    async def request_reload(self) -> None:
        """Make the polling process (whichever it is) reconnect before its next read."""
        await self.mp.data.upsert(
            bounce_config,
            {"id": CONFIG_ID, "updated_ts": int(time.time())},
            key=["id"],
            update=[],
        )
        await self.mp.data.execute(
            sa.update(bounce_config)
            .where(bounce_config.c.id == CONFIG_ID)
            .values(reload_seq=bounce_config.c.reload_seq + 1)
        )

    async def save_position(self, mailbox_key: str, uidvalidity: int, last_uid: int) -> None:
        """Remember the last examined UID of the mailbox."""
        await self.mp.data.execute(
            sa.update(bounce_config)
            .where(bounce_config.c.id == CONFIG_ID)
            .values(mailbox_key=mailbox_key, uidvalidity=uidvalidity, last_uid=last_uid)
        )

    async def save_poll_result(self, *, ok: bool, error: str | None = None) -> None:
        """Record the outcome of a poll: success time (clears the error) or the error text."""
        values: dict[str, Any] = {"last_error": None if ok else (error or "failed")}
        if ok:
            values["last_poll_ts"] = int(time.time())
        await self.mp.data.execute(
            sa.update(bounce_config).where(bounce_config.c.id == CONFIG_ID).values(**values)
        )

    # -- suppression list -----------------------------------------------------------------

    async def suppress(
        self, tenant_id: str, address: str, reason: str, bounce_code: str | None
    ) -> Suppression:
        """Add an address to a tenant's list and return its entry; an address already there
        keeps its entry."""
        address = normalize_address(address)
        await self.add_suppression(tenant_id, address, reason, bounce_code)
        entry = await self.suppression(tenant_id, address)
        assert entry is not None
        return entry

    async def add_suppression(
        self, tenant_id: str, address: str, reason: str, bounce_code: str | None
    ) -> None:
        """Add an address to a tenant's list (one statement); one already there keeps its
        entry."""
        await self.mp.data.upsert(
            suppressions,
            {
                "tenant_id": tenant_id,
                "address": normalize_address(address),
                "reason": reason,
                "bounce_code": bounce_code,
                "created_ts": int(time.time()),
            },
            key=["tenant_id", "address"],
            update=[],
        )

    async def suppression(self, tenant_id: str, address: str) -> Suppression | None:
        """One entry, or None."""
        row = await self.mp.data.fetch_one(
            sa.select(suppressions).where(
                suppressions.c.tenant_id == tenant_id,
                suppressions.c.address == normalize_address(address),
            )
        )
        return None if row is None else Suppression.from_row(row)

    async def unsuppress(self, tenant_id: str, address: str) -> int:
        """Remove an address from a tenant's list; returns how many entries went (0 or 1)."""
        return await self.mp.data.execute(
            sa.delete(suppressions).where(
                suppressions.c.tenant_id == tenant_id,
                suppressions.c.address == normalize_address(address),
            )
        )

    async def suppressions(
        self, tenant_id: str, *, limit: int, offset: int, address: str | None = None
    ) -> list[Suppression]:
        """A tenant's list, newest first (optionally only ``address``)."""
        query = sa.select(suppressions).where(suppressions.c.tenant_id == tenant_id)
        if address:
            query = query.where(suppressions.c.address == normalize_address(address))
        query = (
            query.order_by(suppressions.c.created_ts.desc(), suppressions.c.address)
            .limit(limit)
            .offset(offset)
        )
        return [Suppression.from_row(row) for row in await self.mp.data.fetch_all(query)]

    async def suppressed_among(self, tenant_id: str, addresses: Iterable[str]) -> set[str]:
        """Which of these addresses (normalized) the tenant has suppressed."""
        wanted = {normalize_address(a) for a in addresses if a}
        if not wanted:
            return set()
        rows = await self.mp.data.fetch_all(
            sa.select(suppressions.c.address).where(
                suppressions.c.tenant_id == tenant_id,
                suppressions.c.address.in_(sorted(wanted)),
            )
        )
        return {row["address"] for row in rows}
