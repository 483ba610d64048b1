"""The ``report_retention`` background task: deletes what is finished and fully reported.

A message is deleted, with its events, when it is finished (``sent`` or ``error``), every one of
its events has been reported, and it has not changed for ``report_retention_seconds``
(``MAILPROXY_REPORT_RETENTION_SECONDS``, default 7 days). That is ``messages/cleanup`` applied to
every tenant, on a timer: ``MessagesRepo.cleanup`` is the one place the rule is written.

``report_retention_seconds = 0`` turns retention off (as in genro-mail-proxy): nothing is deleted
automatically, ``messages/cleanup`` still works on demand. In test mode the task does nothing,
like the reporting loop, so tests decide when data goes away. While the database is away the
task logs one WARNING, a reminder at most once a minute, and one INFO when it is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..db.outage import run_every
from ..db.repos.messages import MessagesRepo

if TYPE_CHECKING:
    from ..kernel import MailProxy

log = logging.getLogger(__name__)

MAX_RETENTION_INTERVAL = 3600.0
"""Longest pause, in seconds, between two retention rounds."""


def retention_interval(report_interval: float) -> float:
    """Seconds between retention rounds: the report interval, within 1 s and one hour."""
    return min(max(report_interval, 1.0), MAX_RETENTION_INTERVAL)


async def apply_retention(mp: MailProxy, clock: Callable[[], float] = time.time) -> int:
    """Delete every tenant's finished, fully reported messages older than the retention.

    ``clock`` gives "now" (tests move it forward). Returns how many messages were deleted;
    0 when retention is off.
    """
    keep = mp.settings.report_retention_seconds
    if keep <= 0:
        return 0
    repo = MessagesRepo(mp.db, clock=clock)
    removed = 0
    for entry in await mp.repos.events.outbox_overview():
        count = await repo.cleanup(entry.tenant_id, keep)
        if count:
            log.info(
                "retention deleted %d messages of tenant %s",
                count,
                entry.tenant_id,
                extra={"tenant_id": entry.tenant_id},
            )
        removed += count
    return removed


async def run_retention(mp: MailProxy) -> None:
    """The ``report_retention`` background task (``serve`` only)."""
    if mp.settings.test_mode:
        return
    await run_every(
        retention_interval(mp.settings.report_interval),
        lambda: apply_retention(mp),
        log=log,
        failed="the retention round failed",
        effect="retention waits until it is back",
    )
