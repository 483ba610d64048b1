"""IMAP IDLE: new receipts are read as soon as they arrive, where the server offers IDLE.

A background task keeps one IDLE session per PEC mailbox in the process that holds the ``pec``
receipt handler's lease (so a mailbox never has watchers in several processes). When the server
announces new mail, the watcher asks the kernel for an immediate poll of the ``pec`` handler; the
poll itself is the ordinary one (position, de-duplication, ``\\Seen``). Polling every
``poll_interval`` seconds stays the fallback: a server without IDLE, or a watcher that failed,
only delays receipts until the next round. Watchers follow the list of PEC accounts every
``RESYNC_SECONDS`` and restart when an account's IMAP settings change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from mailproxy_core import OutageLog, is_unavailable
from mailproxy_ee_imap import ImapMailbox, ImapSettings

from .handler import HANDLER_NAME, PecReceiptHandler
from .store import PecStore

if TYPE_CHECKING:
    from mailproxy_core import MailProxy

log = logging.getLogger(__name__)

RESYNC_SECONDS = 5.0
"""How often the task compares its watchers with the PEC accounts and the lease."""

IDLE_SECONDS = 300.0
"""One IDLE command lasts at most this long before it is renewed."""


async def run_idle_watchers(mp: MailProxy) -> None:
    """Background task: IDLE watchers for every PEC mailbox while this process polls them."""
    handler = PecReceiptHandler.from_kernel(mp)
    watchers: dict[str, tuple[ImapSettings, asyncio.Task[None]]] = {}
    outage = OutageLog(log, effect="PEC IDLE watchers stay as they are until it is back")
    try:
        while True:
            try:
                wanted = await _wanted(mp, handler)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database or the key: logged, tried again next time
                if is_unavailable(exc):
                    outage.failed(exc)  # bounded: not a traceback every RESYNC_SECONDS
                else:
                    log.exception("PEC IDLE watchers: cannot read the PEC accounts")
                wanted = {pk: s for pk, (s, _) in watchers.items()}
            else:
                outage.succeeded()
            for pk in list(watchers):
                settings, task = watchers[pk]
                if wanted.get(pk) != settings or task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                    del watchers[pk]
            for pk, settings in wanted.items():
                if pk not in watchers:
                    task = asyncio.create_task(_watch(mp, settings, handler.poll_interval))
                    watchers[pk] = (settings, task)
            await asyncio.sleep(RESYNC_SECONDS)
    finally:
        for _, task in watchers.values():
            task.cancel()
        for _, task in watchers.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _wanted(mp: MailProxy, handler: PecReceiptHandler) -> dict[str, ImapSettings]:
    status = mp.receipt_handler_status(HANDLER_NAME)
    if status is None or not status.polling:
        return {}
    return {m.account_pk: await handler.imap_settings(m) for m in await PecStore(mp).mailboxes()}


async def _watch(mp: MailProxy, settings: ImapSettings, retry_after: float) -> None:
    """IDLE on one mailbox until cancelled; each announcement asks for a poll."""
    while True:
        try:
            async with ImapMailbox(settings) as imap:
                if not imap.supports_idle:
                    return  # polling only
                await imap.select()
                # Mail that arrived between the last poll and this IDLE is never announced.
                mp.request_receipt_poll(HANDLER_NAME)
                while True:
                    if await imap.idle(IDLE_SECONDS):
                        mp.request_receipt_poll(HANDLER_NAME)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the poll records the mailbox's errors; here only a log line
            log.debug("PEC IDLE on %s stopped (%s); polling meanwhile", settings.address, exc)
        await asyncio.sleep(retry_after)
