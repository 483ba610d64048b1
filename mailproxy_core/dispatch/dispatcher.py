"""The dispatcher: claims ready messages and sends them, within concurrency and rate limits.

One ``Dispatcher`` per process (``serve`` and ``worker``), run as the ``dispatcher`` background
task. Each round it claims at most as many messages as it has free send slots (global limit
``max_concurrency``; the claim itself enforces ``max_per_account`` across all processes) and
starts them in priority order. Outcomes are written in small groups by one writer task, each
group in one transaction with its events (DESIGN.md §6, §9).

Wake-ups: an enqueued immediate message sets ``mp.dispatch_wakeup``; a finished send frees a
slot; otherwise the queue is polled every ``send_loop_interval`` seconds. In test mode the
dispatcher only runs when ``instance/run_now`` asks, and then until nothing is ready.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any

from ..db.repos.queue import Holds, Outcome, QueueRepo, WrittenEvent
from ..models import Message
from .attempt import attempt_delivery
from .directory import Directory

if TYPE_CHECKING:
    from ..kernel import MailProxy

log = logging.getLogger(__name__)

WRITE_GROUP = 64
"""Most outcomes written in one transaction."""

WRITE_DELAY = 0.005
"""Seconds the writer waits for more outcomes before committing a group."""

HOLDS_TTL = 1.0
"""Seconds a snapshot of inactive tenants and suspended batches is trusted."""


def message_from_row(row: dict[str, Any]) -> Message:
    """A ``Message`` value from a claimed row."""
    return Message(
        pk=row["pk"],
        tenant_id=row["tenant_id"],
        id=row["id"],
        account_id=row["account_id"],
        status=row["status"],
        priority=row["priority"],
        payload=row["payload"],
        batch_code=row["batch_code"],
        account_pk=row["account_pk"],
        deferred_ts=row["deferred_ts"],
        next_attempt_ts=row["next_attempt_ts"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class Dispatcher:
    """Claims and sends; owned by the ``dispatcher`` background task of one kernel."""

    def __init__(self, mp: MailProxy) -> None:
        self.mp = mp
        self.settings = mp.settings
        self.queue = QueueRepo(mp.db)
        self.directory = Directory(mp, self.queue)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self._slot_freed = asyncio.Event()
        self._outcomes: list[tuple[Outcome, Message, Any]] = []
        self._outcome_ready = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._stopping = False
        self._holds: tuple[float, Holds] | None = None
        self._last_reclaim = 0.0
        self.idle = asyncio.Event()
        """Set whenever a ``run_until_idle`` pass finished (tests wait on it)."""

    # -- main loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Dispatch until cancelled; on cancellation drain in-flight sends and release leases."""
        writer = asyncio.create_task(self._write_outcomes(), name="mailproxy:outcome-writer")
        try:
            if self.settings.test_mode:
                await self._run_on_request()
            else:
                await self._run_forever()
        finally:
            self._stopping = True
            await asyncio.shield(self._drain(writer))

    async def _run_forever(self) -> None:
        while True:
            claimed = await self.round()
            if claimed:
                continue
            await self._wait(self.settings.send_loop_interval)

    async def _run_on_request(self) -> None:
        wakeup = self.mp.dispatch_wakeup
        while True:
            await wakeup.wait()
            wakeup.clear()
            if not self.mp.consume_run_now():
                continue
            self.idle.clear()
            await self.run_until_idle()

    async def run_until_idle(self) -> None:
        """Send everything that is ready now, then return (``run_now`` in test mode)."""
        while True:
            if await self.round():
                continue
            if self.in_flight:
                await self._wait_for_slot(self.settings.send_loop_interval)
            elif self._outcomes or self._write_lock.locked():
                # Outcomes not yet written still hold their rows as ``sending``.
                await self._flush_outcomes_now()
            else:
                self.idle.set()
                return

    async def round(self) -> int:
        """Claim as many messages as there are free slots and start them; return how many."""
        now = time.time()
        if now - self._last_reclaim >= min(5.0, self.settings.lease_seconds / 2):
            self._last_reclaim = now
            reclaimed = await self.queue.reclaim_expired(int(now))
            if reclaimed:
                log.warning("reclaimed %d messages whose lease expired", reclaimed)
        free = self.settings.max_concurrency - len(self.in_flight)
        if free <= 0:
            return 0
        rows = await self.queue.claim(
            owner=self.owner,
            limit=min(free, self.settings.batch_size),
            per_account=self.settings.max_per_account,
            lease_seconds=self.settings.lease_seconds,
            holds=await self._current_holds(),
        )
        for row in rows:  # already in priority, then FIFO, order
            message = message_from_row(row)
            task = asyncio.create_task(self._send(message), name=f"mailproxy:send:{message.pk}")
            self.in_flight[message.pk] = task
        return len(rows)

    async def _current_holds(self) -> Holds:
        now = time.monotonic()
        if self._holds is None or now - self._holds[0] > HOLDS_TTL:
            self._holds = (now, await self.queue.holds())
        return self._holds[1]

    def forget_cached(self) -> None:
        """Forget cached holds, accounts and tenants (changed through this process's API)."""
        self._holds = None
        self.directory.forget()

    async def _wait(self, seconds: float) -> None:
        """Sleep until woken (immediate message, run_now), a slot frees, or ``timeout``."""
        wakeup = self.mp.dispatch_wakeup
        waiters = [asyncio.ensure_future(wakeup.wait())]
        if self.in_flight:
            waiters.append(asyncio.ensure_future(self._slot_freed.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        wakeup.clear()
        self._slot_freed.clear()

    async def _wait_for_slot(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._slot_freed.wait(), seconds)
        except TimeoutError:
            pass
        self._slot_freed.clear()

    # -- one message ---------------------------------------------------------------------------

    async def _send(self, message: Message) -> None:
        try:
            outcome, extra = await attempt_delivery(self.mp, message, self.directory)
            self._outcomes.append((outcome, message, extra))
            self._outcome_ready.set()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in the kernel or a plugin: keep the message, log loudly
            log.exception("unexpected failure while sending message %s", message.pk)
        finally:
            self.in_flight.pop(message.pk, None)
            self._slot_freed.set()

    # -- outcomes ------------------------------------------------------------------------------

    async def _write_outcomes(self) -> None:
        while True:
            await self._outcome_ready.wait()
            if len(self._outcomes) < WRITE_GROUP and not self._stopping:
                await asyncio.sleep(WRITE_DELAY)
            self._outcome_ready.clear()
            await self._flush_outcomes_now()

    async def _flush_outcomes_now(self) -> None:
        # One writer at a time: returning means every outcome collected so far is written.
        async with self._write_lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        while self._outcomes:
            group, self._outcomes = self._outcomes[:WRITE_GROUP], self._outcomes[WRITE_GROUP:]
            try:
                written = await self.queue.record(self.owner, [o for o, _m, _x in group])
            except asyncio.CancelledError:
                self._outcomes[:0] = group
                raise
            except Exception:
                log.exception("writing %d outcomes failed; their leases will expire", len(group))
                continue
            await self._after_write(group, written)

    async def _after_write(
        self, group: list[tuple[Outcome, Message, Any]], written: list[WrittenEvent]
    ) -> None:
        self._slot_freed.set()  # written rows free their accounts' in-flight capacity
        if written:
            self.mp.report_wakeup.set()
        kept = {event.pk for event in written}
        hooks = self.mp.hooks
        for outcome, message, extra in group:
            if outcome.pk not in kept:
                continue
            if outcome.status == "sent":
                await hooks.message_sent(self.mp, message, extra)
            elif outcome.status == "error":
                await hooks.message_failed(self.mp, message, outcome.description or "")
            else:
                await hooks.message_deferred(
                    self.mp, message, outcome.description or "", outcome.next_attempt_ts or 0
                )

    # -- shutdown ------------------------------------------------------------------------------

    async def _drain(self, writer: asyncio.Task[None]) -> None:
        """Let in-flight sends finish (bounded), write outcomes, release unfinished leases."""
        started = dict(self.in_flight)
        tasks = list(started.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=self.settings.drain_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                log.warning("%d sends did not finish within the drain timeout", len(pending))
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        try:
            await self._flush_outcomes_now()
            unfinished = [pk for pk, task in started.items() if task.cancelled()]
            released = await self.queue.release(self.owner, unfinished)
            if released:
                log.info("released %d unfinished messages", released)
        except Exception:
            log.exception("could not write outcomes or release leases at shutdown")


async def run_dispatcher(mp: MailProxy) -> None:
    """The ``dispatcher`` background task."""
    dispatcher = Dispatcher(mp)
    mp.dispatcher = dispatcher
    try:
        await dispatcher.run()
    finally:
        mp.dispatcher = None
