"""Recording receipts: correlate each to a message, append its event once, tell everyone.

``record_receipts`` is what ``MailProxy.record_receipts`` runs (receipt handlers call it). For
each receipt, in the order given, inside one transaction:

1. **Correlation**, first rule that applies wins: the message pk; the Message-ID the service
   sent (``messages.message_id_header``); the client's message id, which counts only when
   exactly one candidate remains after narrowing by recipient (sent messages that went to that
   address). ``tenant_id``/``account_id`` restrict the candidates. No candidate: ``unmatched``;
   more than one left: ``ambiguous``.
2. **De-duplication**: the event is inserted with the receipt's ``dedup_key``; the unique index
   ``(message_pk, dedup_key)`` turns a second insert into a no-op (``duplicate``), whichever
   process, restart or re-read of a mailbox attempts it.
3. The event is appended **without changing the message's status**.

After the commit the reporting loop is woken (the events are reported like any other) and
``mailproxy_receipt_received(mp, receipt, result)`` is emitted for each recorded receipt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..message_ids import normalize_message_id, recipients_of
from ..models import Receipt, ReceiptOutcome, ReceiptResult, SentMessage

if TYPE_CHECKING:
    from ..db.repos.receipts import ReceiptsRepo
    from ..kernel import MailProxy

log = logging.getLogger(__name__)

SENT_STATUS = "sent"
"""Only sent messages count when a receipt is matched by client id and recipient."""


async def record_receipts(mp: MailProxy, receipts: Sequence[Receipt]) -> list[ReceiptResult]:
    """Record ``receipts`` (see the module docstring); one result per receipt, same order.

    Raises ``TypeError``/``ValueError`` (before recording anything) for an item that is not a
    ``Receipt`` or lacks its ``event_type`` or ``dedup_key``.
    """
    if not receipts:
        return []
    for index, receipt in enumerate(receipts):
        if not isinstance(receipt, Receipt):
            raise TypeError(f"receipt {index} is a {type(receipt).__name__}, not a Receipt")
        if not str(receipt.event_type).strip() or not receipt.dedup_key.strip():
            raise ValueError(
                f"receipt {index} needs an event_type and a dedup_key (the incoming mail's "
                "Message-ID, or mailbox|uidvalidity|uid)"
            )
    repo = mp.repos.receipts
    results: list[ReceiptResult] = []
    now = int(time.time())
    async with mp.db.transaction():
        for receipt in receipts:
            results.append(await _record_one(repo, receipt, now))
    recorded = [result for result in results if result.outcome is ReceiptOutcome.RECORDED]
    for result in results:
        if result.outcome is not ReceiptOutcome.RECORDED:
            log.info(
                "receipt %s (%s) %s",
                result.receipt.dedup_key,
                result.receipt.event_type,
                result.outcome.value,
                extra={"tenant_id": result.tenant_id, "message_pk": result.message_pk},
            )
    if recorded:
        mp.report_wakeup.set()
        for result in recorded:
            await mp.hooks.receipt_received(mp, result.receipt, result)
    return results


async def _record_one(repo: ReceiptsRepo, receipt: Receipt, now: int) -> ReceiptResult:
    candidates = await _candidates(repo, receipt)
    if not candidates:
        return ReceiptResult(receipt, ReceiptOutcome.UNMATCHED)
    if len(candidates) > 1:
        return ReceiptResult(receipt, ReceiptOutcome.AMBIGUOUS)
    (row,) = candidates
    added = await repo.append_event(
        message_pk=int(row["pk"]),
        tenant_id=row["tenant_id"],
        event_type=str(receipt.event_type),
        event_ts=now if receipt.event_ts is None else int(receipt.event_ts),
        description=receipt.description or None,
        metadata=receipt.metadata,
        dedup_key=receipt.dedup_key,
    )
    outcome = ReceiptOutcome.RECORDED if added else ReceiptOutcome.DUPLICATE
    return ReceiptResult(receipt, outcome, int(row["pk"]), row["tenant_id"], row["id"])


async def _candidates(repo: ReceiptsRepo, receipt: Receipt) -> list[dict[str, Any]]:
    """The messages the receipt may be about, by the first correlation rule that matches."""
    tenant_id = receipt.tenant_id
    # an account id means nothing without its tenant
    account_id = receipt.account_id if tenant_id is not None else None
    if receipt.message_pk is not None:
        found = await repo.find(
            pk=int(receipt.message_pk), tenant_id=tenant_id, account_id=account_id
        )
        if found:
            return found
    header = normalize_message_id(receipt.message_id_header or "")
    if header:
        found = await repo.find(
            message_id_header=header, tenant_id=tenant_id, account_id=account_id
        )
        if found:
            if len(found) > 1 and receipt.recipient:
                # clients may reuse their own Message-IDs across tenants: the recipient decides
                found = _to_recipient(found, receipt.recipient) or found
            return found
    if receipt.client_message_id:
        found = await repo.find(
            client_message_id=receipt.client_message_id, tenant_id=tenant_id, account_id=account_id
        )
        if receipt.recipient:
            found = [r for r in _to_recipient(found, receipt.recipient) if r["status"] == "sent"]
        return found
    return []


def _to_recipient(rows: list[dict[str, Any]], recipient: str) -> list[dict[str, Any]]:
    wanted = recipient.strip().strip("<>").lower()
    return [
        row
        for row in rows
        if wanted in {address.lower() for address in recipients_of(row["payload"])}
    ]


def sent_message(row: dict[str, Any]) -> SentMessage:
    """A ``SentMessage`` from a ``ReceiptsRepo.find`` row."""
    return SentMessage(
        pk=int(row["pk"]),
        tenant_id=row["tenant_id"],
        id=row["id"],
        account_id=row["account_id"],
        status=row["status"],
        message_id_header=row["message_id_header"],
        recipients=recipients_of(row["payload"]),
        sent_ts=row["smtp_ts"],
    )


async def find_messages(
    mp: MailProxy,
    *,
    message_id_header: str | None = None,
    client_message_id: str | None = None,
    tenant_id: str | None = None,
    account_id: str | None = None,
    recipient: str | None = None,
    limit: int = 10,
) -> list[SentMessage]:
    """Messages by Message-ID and/or client id, optionally of one tenant/account and to one
    recipient; oldest first, at most ``limit``. Raises ``ValueError`` when neither id is given."""
    header = normalize_message_id(message_id_header or "") or None
    if header is None and not client_message_id:
        raise ValueError("find_messages needs message_id_header or client_message_id")
    rows = await mp.repos.receipts.find(
        message_id_header=header,
        client_message_id=client_message_id or None,
        tenant_id=tenant_id,
        account_id=account_id,
        limit=max(limit, 1) if recipient is None else 1000,
    )
    if recipient:
        rows = _to_recipient(rows, recipient)
    return [sent_message(row) for row in rows[: max(limit, 0)]]
