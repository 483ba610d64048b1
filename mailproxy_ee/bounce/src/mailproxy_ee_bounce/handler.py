"""The ``ee_bounce`` receipt handler: reads the bounce mailbox and records ``bounce`` events.

The kernel's receipt loop calls ``poll()`` every ``poll_interval`` seconds, in one process only
(a lease in the database), and at once after ``instance/run_now``, ``set_bounce_config`` and
``reload_bounce``. A poll reads the stored configuration (so changes apply without a restart),
connects (or reuses its connection), selects the folder and examines every message after the
saved UID, in batches: classify, hand the receipts to ``mp.record_receipts`` (one transaction),
suppress the hard-bounced and complaining recipients, save the position, and only then flag the
batch ``\\Seen``. A failure leaves the position where the last durable batch ended; the failure
text (never a password) is stored as ``last_error`` and raised to the loop, which tries again at
the next interval.

Where the server offers IDLE, a second connection waits in IDLE and asks the kernel for a poll as
soon as new mail arrives; it stops by itself when this process stops polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mailproxy_core import MailproxyError, MetaKey, ReceiptOutcome, ReceiptResult
from mailproxy_ee_imap import ImapError, ImapMailbox, ImapSettings

from .classify import COMPLAINT, HARD, Notice, classify
from .receipts import receipts_for
from .settings import SECTION, BounceSettings
from .store import BounceConfig, BounceStore
from .verp import verp_message_pk

if TYPE_CHECKING:
    from mailproxy_core import MailProxy

log = logging.getLogger(__name__)

HANDLER_NAME = "ee_bounce"
IDLE_ROUND = 300.0
"""Longest single IDLE of the watcher before it checks that it is still wanted."""


class BounceMailboxError(MailproxyError):
    """The bounce mailbox could not be read (the text names the server and step, no secret)."""

    status = 502
    code = "bounce_mailbox_error"


class BounceMailboxHandler:
    """Reads the bounce mailbox (see the module docstring)."""

    def __init__(self, mp: MailProxy, settings: BounceSettings) -> None:
        self.mp = mp
        self.settings = settings
        self.store = BounceStore(mp)
        self._interval = float(settings.poll_interval)
        self._box: ImapMailbox | None = None
        self._box_settings: ImapSettings | None = None
        self._box_reload_seq = 0
        self._watcher: asyncio.Task[None] | None = None
        self._watch_settings: ImapSettings | None = None
        self._last_poll = 0.0
        self._read_uidnext: int | None = None  # UIDNEXT when the last poll selected the folder
        self._lock = asyncio.Lock()

    @classmethod
    def from_kernel(cls, mp: MailProxy) -> BounceMailboxHandler:
        """Build it from the kernel's ``ee_bounce`` settings."""
        settings = mp.plugin_settings(SECTION)
        assert isinstance(settings, BounceSettings)
        return cls(mp, settings)

    @property
    def poll_interval(self) -> float:
        """Seconds until the next poll: the stored ``poll_interval``, else the setting."""
        return self._interval

    async def poll(self) -> None:
        """Read the mailbox once (see the module docstring).

        Raises:
            BounceMailboxError: the mailbox could not be read; ``last_error`` holds the text.
        """
        async with self._lock:
            self._last_poll = time.monotonic()
            config = await self.store.config()
            self._interval = float(config.poll_interval or self.settings.poll_interval)
            if not config.enabled or not config.imap_host:
                await self._disconnect()
                await self._stop_watcher()
                return
            try:
                imap = self._imap_settings(config)
                await self._read(config, imap)
            except (ImapError, MailproxyError) as exc:
                await self._disconnect()
                await self._stop_watcher()  # started again by the next successful poll
                text = str(exc)
                await self.store.save_poll_result(ok=False, error=text)
                log.warning("bounce mailbox: %s", text)
                raise BounceMailboxError(text) from None
            await self.store.save_poll_result(ok=True)
            if self.settings.idle:
                self._ensure_watcher(imap)

    async def aclose(self) -> None:
        """Stop the IDLE watcher and close the connection (kernel shutdown)."""
        await self._stop_watcher()
        await self._disconnect()

    # -- reading --------------------------------------------------------------------------

    def _imap_settings(self, config: BounceConfig) -> ImapSettings:
        password = self.mp.secrets.decrypt(config.imap_password) if config.imap_password else ""
        return ImapSettings(
            host=config.imap_host or "",
            port=config.imap_port,
            ssl=config.imap_ssl,
            user=config.imap_user or "",
            password=password,
            folder=config.imap_folder or "INBOX",
            timeout=self.settings.imap_timeout,
        )

    async def _connected(
        self, config: BounceConfig, imap: ImapSettings
    ) -> tuple[ImapMailbox, bool]:
        """The open connection when still valid for these settings, else a new one; the flag
        says whether it was reused."""
        box = self._box
        if (
            box is not None
            and box.connected
            and self._box_settings == imap
            and self._box_reload_seq == config.reload_seq
        ):
            return box, True
        await self._disconnect()
        box = ImapMailbox(imap)
        await box.connect()
        self._box, self._box_settings, self._box_reload_seq = box, imap, config.reload_seq
        return box, False

    async def _read(self, config: BounceConfig, imap: ImapSettings) -> None:
        box, reused = await self._connected(config, imap)
        try:
            status = await box.select()
        except ImapError:
            if not reused:
                raise
            # a kept connection may have been dropped by the server meanwhile: once more, fresh
            await self._disconnect()
            box, _ = await self._connected(config, imap)
            status = await box.select()
        self._read_uidnext = status.uidnext
        key = imap.mailbox_key
        last_uid = config.last_uid
        if config.mailbox_key != key or config.uidvalidity != status.uidvalidity:
            if config.mailbox_key is not None:
                log.info(
                    "bounce mailbox %s: new mailbox or UIDVALIDITY %s, reading it from the start",
                    key,
                    status.uidvalidity,
                )
            last_uid = 0
            await self.store.save_position(key, status.uidvalidity, 0)
        uids = await box.uids_after(last_uid)
        batch_size = self.settings.fetch_batch
        for start in range(0, len(uids), batch_size):
            batch = uids[start : start + batch_size]
            messages = await box.fetch(batch)
            # parsing is CPU work (about a millisecond a notice): keep the event loop free
            notices = await asyncio.to_thread(_classify_all, [m.raw for m in messages])
            receipts = []
            for message, notice in zip(messages, notices, strict=True):
                if not notice.bounces:
                    log.info(
                        "bounce mailbox %s: UID %s is %s, not a bounce; skipped",
                        key,
                        message.uid,
                        notice.kind.value,
                        extra={"source_message_id": notice.notice_message_id},
                    )
                    continue
                receipts.extend(
                    receipts_for(
                        notice,
                        mailbox_key=key,
                        uidvalidity=status.uidvalidity,
                        uid=message.uid,
                        message_pk=verp_message_pk(notice.delivered_to, config.return_path)
                        if self.settings.verp
                        else None,
                    )
                )
            if receipts:
                results = await self.mp.record_receipts(receipts)
                await self._after_recording(results)
            await self.store.save_position(key, status.uidvalidity, batch[-1])
            await box.mark_seen(batch)

    async def _after_recording(self, results: Sequence[ReceiptResult]) -> None:
        """Log what matched nothing; suppress hard-bounced and complaining recipients (one
        transaction for the batch)."""
        suppress: list[tuple[str, str, str, Any]] = []
        for result in results:
            receipt = result.receipt
            metadata = receipt.metadata
            if result.outcome != ReceiptOutcome.RECORDED:
                level = (
                    logging.DEBUG if result.outcome == ReceiptOutcome.DUPLICATE else logging.INFO
                )
                log.log(
                    level,
                    "bounce for %s (%s): %s",
                    metadata.get(MetaKey.RECIPIENT),
                    receipt.message_id_header or receipt.client_message_id,
                    result.outcome.value,
                )
                continue
            bounce_type = metadata.get(MetaKey.BOUNCE_TYPE)
            recipient = metadata.get(MetaKey.RECIPIENT)
            if (
                self.settings.suppress
                and bounce_type in (HARD, COMPLAINT)
                and recipient
                and result.tenant_id
            ):
                reason = "complaint" if bounce_type == COMPLAINT else "hard_bounce"
                suppress.append(
                    (result.tenant_id, recipient, reason, metadata.get(MetaKey.BOUNCE_CODE))
                )
        if suppress:
            async with self.mp.data.transaction():
                for tenant_id, recipient, reason, code in suppress:
                    await self.store.add_suppression(tenant_id, recipient, reason, code)

    async def _disconnect(self) -> None:
        box, self._box, self._box_settings = self._box, None, None
        if box is not None:
            await box.close()

    # -- IDLE watcher ---------------------------------------------------------------------

    def _ensure_watcher(self, imap: ImapSettings) -> None:
        alive = self._watcher is not None and not self._watcher.done()
        if alive and self._watch_settings == imap:
            return
        if alive:
            assert self._watcher is not None
            self._watcher.cancel()
        self._watch_settings = imap
        self._watcher = asyncio.get_running_loop().create_task(
            self._watch(imap), name="ee_bounce-idle"
        )

    async def _stop_watcher(self) -> None:
        task, self._watcher = self._watcher, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _watch_wanted(self) -> bool:
        # this process stopped polling (lease lost, mailbox disabled): the watcher goes too
        return time.monotonic() - self._last_poll < 3 * self._interval + 60

    async def _watch(self, imap: ImapSettings) -> None:
        """Wait in IDLE on a second connection; new mail asks the kernel for a poll."""
        while self._watch_wanted():
            try:
                async with ImapMailbox(imap) as box:
                    status = await box.select()
                    if not box.supports_idle:
                        return
                    if status.uidnext is None or status.uidnext != self._read_uidnext:
                        # mail arrived between the last poll and this IDLE: IDLE would not tell
                        self.mp.request_receipt_poll(HANDLER_NAME)
                    while self._watch_wanted():
                        if await box.idle(min(IDLE_ROUND, max(self._interval, 1.0) * 5)):
                            self.mp.request_receipt_poll(HANDLER_NAME)
            except ImapError as exc:
                log.debug("bounce mailbox IDLE: %s", exc)
                await asyncio.sleep(self._interval)


def _classify_all(raws: list[bytes]) -> list[Notice]:
    return [classify(raw) for raw in raws]
