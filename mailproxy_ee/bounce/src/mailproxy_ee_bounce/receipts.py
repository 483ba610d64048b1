"""From a classified notice to the ``Receipt`` objects the kernel records as ``bounce`` events."""

from __future__ import annotations

from typing import Any

from mailproxy_core import EventType, MetaKey, Receipt

from .classify import Notice


def receipts_for(
    notice: Notice,
    *,
    mailbox_key: str,
    uidvalidity: int,
    uid: int,
    message_pk: int | None = None,
) -> list[Receipt]:
    """One ``bounce`` receipt per bounce or complaint of the notice.

    De-duplication: the notice's own Message-ID, else its place in the mailbox
    (``mailbox|uidvalidity|uid``), plus the recipient, so that each recipient of a multi-recipient
    report is one event and re-reading the notice adds none. Correlation: ``message_pk`` when a
    VERP return path named it, else the original's Message-ID, else its ``X-Genro-Mail-ID``
    together with the bounced recipient.
    """
    source = notice.notice_message_id or f"{mailbox_key}|{uidvalidity}|{uid}"
    receipts = []
    for bounce in notice.bounces:
        metadata: dict[str, Any] = {
            MetaKey.BOUNCE_TYPE: bounce.bounce_type,
            MetaKey.BOUNCE_CODE: bounce.code,
            MetaKey.RECIPIENT: bounce.recipient,
            MetaKey.SOURCE_MESSAGE_ID: notice.notice_message_id,
        }
        if bounce.action:
            metadata[MetaKey.ACTION] = bounce.action
        if bounce.feedback_type:
            metadata[MetaKey.FEEDBACK_TYPE] = bounce.feedback_type
        if notice.date_ts is not None:
            metadata[MetaKey.RECEIPT_TS] = notice.date_ts
        receipts.append(
            Receipt(
                event_type=EventType.BOUNCE,
                dedup_key=f"{source}|{bounce.recipient or '-'}",
                description=bounce.reason,
                metadata={str(k): v for k, v in metadata.items()},
                message_pk=message_pk,
                message_id_header=notice.original_message_id,
                client_message_id=notice.original_mail_id,
                recipient=bounce.recipient,
            )
        )
    return receipts
