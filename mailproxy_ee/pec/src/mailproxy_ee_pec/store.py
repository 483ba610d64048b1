"""Reads and writes of the plugin's tables, through the kernel's data facade (``mp.data``)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .tables import pec_accounts, pec_messages

if TYPE_CHECKING:
    from mailproxy_core import MailProxy, SecretBox


@dataclass(frozen=True, slots=True)
class PecMailbox:
    """One PEC account's mailbox settings and state (``imap_password`` still encrypted)."""

    account_pk: str
    tenant_id: str
    account_id: str
    imap_host: str
    imap_port: int
    imap_ssl: bool
    imap_user: str | None
    imap_password: str | None
    imap_folder: str
    mailbox_key: str | None
    uidvalidity: int | None
    last_uid: int
    last_poll_ts: int | None
    last_error: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PecMailbox:
        return cls(
            account_pk=row["account_pk"],
            tenant_id=row["tenant_id"],
            account_id=row["account_id"],
            imap_host=row["imap_host"],
            imap_port=int(row["imap_port"]),
            imap_ssl=bool(row["imap_ssl"]),
            imap_user=row["imap_user"],
            imap_password=row["imap_password"],
            imap_folder=row["imap_folder"],
            mailbox_key=row["mailbox_key"],
            uidvalidity=None if row["uidvalidity"] is None else int(row["uidvalidity"]),
            last_uid=int(row["last_uid"] or 0),
            last_poll_ts=None if row["last_poll_ts"] is None else int(row["last_poll_ts"]),
            last_error=row["last_error"],
        )


class PecStore:
    """The plugin's data: PEC mailboxes and the messages waiting for an acceptance."""

    def __init__(self, mp: MailProxy) -> None:
        self.mp = mp

    @property
    def box(self) -> SecretBox:
        return self.mp.secrets

    # -- mailboxes -----------------------------------------------------------------------------

    async def mailbox(self, tenant_id: str, account_id: str) -> PecMailbox | None:
        row = await self.mp.data.fetch_one(
            sa.select(pec_accounts).where(
                pec_accounts.c.tenant_id == tenant_id, pec_accounts.c.account_id == account_id
            )
        )
        return None if row is None else PecMailbox.from_row(row)

    async def mailboxes(self, tenant_id: str | None = None) -> list[PecMailbox]:
        """Every PEC mailbox (of one tenant), ordered by tenant then account id."""
        query = sa.select(pec_accounts).order_by(
            pec_accounts.c.tenant_id, pec_accounts.c.account_id
        )
        if tenant_id is not None:
            query = query.where(pec_accounts.c.tenant_id == tenant_id)
        return [PecMailbox.from_row(row) for row in await self.mp.data.fetch_all(query)]

    async def mailboxes_by_pk(self, account_pks: Sequence[str]) -> dict[str, PecMailbox]:
        if not account_pks:
            return {}
        rows = await self.mp.data.fetch_all(
            sa.select(pec_accounts).where(pec_accounts.c.account_pk.in_(list(account_pks)))
        )
        return {row["account_pk"]: PecMailbox.from_row(row) for row in rows}

    async def save_mailbox(
        self,
        *,
        account_pk: str,
        tenant_id: str,
        account_id: str,
        imap_host: str,
        imap_port: int,
        imap_ssl: bool,
        imap_user: str | None,
        imap_password: str | None,
        imap_folder: str,
    ) -> None:
        """Create or replace the IMAP settings of an account (``imap_password`` in clear text).

        The mailbox state (UIDVALIDITY, last UID) is kept; the poller starts over by itself when
        the server, user or folder differ from those the state was recorded for.
        """
        now = int(time.time())
        sealed = self.box.encrypt(imap_password) if imap_password else None
        values = {
            "account_pk": account_pk,
            "tenant_id": tenant_id,
            "account_id": account_id,
            "imap_host": imap_host,
            "imap_port": imap_port,
            "imap_ssl": imap_ssl,
            "imap_user": imap_user,
            "imap_password": sealed,
            "imap_folder": imap_folder,
            "last_uid": 0,
            "created_ts": now,
            "updated_ts": now,
        }
        update = [k for k in values if k not in {"account_pk", "last_uid", "created_ts"}]
        await self.mp.data.upsert(pec_accounts, values, key=["account_pk"], update=update)

    async def start_over(self, account_pk: str, mailbox_key: str, uidvalidity: int) -> None:
        """Forget the examined UIDs: a new mailbox, or the server changed UIDVALIDITY."""
        await self.mp.data.execute(
            sa.update(pec_accounts)
            .where(pec_accounts.c.account_pk == account_pk)
            .values(mailbox_key=mailbox_key, uidvalidity=uidvalidity, last_uid=0)
        )

    async def advance(self, account_pk: str, uidvalidity: int, last_uid: int) -> None:
        """Every message up to ``last_uid`` of this UIDVALIDITY was examined."""
        await self.mp.data.execute(
            sa.update(pec_accounts)
            .where(
                pec_accounts.c.account_pk == account_pk,
                pec_accounts.c.uidvalidity == uidvalidity,
                pec_accounts.c.last_uid < last_uid,
            )
            .values(last_uid=last_uid)
        )

    async def poll_succeeded(self, account_pk: str, when: int) -> None:
        await self.mp.data.execute(
            sa.update(pec_accounts)
            .where(pec_accounts.c.account_pk == account_pk)
            .values(last_poll_ts=when, last_error=None)
        )

    async def poll_failed(self, account_pk: str, error: str) -> None:
        await self.mp.data.execute(
            sa.update(pec_accounts)
            .where(pec_accounts.c.account_pk == account_pk)
            .values(last_error=error[:1000])
        )

    # -- messages waiting for an acceptance ----------------------------------------------------

    async def track_sent(self, message_pk: int, account_pk: str, tenant_id: str, when: int) -> None:
        """Remember a message sent through a PEC account (a second call changes nothing)."""
        values = {
            "message_pk": message_pk,
            "account_pk": account_pk,
            "tenant_id": tenant_id,
            "sent_ts": when,
        }
        await self.mp.data.upsert(pec_messages, values, key=["message_pk"], update=[])

    async def settle(self, message_pks: Sequence[int], when: int) -> None:
        """These messages got an acceptance or an error receipt: no timeout for them."""
        if not message_pks:
            return
        await self.mp.data.execute(
            sa.update(pec_messages)
            .where(
                pec_messages.c.message_pk.in_(list(message_pks)),
                pec_messages.c.settled_ts.is_(None),
            )
            .values(settled_ts=when)
        )

    async def overdue(self, sent_before: int, limit: int = 500) -> list[Mapping[str, Any]]:
        """Messages sent before ``sent_before`` with neither a settling receipt nor a timeout."""
        return await self.mp.data.fetch_all(
            sa.select(pec_messages)
            .where(
                pec_messages.c.settled_ts.is_(None),
                pec_messages.c.timed_out_ts.is_(None),
                pec_messages.c.sent_ts <= sent_before,
            )
            .order_by(pec_messages.c.sent_ts, pec_messages.c.message_pk)
            .limit(limit)
        )

    async def timed_out(self, message_pks: Sequence[int], when: int) -> None:
        if not message_pks:
            return
        await self.mp.data.execute(
            sa.update(pec_messages)
            .where(pec_messages.c.message_pk.in_(list(message_pks)))
            .values(timed_out_ts=when)
        )
