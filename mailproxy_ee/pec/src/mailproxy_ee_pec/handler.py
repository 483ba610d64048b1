"""The PEC receipt handler: reads every PEC account's mailbox and records its receipts.

The kernel's receipt loop calls :meth:`PecReceiptHandler.poll` every ``poll_interval`` seconds
(and at once on ``instance/run_now``), in one process only. Each round reads the list of PEC
accounts afresh, so accounts added, changed or deleted take effect from the next round, and
polls their mailboxes (a few at a time); a mailbox that fails records its ``last_error`` and
never stops the others.

Per mailbox: SELECT the folder; when the server, user or folder differ from those of the saved
state, or UIDVALIDITY changed, start over from UID 0. Then, a batch at a time and in UID order
(= mailbox order): fetch with ``BODY.PEEK[]``, parse, hand the receipts to
``mp.record_receipts`` (one transaction, in order), and only after that commit flag the batch
``\\Seen`` and save the last UID. A crash in between re-reads the batch, and the kernel's
de-duplication (the receipt's Message-ID, else mailbox + UIDVALIDITY + UID) adds nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from mailproxy_core import EventType, MailproxyError, Receipt, ReceiptOutcome
from mailproxy_ee_imap import FetchedMessage, ImapError, ImapMailbox, ImapSettings

from .parser import ParsedPecMail, PecKind, parse_pec_mail
from .store import PecMailbox, PecStore

if TYPE_CHECKING:
    from mailproxy_core import MailProxy

    from .settings import PecSettings

log = logging.getLogger(__name__)

HANDLER_NAME = "pec"
"""The receipt handler's name (its lease and status in the kernel)."""

SETTLING_EVENTS = frozenset({EventType.PEC_ACCEPTANCE.value, EventType.PEC_ERROR.value})
"""Events after which a message no longer waits for an acceptance (no ``pec_timeout``)."""


class MailboxError(Exception):
    """A mailbox could not be read; the text is safe to show (no password)."""


class PecReceiptHandler:
    """Polls every PEC account's mailbox (``ReceiptHandler`` of the kernel's receipt loop)."""

    def __init__(self, mp: MailProxy, settings: PecSettings) -> None:
        self.mp = mp
        self.settings = settings
        self.store = PecStore(mp)

    @classmethod
    def from_kernel(cls, mp: MailProxy) -> PecReceiptHandler:
        from .settings import PecSettings

        return cls(mp, mp.settings.plugin_settings("ee_pec", PecSettings))

    @property
    def poll_interval(self) -> float:
        return self.settings.poll_interval

    async def poll(self) -> None:
        """One round over every PEC mailbox; a failing mailbox never stops the others.

        Up to ``settings.concurrent_mailboxes`` mailboxes are read at the same time, so a few
        unreachable servers (each waiting out its timeout) do not hold up the rest.
        """
        gate = asyncio.Semaphore(self.settings.concurrent_mailboxes)

        async def one(mailbox: PecMailbox) -> None:
            async with gate:
                await self._poll_isolated(mailbox)

        await asyncio.gather(*(one(m) for m in await self.store.mailboxes()))

    async def _poll_isolated(self, mailbox: PecMailbox) -> None:
        try:
            await self.poll_mailbox(mailbox)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # isolated per mailbox, shown as its last_error
            text = _safe_text(exc, self._password_or_none(mailbox))
            expected = isinstance(exc, ImapError | MailboxError | OSError)
            log.log(
                logging.WARNING if expected else logging.ERROR,
                "PEC mailbox of account %s/%s failed: %s",
                mailbox.tenant_id,
                mailbox.account_id,
                text,
                exc_info=not expected,
                extra={"tenant_id": mailbox.tenant_id, "account_id": mailbox.account_id},
            )
            await self.store.poll_failed(mailbox.account_pk, text)
        else:
            await self.store.poll_succeeded(mailbox.account_pk, int(time.time()))

    async def poll_mailbox(self, mailbox: PecMailbox) -> int:
        """Read one mailbox's new messages; return how many events were recorded."""
        settings = await self.imap_settings(mailbox)
        recorded = 0
        async with ImapMailbox(settings) as imap:
            status = await imap.select()
            last_uid = mailbox.last_uid
            if (
                mailbox.mailbox_key != settings.mailbox_key
                or mailbox.uidvalidity != status.uidvalidity
            ):
                await self.store.start_over(
                    mailbox.account_pk, settings.mailbox_key, status.uidvalidity
                )
                last_uid = 0
            uids = await imap.uids_after(last_uid)
            for start in range(0, len(uids), self.settings.fetch_batch):
                batch = uids[start : start + self.settings.fetch_batch]
                fetched = await imap.fetch(batch)
                recorded += await self._record(
                    mailbox, settings.mailbox_key, status.uidvalidity, fetched
                )
                await imap.mark_seen(batch)
                await self.store.advance(mailbox.account_pk, status.uidvalidity, batch[-1])
        return recorded

    async def _record(
        self, mailbox: PecMailbox, mailbox_key: str, uidvalidity: int, fetched: list[FetchedMessage]
    ) -> int:
        receipts: list[Receipt] = []
        for message in fetched:
            parsed = await asyncio.to_thread(parse_pec_mail, message.raw)
            receipt = self._receipt(mailbox, parsed, f"{mailbox_key}|{uidvalidity}|{message.uid}")
            if receipt is None:
                _log_skipped(mailbox, message.uid, parsed)
            else:
                receipts.append(receipt)
        if not receipts:
            return 0
        results = await self.mp.record_receipts(receipts)
        settled: list[int] = []
        recorded = 0
        for result in results:
            if result.outcome is ReceiptOutcome.RECORDED:
                recorded += 1
            elif result.outcome is not ReceiptOutcome.DUPLICATE:
                log.info(
                    "PEC receipt for %s matches no message of tenant %s (%s); skipped",
                    result.receipt.message_id_header,
                    mailbox.tenant_id,
                    result.outcome,
                    extra={"tenant_id": mailbox.tenant_id, "account_id": mailbox.account_id},
                )
            if result.message_pk is not None and result.receipt.event_type in SETTLING_EVENTS:
                settled.append(result.message_pk)
        await self.store.settle(settled, int(time.time()))
        return recorded

    def _receipt(self, mailbox: PecMailbox, parsed: ParsedPecMail, uid_key: str) -> Receipt | None:
        if parsed.kind is not PecKind.RECEIPT or parsed.event is None:
            return None
        if parsed.reference_message_id is None:
            return None
        return Receipt(
            event_type=parsed.event,
            dedup_key=parsed.message_id or uid_key,
            description=parsed.description,
            metadata=parsed.metadata,
            message_id_header=parsed.reference_message_id,
            tenant_id=mailbox.tenant_id,
        )

    async def imap_settings(self, mailbox: PecMailbox) -> ImapSettings:
        """How to reach the mailbox: its own login, else the sending account's."""
        user = mailbox.imap_user
        password = self._password(mailbox)
        if user is None or password is None:
            account = await self.mp.account(mailbox.tenant_id, mailbox.account_id)
            if account is None:  # deleted between the listing and now
                raise MailboxError("the account no longer exists")
            user = user if user is not None else account.user
            password = password if password is not None else account.password
        return ImapSettings(
            host=mailbox.imap_host,
            port=mailbox.imap_port,
            ssl=mailbox.imap_ssl,
            user=user or "",
            password=password or "",
            folder=mailbox.imap_folder,
            timeout=self.settings.imap_timeout,
        )

    def _password_or_none(self, mailbox: PecMailbox) -> str | None:
        try:
            return self._password(mailbox)
        except MailproxyError:
            return None

    def _password(self, mailbox: PecMailbox) -> str | None:
        if not mailbox.imap_password:
            return None
        return self.mp.secrets.decrypt(mailbox.imap_password)


def _safe_text(exc: BaseException, password: str | None) -> str:
    text = str(exc) or type(exc).__name__
    if password:
        text = text.replace(password, "***")
    return text


def _log_skipped(mailbox: PecMailbox, uid: int, parsed: ParsedPecMail) -> None:
    if parsed.kind is PecKind.RECEIPT and parsed.event is None:
        why = f"receipt {parsed.receipt} gives no event"
    elif parsed.kind is PecKind.RECEIPT:
        why = f"receipt {parsed.receipt} names no message (no X-Riferimento-Message-ID)"
    elif parsed.kind is PecKind.ENVELOPE:
        why = "a transport envelope (incoming certified mail), not a receipt"
    else:
        why = "not a PEC receipt"
    log.info(
        "PEC mailbox %s/%s: message UID %s skipped: %s",
        mailbox.tenant_id,
        mailbox.account_id,
        uid,
        why,
        extra={"tenant_id": mailbox.tenant_id, "account_id": mailbox.account_id},
    )
