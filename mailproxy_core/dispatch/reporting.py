"""The reporting loop: drains the outbox (``message_events``) to each tenant's reporter.

One ``ReportingLoop`` per ``serve`` process, run as the ``reporting`` background task (workers do
not report). It follows docs/reports.md:

* **Per tenant, in order.** Each tenant with work gets its own task, which posts the tenant's
  oldest unreported events, at most ``max_batch`` at a time (an optional attribute of the
  reporter, default ``DEFAULT_BATCH``), and loops until none is left. One exchange at a time per
  tenant keeps the event order; separate tasks keep a slow or failing client from delaying any
  other tenant.
* **Acknowledged means reported.** ``ReportAck(ok=True)`` marks exactly the posted events
  reported, in the same transaction as the tenant's sync state. That write is done by the
  ``StateWriter`` (``report_state.py``) so the next report does not wait for it; meanwhile the
  tenant's ``cursor`` keeps acknowledged events from being posted again. A failure
  (``ok=False``, an exception, or no answer within ``CALL_TIMEOUT``) keeps the events and backs
  the tenant off: ``max(1, report_interval) * 2**(failures-1)`` seconds, at most ``MAX_BACKOFF``.
  Nothing is dropped.
* **Wake-ups.** The dispatcher sets ``mp.report_wakeup`` after writing events, so events are
  reported as soon as they are committed; ``instance/run_now`` (``mp.request_report``) reports
  every tenant with unreported events ignoring back-off, and with a tenant id clears that
  tenant's do-not-disturb and polls it at once. Active tenants without events are polled with an
  empty report every ``report_interval`` seconds, unless the client asked for quiet
  (``next_sync_after`` in its answer: do-not-disturb, for idle polls only).
* **Durable state.** Last sync, do-not-disturb and back-off live in ``tenant_sync_state``
  (``instance/get_sync_status`` reads it) and are loaded at start, so a restart keeps them.

In test mode the loop acts only on ``instance/run_now`` (every tenant with pending events, every
tenant due for an idle poll; with a tenant id, idle-polls only that tenant); the tenant tasks it
starts still drain everything that is pending.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import TYPE_CHECKING, Any

from ..db.engine import set_write_lane
from ..db.outage import OutageLog, is_unavailable
from ..models import DeliveryEvent, ReportAck, Tenant
from ..records.tenants import load_tenant
from .report_state import MAX_BACKOFF, Outcome, StateWriter, TenantState, backoff_delay

if TYPE_CHECKING:
    from ..kernel import MailProxy
    from ..protocols import Reporter

__all__ = [
    "MAX_BACKOFF",
    "ReportingLoop",
    "TenantState",
    "backoff_delay",
    "reporting_loop",
    "run_reporting",
]

log = logging.getLogger(__name__)

DEFAULT_BATCH = 1000
"""Events per report when the reporter declares no ``max_batch``."""

CALL_TIMEOUT = 120.0
"""Backstop, in seconds, for one ``Reporter.report`` call (reporters have their own timeouts)."""

MIN_PASS_GAP = 0.05
"""Least seconds between two scans for pending tenants: wake-ups in between are coalesced
(the first wake-up after a quiet spell is served at once)."""

LINGER = 0.1
"""Seconds a tenant's task waits after a report that was not a full batch before it looks for
more: while events keep coming they go out in fewer, larger reports."""

WRITER_GRACE = 1.0
"""Seconds the state writer always gets at shutdown to record the last acknowledgements."""

LOAD_RETRY_DELAY = 1.0
"""Seconds between two attempts to load the tenants' states while the database is away."""

TENANT_TTL = 1.0
"""Seconds a tenant task trusts the tenant it loaded (credentials, URL, reporter) when another
process changes it; a change made in this process is seen at once (``directory_version``)."""

_loops: weakref.WeakKeyDictionary[MailProxy, ReportingLoop] = weakref.WeakKeyDictionary()


def reporting_loop(mp: MailProxy) -> ReportingLoop | None:
    """The reporting loop running in kernel ``mp``, if any (tests wait on it)."""
    return _loops.get(mp)


class ReportingLoop:
    """Schedules per-tenant report exchanges; owned by the ``reporting`` background task."""

    def __init__(self, mp: MailProxy) -> None:
        self.mp = mp
        self.settings = mp.settings
        self.states: dict[str, TenantState] = {}
        self._outage = OutageLog(log, effect="delivery reports wait until it is back")
        self.writer = StateWriter(mp, self.states)
        self._stopping = False
        self._scanning = False
        self._last_pass = 0.0

    # -- main loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Report until cancelled; then let running exchanges finish (bounded) and write what
        they acknowledged."""
        writer = asyncio.create_task(self.writer.run(), name="mailproxy:report-writer")
        try:
            await self._load_states_when_available()
            _loops[self.mp] = self
            if self.settings.test_mode:
                await self._run_on_request()
            else:
                await self._run_forever()
        finally:
            self._stopping = True
            await asyncio.shield(self._drain(writer))
            _loops.pop(self.mp, None)

    async def _run_forever(self) -> None:
        wakeup = self.mp.report_wakeup
        while True:
            wakeup.clear()
            await self._guarded_scan()
            try:
                async with asyncio.timeout(self._sleep_time(time.time())):
                    await wakeup.wait()
            except TimeoutError:
                pass
            gap = MIN_PASS_GAP - (time.monotonic() - self._last_pass)
            if gap > 0:
                await asyncio.sleep(gap)

    async def _run_on_request(self) -> None:
        wakeup = self.mp.report_wakeup
        while True:
            await wakeup.wait()
            wakeup.clear()
            if self.mp.report_requests:
                await self._guarded_scan()

    async def _guarded_scan(self) -> None:
        self._scanning = True
        try:
            await self.scan(time.time())
            self._outage.succeeded()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database is unreachable, say: try again on the next round
            if is_unavailable(exc):
                self._outage.failed(exc)  # bounded: not one traceback per round
            else:
                log.exception("the reporting loop could not scan for pending reports")
        finally:
            self._scanning = False
            self._last_pass = time.monotonic()

    def _sleep_time(self, now: float) -> float:
        interval = self.settings.report_interval
        due = [
            when
            for state in self.states.values()
            if state.task is None and (when := state.next_due(interval)) is not None
        ]
        wait = min(due, default=now + interval) - now
        return min(max(wait, MIN_PASS_GAP), interval)

    async def _load_states_when_available(self) -> None:
        """Load the tenants' states; while the database is away, wait for it (logged once)
        instead of ending the task."""
        while True:
            try:
                await self._load_states()
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                self._outage.failed(exc)
                await asyncio.sleep(LOAD_RETRY_DELAY)
            else:
                self._outage.succeeded()
                return

    async def _load_states(self) -> None:
        for tenant_id, row in (await self.mp.repos.sync_state.get_all()).items():
            self.states[tenant_id] = TenantState(
                last_sync=_as_float(row["last_sync_ts"]),
                dnd_until=_as_float(row["next_sync_after"]),
                failures=int(row["failures"] or 0),
                retry_at=_as_float(row["next_attempt_ts"]),
            )

    # -- one scan ------------------------------------------------------------------------------

    async def scan(self, now: float) -> None:
        """Start (or prod) the task of every tenant that needs an exchange now."""
        requests = set(self.mp.report_requests)
        self.mp.report_requests.difference_update(requests)
        run_now = bool(requests)
        named = {tenant_id for tenant_id in requests if tenant_id is not None}
        for tenant_id in named:
            await self.mp.repos.sync_state.clear_dnd(tenant_id)
            if tenant_id in self.states:
                self.states[tenant_id].dnd_until = None
        overview = await self.mp.repos.events.outbox_overview()
        interval = self.settings.report_interval
        # In test mode a run_now naming a tenant idle-polls that tenant only (as the reference).
        idle_polls = not (self.settings.test_mode and named)
        for entry in overview:
            state = self.states.setdefault(entry.tenant_id, TenantState())
            state.active = entry.active
            if entry.tenant_id in named:
                self._want(entry.tenant_id, state, poll=True)
            elif entry.pending and (run_now or not state.backing_off(now)):
                self._want(entry.tenant_id, state, poll=False)
            elif idle_polls and state.task is None and not state.backing_off(now):
                due = state.next_due(interval)
                if due is not None and due <= now:
                    self._want(entry.tenant_id, state, poll=True)
        known = {entry.tenant_id for entry in overview}
        for tenant_id, state in list(self.states.items()):
            if tenant_id not in known and state.task is None and not state.unwritten:
                del self.states[tenant_id]  # the tenant was deleted

    def _want(self, tenant_id: str, state: TenantState, *, poll: bool) -> None:
        state.poll = state.poll or poll
        if state.task is not None:
            state.more = True
            return
        state.more = False
        state.task = asyncio.create_task(
            self._tenant_task(tenant_id, state), name=f"mailproxy:report:{tenant_id}"
        )

    # -- one tenant ----------------------------------------------------------------------------

    async def _tenant_task(self, tenant_id: str, state: TenantState) -> None:
        tenant: Tenant | None = None
        loaded = 0.0
        version = -1
        try:
            while not self._stopping:
                stale = time.monotonic() - loaded > TENANT_TTL
                if tenant is None or stale or version != self.mp.directory_version:
                    version = self.mp.directory_version
                    tenant = await load_tenant(self.mp, tenant_id)
                    loaded = time.monotonic()
                    if tenant is None:
                        return  # deleted meanwhile, with its events
                poll, state.poll, state.more = state.poll, False, False
                outcome = await self._exchange(tenant, state, poll)
                if outcome is None:
                    return  # failed: back off
                posted, full = outcome
                if full:
                    continue
                if posted and not self._stopping:
                    # Events are flowing: let the next ones gather for a moment, then look
                    # again (fewer, larger reports; the first event of a burst never waits).
                    await asyncio.sleep(LINGER)
                    continue
                # No await between this check and the end of the task: a scan that runs
                # after it starts a new task instead of setting ``more`` on this one.
                if not (state.more or state.poll):
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # back off like a failed report
            if is_unavailable(exc):
                self._outage.failed(exc)  # bounded: one line per outage, not per tenant
                reason = "database unavailable"
            else:
                log.exception(
                    "reporting to tenant %s failed", tenant_id, extra={"tenant_id": tenant_id}
                )
                reason = "internal error while reporting"
            now = time.time()
            if not state.backing_off(now):
                self._failed(tenant_id, state, now, reason, quiet=is_unavailable(exc))
        finally:
            state.task = None
            state.settle_cursor()

    async def _exchange(
        self, tenant: Tenant, state: TenantState, poll: bool
    ) -> tuple[int, bool] | None:
        """One report to ``tenant``: how many events went out and whether that was a full batch
        (look for more at once); ``None`` on failure. Nothing pending and no poll asked: no
        report, ``(0, False)``."""
        reporter = self.mp.reporters.get(tenant.reporter)
        batch = _max_batch(reporter)
        rows = await self.mp.repos.events.unreported(tenant.id, batch, after=state.cursor)
        if not rows and not poll:
            return 0, False
        if reporter is None:
            known = ", ".join(sorted(self.mp.reporters)) or "none installed"
            ack = ReportAck(
                ok=False, detail=f"no reporter named {tenant.reporter!r} (available: {known})"
            )
        else:
            ack = await self._call(reporter, tenant, [_delivery_event(row) for row in rows])
        now = time.time()
        if not ack.ok:
            self._failed(tenant.id, state, now, ack.detail or "report refused")
            return None
        dnd = ack.next_sync_after if ack.next_sync_after and ack.next_sync_after > now else None
        ids = [row["id"] for row in rows]
        if ids:
            state.cursor, state.unwritten = ids[-1], state.unwritten + len(ids)
        state.last_sync, state.dnd_until, state.failures, state.retry_at = now, dnd, 0, None
        self.writer.put(Outcome(tenant.id, now, True, ids, next_sync_after=dnd))
        return len(rows), len(rows) >= batch

    async def _call(
        self, reporter: Reporter, tenant: Tenant, events: list[DeliveryEvent]
    ) -> ReportAck:
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                return await reporter.report(tenant, events)
        except TimeoutError:
            return ReportAck(ok=False, detail=f"the reporter gave no answer in {CALL_TIMEOUT:g} s")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a plugin's bug: keep the events, tell the operator
            log.exception("reporter %r failed", tenant.reporter, extra={"tenant_id": tenant.id})
            return ReportAck(ok=False, detail=f"reporter error: {type(exc).__name__}")

    def _failed(
        self, tenant_id: str, state: TenantState, now: float, detail: str, quiet: bool = False
    ) -> None:
        """Back off after a failed exchange; ``quiet``: an outage already logged once (INFO)."""
        state.failures += 1
        state.retry_at = now + backoff_delay(state.failures, self.settings.report_interval)
        log.log(
            logging.WARNING if state.failures == 1 and not quiet else logging.INFO,
            "delivery report to tenant %s failed (%d in a row, next try in %.0f s): %s",
            tenant_id,
            state.failures,
            state.retry_at - now,
            detail,
            extra={"tenant_id": tenant_id},
        )
        self.writer.put(
            Outcome(
                tenant_id,
                now,
                False,
                failures=state.failures,
                retry_at=state.retry_at,
                error=detail,
            )
        )

    # -- tests and shutdown --------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether a scan, an exchange or a state write is under way or asked for."""
        return (
            self._scanning
            or self.writer.pending
            or bool(self.mp.report_requests)
            or any(state.task is not None for state in self.states.values())
        )

    async def settled(self, within: float = 30.0) -> None:
        """Wait until no scan, request, exchange or state write is pending (tests)."""
        deadline = time.monotonic() + within
        while self.busy:
            if time.monotonic() > deadline:
                raise TimeoutError("the reporting loop did not settle")
            await asyncio.sleep(0.01)

    async def _drain(self, writer: asyncio.Task[None]) -> None:
        """Let running exchanges finish and write what they acknowledged, within
        ``drain_timeout`` (plus up to a second for the last writes)."""
        deadline = time.monotonic() + self.settings.drain_timeout
        tasks = [state.task for state in self.states.values() if state.task is not None]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=self.settings.drain_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self.writer.close()
        left = max(deadline - time.monotonic(), WRITER_GRACE)
        _done, unfinished = await asyncio.wait([writer], timeout=left)
        if unfinished:  # acknowledged events not marked are reported again after the restart
            log.warning("stopping before the last delivery reports were recorded")
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)


def _as_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _max_batch(reporter: Reporter | None) -> int:
    size = getattr(reporter, "max_batch", None)
    return size if isinstance(size, int) and size > 0 else DEFAULT_BATCH


def _delivery_event(row: dict[str, Any]) -> DeliveryEvent:
    return DeliveryEvent(
        event_id=row["event_id"],
        tenant_id=row["tenant_id"],
        message_id=row["message_id"],
        event_type=row["event_type"],
        event_ts=row["event_ts"],
        description=row["description"],
        metadata=row["metadata"],
    )


async def run_reporting(mp: MailProxy) -> None:
    """The ``reporting`` background task (``serve`` only)."""
    set_write_lane("reporting")  # SQLite: its own lane of write turns (db/_sqlite.py)
    await ReportingLoop(mp).run()
