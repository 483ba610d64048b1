"""The dispatcher: claims ready messages and sends them, within concurrency and rate limits.

One ``Dispatcher`` per process (``serve`` and ``worker``), run as the ``dispatcher`` background
task. Its loop makes *cycles*: one transaction writes the outcomes of the sends that finished
since the last cycle and claims into the free capacity (``2 * max_concurrency``: sends in flight
plus as many claimed ahead; the claim itself enforces ``max_per_account`` across all processes);
claimed messages wait in a priority heap and start, most urgent first, each as its own task, as
soon as one of the ``max_concurrency`` send slots frees. A slot frees when the outcome of its
send is *committed*, not when the send returns: at any moment at most ``max_concurrency`` sends
are in flight or finished-but-unrecorded, so a crash re-sends at most that many messages. Only
the loop touches the database for the queue, so its transactions never contend with each other,
and a busy loop batches many outcomes into one commit (docs/dispatch.md). Event hooks run in a
task of their own, in order, so a slow plugin never holds up claiming.

Liveness: the dispatcher registers in ``dispatch_processes`` and heartbeats every
``heartbeat_seconds``; each heartbeat takes over the leases of dispatchers that missed
``HEARTBEAT_MISSES`` heartbeats or whose pid is gone on this machine. On SQLite (one process) a
starting dispatcher takes over every lease at once.

Wake-ups: an enqueued immediate message or ``run_now`` sets ``mp.dispatch_wakeup`` (in this
process directly; other processes through PostgreSQL ``NOTIFY``, relayed here by ``listen``); a
finished send sets ``_activity``; otherwise the queue is polled every ``send_loop_interval``
seconds. In test mode the dispatcher only runs when ``run_now`` asks, and then until nothing is
ready. On cancellation it drains: no more claims, in-flight sends get ``drain_timeout`` seconds,
their outcomes are written and every lease still held is released.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any

from ..db.engine import set_write_lane
from ..db.notifications import DISPATCH_CHANNEL
from ..db.outage import OutageLog, is_unavailable
from ..db.repos.processes import ProcessRepo
from ..db.repos.queue import Holds, Outcome, QueueRepo, WrittenEvent
from ..models import Message
from .attempt import Attempt, attempt_delivery
from .directory import Directory

if TYPE_CHECKING:
    from ..kernel import MailProxy

log = logging.getLogger(__name__)

HOLDS_TTL = 1.0
"""Seconds a snapshot of inactive tenants and suspended batches is trusted."""

DB_RETRY_DELAY = 1.0
"""Seconds to wait after the queue's database work failed before the next cycle."""

HEARTBEAT_MISSES = 3
"""Heartbeats a dispatcher may miss before other processes take over its leases."""

Finished = tuple[Attempt, Message]
"""A finished attempt (outcome to write, transport result, duration) and its message."""


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
        message_id_header=row.get("message_id_header"),
    )


def machine_id() -> str:
    """This machine, as pids are valid on it: the host name plus (Linux) the pid namespace."""
    try:
        namespace = f":{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}{namespace}"


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (a zombie counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


class Dispatcher:
    """Claims and sends; owned by the ``dispatcher`` background task of one kernel."""

    def __init__(self, mp: MailProxy) -> None:
        self.mp = mp
        self.settings = mp.settings
        self.queue = QueueRepo(mp.db)
        self.processes = ProcessRepo(mp.db)
        self.machine = machine_id()
        self._outage = OutageLog(log, effect="sending waits until it is back")
        self.directory = Directory(mp, self.queue)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self._ready: list[tuple[int, int, Message]] = []  # claimed, not started: a heap
        self._finished: list[Finished] = []
        self._activity = asyncio.Event()
        self._hooks: asyncio.Queue[list[Finished]] = asyncio.Queue()
        self._stopping = False
        self._holds: tuple[float, Holds] | None = None
        self._last_reclaim = 0.0
        self._claims_unknown = False
        """A claim failed with no answer: it may have committed, leasing messages to this
        process that it never received. The next cycle gives them back first."""
        self._capacity = 2 * self.settings.max_concurrency
        self.idle = asyncio.Event()
        """Set whenever a ``run_until_idle`` pass finished (tests wait on it)."""

    # -- main loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Dispatch until cancelled; on cancellation drain in-flight sends and release leases."""
        set_write_lane("dispatch")  # SQLite: fair write turns against the API (db/_sqlite.py)
        hooks = asyncio.create_task(self._emit_hooks(), name="mailproxy:dispatch-hooks")
        heartbeat: asyncio.Task[None] | None = None
        await self.mp.db.listen(DISPATCH_CHANNEL, self._on_notification)
        try:
            try:
                await self._register()
            except Exception:  # the heartbeat registers again; leases then expire as before
                log.exception("could not register this dispatcher in the process registry")
            heartbeat = asyncio.create_task(self._heartbeat(), name="mailproxy:dispatch-heartbeat")
            if self.settings.test_mode:
                await self._run_on_request()
            else:
                await self._run_forever()
        finally:
            self._stopping = True
            if heartbeat is not None:
                heartbeat.cancel()
                await asyncio.gather(heartbeat, return_exceptions=True)
            await asyncio.shield(self._drain(hooks))

    async def _run_forever(self) -> None:
        while True:
            if await self.cycle():
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
            if await self.cycle():
                continue
            if self.in_flight:
                await self._wait(self.settings.send_loop_interval, wakeup=False)
            elif not self._finished:
                await self._hooks.join()
                self.idle.set()
                return

    async def cycle(self) -> int:
        """Write finished outcomes and claim into the free slots; return how much was done.

        ``0`` means nothing was written or claimed: nothing is ready, every slot is busy, or
        the database failed (logged; the outcomes are written by a later cycle).
        """
        held = len(self.in_flight) + len(self._ready)
        limit = 0 if self._stopping else min(self._capacity - held, self.settings.batch_size)
        if len(self._ready) >= self.settings.max_concurrency:
            # Enough claimed ahead to refill every slot: this round only writes outcomes, a
            # shorter transaction (on SQLite a shorter write turn).
            limit = 0
        finished = self._finished
        count = 0

        def take_outcomes() -> list[Outcome]:
            # Called once the transaction has begun: sends that finished while it waited for
            # the database (SQLite: for its write turn) are written now, not a cycle later.
            nonlocal count
            count = len(finished)
            return [attempt.outcome for attempt, _message in finished[:count]]

        try:
            await self._reclaim_expired()
            if self._claims_unknown:
                await self._give_back_unknown_claims()
            if not finished and limit <= 0:
                return 0
            written, rows = await self.queue.exchange(
                self.owner,
                take_outcomes,
                limit=limit,
                per_account=self.settings.max_per_account,
                lease_seconds=self.settings.lease_seconds,
                holds=await self._current_holds() if limit > 0 else Holds(),
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_unavailable(exc):
                self._outage.failed(exc)  # bounded: not one traceback per round
            else:
                log.exception("the dispatcher's database work failed; retrying shortly")
            if limit > 0:
                # The connection may have gone after the commit and before its answer: the
                # claimed rows would then wait for their lease to expire (a minute by default).
                self._claims_unknown = True
            await asyncio.sleep(DB_RETRY_DELAY)
            return 0
        self._outage.succeeded()
        group = finished[:count]
        del finished[:count]  # sends that finished during the exchange stay for the next cycle
        if group:
            self._after_write(group, written)
        for row in rows:
            message = message_from_row(row)
            heapq.heappush(self._ready, (message.priority, message.pk, message))
        self._start_ready()
        return count + len(rows)

    def _start_ready(self) -> None:
        """Start claimed messages, most urgent first, while global send slots are free."""
        while self._ready and not self._stopping:
            # A finished send keeps its slot until its outcome is committed (module doc).
            if len(self.in_flight) + len(self._finished) >= self.settings.max_concurrency:
                return
            _priority, pk, message = heapq.heappop(self._ready)
            self.in_flight[pk] = asyncio.create_task(
                self._send(message), name=f"mailproxy:send:{pk}"
            )

    async def _give_back_unknown_claims(self) -> None:
        """Release this process's leases on messages it does not hold (see ``_claims_unknown``).

        Outcomes need no such care: writing one is a no-op for a row no longer leased to us.
        """
        held = {*self.in_flight, *(pk for _priority, pk, _message in self._ready)}
        held.update(message.pk for _attempt, message in self._finished)
        released = await self.queue.release(self.owner, keep=held)
        self._claims_unknown = False
        if released:
            log.info(
                "gave back %d messages claimed by a database round trip whose answer was lost",
                released,
            )

    async def _reclaim_expired(self) -> None:
        now = time.time()
        if now - self._last_reclaim < min(5.0, self.settings.lease_seconds / 2):
            return
        self._last_reclaim = now
        reclaimed = await self.queue.reclaim_expired(int(now))
        if reclaimed:
            log.warning("reclaimed %d messages whose lease expired", reclaimed)

    # -- liveness ------------------------------------------------------------------------------

    async def _register(self) -> None:
        """Join the process registry; take over the leases of dead predecessors at once."""
        now = int(time.time())
        if self.mp.db.dialect == "sqlite":
            # One process per SQLite database: every lease there belongs to a dead process.
            taken = await self.processes.take_over_all(self.owner, now)
            if taken:
                log.warning("took over %d messages leased by a previous process", taken)
        await self.processes.register(self.owner, self.machine, os.getpid(), now)
        await self._take_over_dead(now)

    async def _heartbeat(self) -> None:
        """Every ``heartbeat_seconds``: show liveness, take over dead processes' leases."""
        interval = self.settings.heartbeat_seconds
        while True:
            await asyncio.sleep(interval)
            now = int(time.time())
            try:
                if not await self.processes.heartbeat(self.owner, now):
                    log.warning(
                        "this dispatcher's heartbeat had stopped long enough for its leases to be "
                        "taken over; registering again"
                    )
                    await self.processes.register(self.owner, self.machine, os.getpid(), now)
                await self._take_over_dead(now)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("the dispatcher's heartbeat failed")
                # An outage is reported by the loop (OutageLog); the next beat tries again.

    async def _take_over_dead(self, now: int) -> None:
        """Free the leases of dispatchers that stopped heartbeating or whose pid is gone here."""
        timeout = HEARTBEAT_MISSES * self.settings.heartbeat_seconds
        dead = set(await self.processes.stale(int(now - timeout), exclude=self.owner))
        for owner, pid in await self.processes.on_host(self.machine, exclude=self.owner):
            if pid != os.getpid() and not pid_alive(pid):
                dead.add(owner)
        if not dead:
            return
        taken = await self.processes.take_over(sorted(dead), now)
        # Another process may have taken them over first: then there is nothing to report.
        log.log(
            logging.WARNING if taken else logging.DEBUG,
            "took over %d messages from %d dispatcher(s) no longer alive: %s",
            taken,
            len(dead),
            ", ".join(sorted(dead)),
        )
        if taken:
            self._activity.set()

    async def _current_holds(self) -> Holds:
        now = time.monotonic()
        if self._holds is None or now - self._holds[0] > HOLDS_TTL:
            self._holds = (now, await self.queue.holds())
        return self._holds[1]

    def forget_cached(self) -> None:
        """Forget cached holds, accounts and tenants (changed through this process's API)."""
        self._holds = None
        self.directory.forget()

    def _on_notification(self, payload: str | None) -> None:
        """Another process enqueued an immediate message or asked for ``run_now``."""
        self.mp.wake_dispatcher(run_now=payload == "run_now", broadcast=False)

    async def _wait(self, seconds: float, *, wakeup: bool = True) -> None:
        """Sleep until a send finishes, ``timeout`` passes, or (``wakeup``) someone wakes us."""
        events = [self._activity]
        if wakeup:
            events.append(self.mp.dispatch_wakeup)
        if not any(event.is_set() for event in events):
            waiters = [asyncio.ensure_future(event.wait()) for event in events]
            try:
                await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        for event in events:
            event.clear()

    # -- one message ---------------------------------------------------------------------------

    async def _send(self, message: Message) -> None:
        try:
            attempt = await attempt_delivery(self.mp, message, self.directory)
            self._finished.append((attempt, message))
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in the kernel or a plugin: keep the message, log loudly
            log.exception("unexpected failure while sending message %s", message.pk)
        finally:
            self.in_flight.pop(message.pk, None)
            self._start_ready()
            self._activity.set()

    # -- after a write -------------------------------------------------------------------------

    def _after_write(self, group: list[Finished], written: list[WrittenEvent]) -> None:
        if not written:
            return
        self.mp.report_wakeup.set()
        kept = {event.pk for event in written}
        self._hooks.put_nowait([item for item in group if item[0].outcome.pk in kept])

    async def _emit_hooks(self) -> None:
        """Emit the event hooks of written outcomes, in the order they were written."""
        while True:
            group = await self._hooks.get()
            try:
                for attempt, message in group:
                    await self._emit(attempt, message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("an event hook failed")
            finally:
                self._hooks.task_done()

    async def _emit(self, attempt: Attempt, message: Message) -> None:
        hooks, outcome, duration = self.mp.hooks, attempt.outcome, attempt.duration
        if outcome.status == "sent":
            assert attempt.result is not None
            await hooks.message_sent(
                self.mp, message, attempt.result, duration, attempt.envelope, attempt.suppressed
            )
        elif outcome.status == "error":
            await hooks.message_failed(
                self.mp, message, outcome.description or "", duration, attempt.suppressed
            )
        else:
            await hooks.message_deferred(
                self.mp,
                message,
                outcome.description or "",
                outcome.next_attempt_ts or 0,
                duration,
            )

    # -- shutdown ------------------------------------------------------------------------------

    async def _drain(self, hooks: asyncio.Task[None]) -> None:
        """Let in-flight sends finish (bounded), write outcomes, release every lease left."""
        deadline = time.monotonic() + self.settings.drain_timeout
        tasks = list(self.in_flight.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=self.settings.drain_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                log.warning("%d sends did not finish within the drain timeout", len(pending))
        try:
            if self._finished:
                await asyncio.wait_for(self.cycle(), timeout=max(1.0, self.settings.drain_timeout))
            released = await self.queue.release(self.owner)
            if released:
                log.info("released %d unfinished messages", released)
            await self.processes.unregister(self.owner)
        except Exception:
            log.exception("could not write outcomes or release leases at shutdown")
        try:
            await asyncio.wait_for(self._hooks.join(), max(0.5, deadline - time.monotonic()))
        except TimeoutError:
            log.warning("event hooks of some finished sends were not emitted before shutdown")
        hooks.cancel()
        await asyncio.gather(hooks, return_exceptions=True)
        try:
            await self.mp.db.unlisten(DISPATCH_CHANNEL, self._on_notification)
        except Exception:
            log.exception("could not stop listening for dispatcher wake-ups")


async def run_dispatcher(mp: MailProxy) -> None:
    """The ``dispatcher`` background task."""
    dispatcher = Dispatcher(mp)
    mp.dispatcher = dispatcher
    try:
        await dispatcher.run()
    finally:
        mp.dispatcher = None
