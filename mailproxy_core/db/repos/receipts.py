"""Receipts: finding the message a receipt is about, and appending its event once.

A receipt (bounce, PEC receipt) becomes one ``message_events`` row with a ``dedup_key``; the
unique index ``(message_pk, dedup_key)`` makes a second insert of the same receipt for the same
message a no-op, whichever process or restart tries it. The message's status is never touched.
Lookups go by the stored Message-ID (``ix_messages_message_id_header``) or by client id across
tenants (``ix_messages_id``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ..engine import Database, Row
from ..jsontext import decode_json, encode_json
from ..schema import message_events, messages

CANDIDATE_LIMIT = 1000
"""At most this many messages are considered for one lookup."""


class ReceiptsRepo:
    """Queries of the receipt path (``dispatch/receipt_recording.py``, ``find_messages``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def find(
        self,
        *,
        pk: int | None = None,
        message_id_header: str | None = None,
        client_message_id: str | None = None,
        tenant_id: str | None = None,
        account_id: str | None = None,
        limit: int = CANDIDATE_LIMIT,
    ) -> list[Row]:
        """Messages matching every criterion given, oldest first, at most ``limit``.

        Each row: ``pk, tenant_id, id, account_id, status, message_id_header, smtp_ts`` and
        ``payload`` (decoded).
        """
        query = sa.select(
            messages.c.pk,
            messages.c.tenant_id,
            messages.c.id,
            messages.c.account_id,
            messages.c.status,
            messages.c.message_id_header,
            messages.c.smtp_ts,
            messages.c.payload,
        )
        if pk is not None:
            query = query.where(messages.c.pk == pk)
        if message_id_header is not None:
            query = query.where(messages.c.message_id_header == message_id_header)
        if client_message_id is not None:
            query = query.where(messages.c.id == client_message_id)
        if tenant_id is not None:
            query = query.where(messages.c.tenant_id == tenant_id)
        if account_id is not None:
            query = query.where(messages.c.account_id == account_id)
        query = query.order_by(messages.c.pk).limit(limit)
        rows = await self._db.fetch_all(query)
        for row in rows:
            row["payload"] = decode_json(row["payload"], {})
        return rows

    async def append_event(
        self,
        *,
        message_pk: int,
        tenant_id: str,
        event_type: str,
        event_ts: int,
        description: str | None,
        metadata: Mapping[str, Any] | None,
        dedup_key: str,
    ) -> bool:
        """Append a receipt event unless the message already has one with ``dedup_key``.

        Returns whether a row was inserted. Run it inside the caller's transaction so that a
        batch of receipts is recorded all at once.
        """
        insert = (
            self._db.insert(message_events)
            .values(
                event_uuid=str(uuid.uuid4()),
                message_pk=message_pk,
                tenant_id=tenant_id,
                event_type=str(event_type),
                event_ts=event_ts,
                description=description,
                metadata=encode_json({str(k): v for k, v in metadata.items()})
                if metadata
                else None,
                dedup_key=dedup_key,
            )
            .on_conflict_do_nothing(index_elements=["message_pk", "dedup_key"])
            .returning(message_events.c.id)
        )
        return await self._db.fetch_one(insert) is not None


def _metadata_json(metadata: Mapping[str, Any] | None) -> str | None:
    # Keys may be ``MetaKey`` members: store their plain string values.
    return encode_json({str(key): value for key, value in metadata.items()}) if metadata else None
