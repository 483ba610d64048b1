"""Per-tenant reporting state, and the writer that makes it durable (``reporting.py``).

``TenantState`` is where the reporting loop stands with one tenant, with sub-second precision; it
mirrors the ``tenant_sync_state`` row and adds what only the running process needs (the task, the
cursor of events handed over but not yet marked reported).

``StateWriter`` writes acknowledgements and failures in the order they happened, off the path of
the exchanges: a tenant's next report does not wait for the database to record the previous one.
Everything queued while a write is under way, or within ``write_gap`` of the last one, goes out
together (for one tenant: one transaction marking every acknowledged event and storing the latest
state). A write that fails is retried (while the database is away: one WARNING, a reminder at
most once a minute, one INFO when it is back); a tenant deleted meanwhile is forgotten. Until an
acknowledgement is written, the tenant's ``cursor`` keeps its events from being handed over
again; if the process stops before the write, they are reported again after the restart
(at-least-once, ``event_id`` lets clients de-duplicate).
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..db.outage import OutageLog, is_unavailable

if TYPE_CHECKING:
    from ..kernel import MailProxy

log = logging.getLogger(__name__)

MAX_BACKOFF = 300.0
"""Longest wait, in seconds, between two attempts to a failing tenant."""

MAX_WRITE_GAP = 1.0
"""Most seconds between two writes of acknowledgements (the first after a pause is at once)."""


def write_gap(report_interval: float, test_mode: bool) -> float:
    """Seconds the writer gathers outcomes after a write: ``MAX_WRITE_GAP``, or a quarter of a
    shorter report interval; none in test mode (tests read the state right after a report)."""
    return 0.0 if test_mode else min(MAX_WRITE_GAP, report_interval / 4)


WRITE_RETRY_DELAY = 0.5
"""Seconds before a failed state write is tried again."""


def backoff_delay(failures: int, report_interval: float) -> float:
    """Seconds to wait after ``failures`` consecutive failures: the report interval
    (at least 1 s), doubling per failure, at most ``MAX_BACKOFF``."""
    step = max(1.0, report_interval)
    return min(MAX_BACKOFF, step * 2 ** min(max(failures, 1) - 1, 30))


@dataclass
class TenantState:
    """Where the reporting loop stands with one tenant, and what its task should do next."""

    last_sync: float | None = None
    dnd_until: float | None = None
    failures: int = 0
    retry_at: float | None = None
    active: bool = True
    task: asyncio.Task[None] | None = None
    more: bool = False
    """New events or a request arrived while the task ran: look again before stopping."""
    poll: bool = False
    """Exchange even without events (idle poll, ``run_now`` for this tenant)."""
    cursor: int | None = None
    """Highest event row id acknowledged by the client (``None``: start from the outbox)."""
    unwritten: int = 0
    """Acknowledged events whose ``reported_ts`` is not written yet."""

    def backing_off(self, now: float) -> bool:
        """Whether a failure's back-off is still running."""
        return self.failures > 0 and self.retry_at is not None and now < self.retry_at

    def next_due(self, interval: float) -> float | None:
        """When this tenant next needs an exchange without new events (``None``: never)."""
        if self.failures and self.retry_at is not None:
            return self.retry_at
        if not self.active:
            return None
        due = 0.0 if self.last_sync is None else self.last_sync + interval
        return max(due, self.dnd_until or 0.0)

    def settle_cursor(self) -> None:
        """Forget the cursor once nothing is in flight: the next task reads the outbox afresh
        (and so also finds an event that was committed late with a lower id)."""
        if self.task is None and self.unwritten == 0:
            self.cursor = None


@dataclass
class Outcome:
    """One exchange's result, to be written: acknowledged events, or a failure."""

    tenant_id: str
    ts: float
    ok: bool
    event_ids: list[int] = field(default_factory=list)
    next_sync_after: float | None = None
    failures: int = 0
    retry_at: float | None = None
    error: str = ""


class StateWriter:
    """Writes ``Outcome``s in order, batched per tenant; owned by the reporting loop."""

    def __init__(self, mp: MailProxy, states: dict[str, TenantState]) -> None:
        self.mp = mp
        self.states = states
        self._queue: list[Outcome] = []
        self._ready = asyncio.Event()
        self._closing = False
        self.writing = False
        self.gap = write_gap(mp.settings.report_interval, mp.settings.test_mode)
        self._outage = OutageLog(log, effect="acknowledgements are recorded when it is back")

    @property
    def pending(self) -> bool:
        """Whether outcomes are queued or being written."""
        return self.writing or bool(self._queue)

    def put(self, outcome: Outcome) -> None:
        """Queue an outcome; the writer task picks it up at once."""
        self._queue.append(outcome)
        self._ready.set()

    async def run(self) -> None:
        """Write queued outcomes until ``close()`` was called and nothing is left."""
        while not (self._closing and not self._queue):
            await self._ready.wait()
            self._ready.clear()
            await self.flush()
            if self.gap and not self._closing:
                # Gather what comes next into one transaction: on SQLite every write
                # transaction makes the dispatcher wait for the write lock.
                await asyncio.sleep(self.gap)

    def close(self) -> None:
        """Ask ``run`` to return once everything queued is written (never cancel a write: an
        interrupted statement would leave its connection unusable)."""
        self._closing = True
        self._ready.set()

    async def flush(self) -> None:
        """Write everything queued so far; retries while the database fails."""
        while self._queue:
            batch, self._queue = self._queue, []
            self.writing = True
            try:
                await self._write(batch)
            finally:
                self.writing = False

    async def _write(self, batch: list[Outcome]) -> None:
        by_tenant: dict[str, list[Outcome]] = {}
        for outcome in batch:
            by_tenant.setdefault(outcome.tenant_id, []).append(outcome)
        for tenant_id, outcomes in by_tenant.items():
            try:
                await self._write_tenant(tenant_id, outcomes)
            except asyncio.CancelledError:
                self._queue[:0] = outcomes
                raise
            except Exception as exc:
                if not await self._tenant_gone(tenant_id):
                    if is_unavailable(exc):
                        self._outage.failed(exc)  # bounded: not one traceback per retry
                    else:
                        log.exception(
                            "could not record delivery reports of tenant %s; retrying",
                            tenant_id,
                            extra={"tenant_id": tenant_id},
                        )
                    self._queue[:0] = outcomes
                    await asyncio.sleep(WRITE_RETRY_DELAY)
                    continue
                # else the tenant was deleted, with its events and state: nothing to record
            else:
                self._outage.succeeded()
            state = self.states.get(tenant_id)
            if state is not None:
                state.unwritten -= sum(len(o.event_ids) for o in outcomes)
                state.settle_cursor()

    async def _tenant_gone(self, tenant_id: str) -> bool:
        try:
            return await self.mp.repos.tenants.get(tenant_id) is None
        except asyncio.CancelledError:
            raise
        except Exception:  # the database is down: not gone, retry later
            return False

    async def _write_tenant(self, tenant_id: str, outcomes: list[Outcome]) -> None:
        repo = self.mp.repos.sync_state
        acknowledged = [event_id for o in outcomes for event_id in o.event_ids]
        last = outcomes[-1]
        successes = [o for o in outcomes if o.ok]
        if acknowledged or last.ok:
            success = last if last.ok else successes[-1]
            dnd = success.next_sync_after
            await repo.record_success(
                tenant_id,
                int(success.ts),
                None if dnd is None else math.ceil(dnd),
                reported=acknowledged,
            )
        if not last.ok:
            assert last.retry_at is not None
            await repo.record_failure(
                tenant_id,
                int(last.ts),
                math.ceil(last.retry_at),
                last.error,
                failures=last.failures,
            )
