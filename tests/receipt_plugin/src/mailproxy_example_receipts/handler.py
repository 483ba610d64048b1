"""The handler, its settings, its table and the parsing of one receipt file.

A receipt file is a mail whose headers say what happened::

    Message-ID: <dsn-1@mx.example>            the receipt's own id: its de-duplication key
    In-Reply-To: <the Message-ID we sent>     correlation (else X-Genro-Mail-ID + recipient)
    X-Receipt-Type: bounce                    an event type (bounce, pec_delivery, ...)
    X-Receipt-Recipient: bob@example.com
    X-Bounce-Type: hard                       bounce only
    X-Bounce-Code: 5.1.1                      bounce only

    550 5.1.1 User unknown                    first body line: the description
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import os
import time
from pathlib import Path

import sqlalchemy as sa
from pydantic import BaseModel, Field

from mailproxy_core import (
    EventType,
    MailProxy,
    MetaKey,
    MigrationContext,
    Receipt,
    ReceiptResult,
)

PLUGIN = "example_receipts"

log = logging.getLogger(__name__)


class ReceiptFilesSettings(BaseModel):
    """``[plugins.example_receipts]`` / ``MAILPROXY_EXAMPLE_RECEIPTS__DIRECTORY`` ..."""

    directory: str | None = None
    """Where receipt files (``*.eml``) are dropped; unset: nothing to read."""
    poll_interval: float = Field(60.0, gt=0)
    """Seconds between two reads of the directory."""


metadata = sa.MetaData()

read_log = sa.Table(
    "example_receipts_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("file", sa.Text, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("message_pk", sa.BigInteger, sa.ForeignKey("messages.pk", ondelete="CASCADE")),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("read_ts", sa.BigInteger, nullable=False),
)
"""One row per receipt file read: what the kernel did with it, and which process read it."""


async def create_tables(ctx: MigrationContext) -> None:
    await ctx.create_tables(read_log)


class DirectoryReceipts:
    """Reads receipt files; polled by the kernel's receipt loop in one process at a time."""

    def __init__(self, mp: MailProxy) -> None:
        self.mp = mp
        settings = mp.plugin_settings(PLUGIN)
        assert isinstance(settings, ReceiptFilesSettings)
        self.settings = settings

    @property
    def poll_interval(self) -> float:
        return self.settings.poll_interval

    async def poll(self) -> None:
        if not self.settings.directory:
            return
        files = await asyncio.to_thread(_read_files, Path(self.settings.directory))
        names: list[str] = []
        receipts: list[Receipt] = []
        for name, data in files:
            receipt = parse_receipt(name, data)
            if receipt is None:
                log.info("skipping %s: not a receipt", name)
                continue
            names.append(name)
            receipts.append(receipt)
        if not receipts:
            return
        results = await self.mp.record_receipts(receipts)  # durable when this returns
        await self._log(names, results)

    async def _log(self, names: list[str], results: list[ReceiptResult]) -> None:
        now, pid = int(time.time()), os.getpid()
        rows = [
            {
                "file": name,
                "outcome": result.outcome.value,
                "message_pk": result.message_pk,
                "pid": pid,
                "read_ts": now,
            }
            for name, result in zip(names, results, strict=True)
        ]
        async with self.mp.data.transaction():
            await self.mp.data.execute(read_log.insert().values(rows))


def _read_files(directory: Path) -> list[tuple[str, bytes]]:
    if not directory.is_dir():  # raised: shown as the handler's last_error, retried
        raise FileNotFoundError(f"receipt directory {directory} does not exist")
    return [(path.name, path.read_bytes()) for path in sorted(directory.glob("*.eml"))]


def parse_receipt(name: str, data: bytes) -> Receipt | None:
    """The receipt a file describes, or ``None`` when it names no known event type."""
    mail = email.message_from_bytes(data, policy=email.policy.default)
    kind = str(mail.get("X-Receipt-Type") or "").strip()
    if kind not in set(EventType) - {EventType.SENT, EventType.ERROR, EventType.DEFERRED}:
        return None
    recipient = str(mail.get("X-Receipt-Recipient") or "").strip() or None
    meta: dict[str, object] = {}
    if recipient:
        meta[MetaKey.RECIPIENT] = recipient
    if kind == EventType.BOUNCE:
        meta[MetaKey.BOUNCE_TYPE] = str(mail.get("X-Bounce-Type") or "hard").strip()
        meta[MetaKey.BOUNCE_CODE] = str(mail.get("X-Bounce-Code") or "").strip() or None
    own_id = str(mail.get("Message-ID") or "").strip()
    if own_id:
        meta[MetaKey.SOURCE_MESSAGE_ID] = own_id
    body = mail.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    return Receipt(
        event_type=kind,
        dedup_key=own_id or f"file:{name}",
        description=(text.strip().splitlines() or [kind])[0],
        metadata=meta,
        message_id_header=str(mail.get("In-Reply-To") or "").strip() or None,
        client_message_id=str(mail.get("X-Genro-Mail-ID") or "").strip() or None,
        recipient=recipient,
    )
