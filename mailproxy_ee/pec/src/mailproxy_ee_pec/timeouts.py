"""``pec_timeout``: messages sent through a PEC account that never got an acceptance.

The message is remembered when the transport accepts it (``mailproxy_message_sent``). A
background task looks every ``poll_interval`` seconds (at most every minute) for remembered
messages older than ``acceptance_timeout`` with neither a ``pec_acceptance`` nor a
``pec_error`` recorded, and records one ``pec_timeout`` event for each through the kernel. The
kernel de-duplicates the event per message, so several processes never record it twice; a
receipt that arrives later is still recorded as usual.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import TYPE_CHECKING

from mailproxy_core import (
    EventType,
    MailProxy,
    Message,
    Receipt,
    ReceiptOutcome,
    run_every,
)

from .store import PecStore

if TYPE_CHECKING:
    from .settings import PecSettings

log = logging.getLogger(__name__)

TIMEOUT_DEDUP_KEY = "pec_timeout"
"""De-duplication key of the timeout event: one per message."""

MAX_CHECK_INTERVAL = 60.0


PEC_ACCOUNTS_TTL = 5.0
"""Seconds the list of PEC accounts is reused by ``remember_sent`` before it is read again."""

_pec_accounts: weakref.WeakKeyDictionary[MailProxy, tuple[float, dict[tuple[str, str], str]]] = (
    weakref.WeakKeyDictionary()
)


def forget_pec_accounts(mp: MailProxy) -> None:
    """PEC accounts changed in this process: the next ``remember_sent`` reads them again."""
    _pec_accounts.pop(mp, None)


async def _pec_account_pks(mp: MailProxy) -> dict[tuple[str, str], str]:
    # Every sent message asks; reading the (small) list at most every few seconds keeps the
    # send path of tenants without PEC free of an extra query per message.
    now = time.monotonic()
    cached = _pec_accounts.get(mp)
    if cached is not None and cached[0] > now:
        return cached[1]
    pks = {(m.tenant_id, m.account_id): m.account_pk for m in await PecStore(mp).mailboxes()}
    _pec_accounts[mp] = (now + PEC_ACCOUNTS_TTL, pks)
    return pks


async def remember_sent(mp: MailProxy, message: Message) -> None:
    """Remember ``message`` when its account is a PEC account (called once it is sent).

    An account made a PEC account in another process is known here within
    ``PEC_ACCOUNTS_TTL`` seconds.
    """
    if message.account_id is None:
        return
    account_pk = (await _pec_account_pks(mp)).get((message.tenant_id, message.account_id))
    if account_pk is None:
        return
    await PecStore(mp).track_sent(message.pk, account_pk, message.tenant_id, int(time.time()))


async def record_timeouts(mp: MailProxy, settings: PecSettings, now: int | None = None) -> int:
    """Record ``pec_timeout`` for every overdue message; return how many were recorded."""
    timeout = int(settings.acceptance_timeout)
    if timeout <= 0:
        return 0
    now = int(time.time()) if now is None else now
    store = PecStore(mp)
    recorded = 0
    while True:
        overdue = await store.overdue(now - timeout)
        if not overdue:
            return recorded
        receipts = [
            Receipt(
                event_type=EventType.PEC_TIMEOUT.value,
                dedup_key=TIMEOUT_DEDUP_KEY,
                description=f"no acceptance receipt within {timeout} seconds",
                metadata={"timeout": timeout},
                message_pk=int(row["message_pk"]),
                tenant_id=row["tenant_id"],
            )
            for row in overdue
        ]
        results = await mp.record_receipts(receipts)
        recorded += sum(1 for r in results if r.outcome is ReceiptOutcome.RECORDED)
        await store.timed_out([int(row["message_pk"]) for row in overdue], now)


async def run_timeouts(mp: MailProxy) -> None:
    """Background task: record overdue ``pec_timeout`` events until cancelled."""
    from .settings import PecSettings

    settings = mp.settings.plugin_settings("ee_pec", PecSettings)
    if settings.acceptance_timeout <= 0:
        return
    await run_every(
        min(settings.poll_interval, MAX_CHECK_INTERVAL),
        lambda: record_timeouts(mp, settings),
        log=log,
        failed="pec_timeout check failed",
        effect="pec_timeout checks wait until it is back",
    )
