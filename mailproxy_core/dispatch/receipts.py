"""The receipt loop: polls every registered receipt handler, in one process only.

One ``ReceiptLoop`` per ``serve`` process, run as the ``receipts`` background task (``worker``
processes never poll). At start it builds each registered ``ReceiptHandler`` (a factory that
fails is logged and its error shown in the handler's status) and runs each on its own task:

* **One process per handler.** Before each round the task takes or renews the handler's lease
  in ``receipt_leases`` (``LEASE_SECONDS``, renewed every ``RENEW_EVERY`` seconds and during a
  poll); only the holder polls. A holder that dies stops renewing, and another ``serve`` process
  on the same database takes the handler over once the lease has run out.
* **Its own pace.** The holder polls when ``handler.poll_interval`` seconds (read every round,
  so a change applies without a restart) have passed since its last poll ended, and at once
  when asked: ``request_receipt_poll`` (``MailProxy.request_receipt_poll``, ``instance/run_now``),
  relayed to the other processes on PostgreSQL by ``NOTIFY`` on ``RECEIPT_CHANNEL``. In test
  mode handlers poll only when asked.
* **Isolation.** A poll that raises (or exceeds ``POLL_TIMEOUT``) is logged, its text recorded
  as the handler's ``last_error``, and retried next round; it never stops the other handlers.
  A successful poll records ``last_poll_ts`` and clears ``last_error``. Both live in the lease
  row, so every process can show them (``MailProxy.receipt_handler_status``).
* **Outages.** While the database is away no handler is held (nothing is polled); the loop logs
  one WARNING, a reminder at most once a minute, and one INFO when the database is back.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..db.notifications import RECEIPT_CHANNEL
from ..db.outage import OutageLog, is_unavailable
from ..models import ReceiptHandlerStatus

if TYPE_CHECKING:
    from ..kernel import MailProxy
    from ..specs import ReceiptHandlerSpec

log = logging.getLogger(__name__)

ALL_HANDLERS = "*"
"""The notification payload meaning every handler."""

LEASE_SECONDS = 30
"""How long a lease lasts without renewal: how soon a dead holder's handlers are taken over."""

RENEW_EVERY = 10.0
"""Seconds between two lease renewals (and lease attempts by processes that do not hold it)."""

POLL_TIMEOUT = 600.0
"""Backstop, in seconds, for one ``poll()`` (handlers have their own network timeouts)."""

MIN_INTERVAL = 0.05
"""The shortest pause between two polls of one handler, whatever its ``poll_interval``."""

MAX_ERROR_TEXT = 1000
"""A recorded ``last_error`` is cut to this many characters."""


@dataclass(slots=True)
class HandlerState:
    """What one process knows about one handler (refreshed from the lease row every round)."""

    name: str
    handler: Any = None
    interval: float = 60.0
    requested: bool = False
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    holding: bool = False
    last_poll_ts: float | None = None
    last_error: str | None = None
    polls: int = 0
    """Polls this process finished and recorded (tests wait on it)."""
    failures: int = 0
    """Failed polls in a row (by this process)."""
    last_poll_end: float | None = None

    def status(self) -> ReceiptHandlerStatus:
        return ReceiptHandlerStatus(self.name, self.last_poll_ts, self.last_error, self.holding)


class ReceiptLoop:
    """Builds the receipt handlers and runs one task per handler; see the module docstring."""

    def __init__(self, mp: MailProxy) -> None:
        self.mp = mp
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.states: dict[str, HandlerState] = {
            spec.name: HandlerState(spec.name, interval=spec.interval)
            for spec in mp.registry.receipt_handlers
        }
        self._tasks: list[asyncio.Task[None]] = []
        self._outage = OutageLog(log, effect="receipt handlers are not polled until it is back")

    # -- what the kernel asks --------------------------------------------------------------

    def status(self, name: str) -> ReceiptHandlerStatus | None:
        state = self.states.get(name)
        return None if state is None else state.status()

    def request(self, name: str | None) -> None:
        """Poll ``name`` (every handler when ``None``) at once, if this process holds it."""
        for state in self.states.values():
            if name is None or state.name == name:
                state.requested = True
                state.wakeup.set()

    def _on_notification(self, payload: str | None) -> None:
        # None: the listening connection was re-opened and requests may have been missed.
        self.request(None if payload in (None, ALL_HANDLERS) else payload)

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll until cancelled; then release the leases and close the handlers."""
        for spec in self.mp.registry.receipt_handlers:
            self._build(spec)
        await self.mp.db.listen(RECEIPT_CHANNEL, self._on_notification)
        try:
            self._tasks = [
                asyncio.create_task(self._run_handler(state), name=f"mailproxy:receipts:{name}")
                for name, state in self.states.items()
                if state.handler is not None
            ]
            # ``wait`` (unlike ``gather``) leaves the tasks alone when this one is cancelled:
            # ``_stop`` cancels each exactly once, so none is interrupted again while it rolls
            # back a lease statement (which would leave its row locked until the pool closes).
            if self._tasks:
                await asyncio.wait(self._tasks)
            else:
                await asyncio.Event().wait()  # nothing to poll; stay until shutdown
        finally:
            await asyncio.shield(self._stop())

    def _build(self, spec: ReceiptHandlerSpec) -> None:
        state = self.states[spec.name]
        try:
            state.handler = spec.factory(self.mp)
        except Exception as exc:
            log.exception("receipt handler %r could not be built", spec.name)
            state.last_error = _error_text(exc)

    async def _run_handler(self, state: HandlerState) -> None:
        test_mode = self.mp.settings.test_mode
        while True:
            state.wakeup.clear()
            await self._take_lease(state)
            due = self._due(state)
            if state.holding and (state.requested or (not test_mode and due <= time.monotonic())):
                state.requested = False
                await self._poll(state)
            else:
                state.requested = False  # the holder, in whatever process, serves requests
            wait = RENEW_EVERY
            if state.holding and not test_mode:
                wait = min(wait, max(self._due(state) - time.monotonic(), MIN_INTERVAL))
            try:
                async with asyncio.timeout(wait):
                    await state.wakeup.wait()
            except TimeoutError:
                pass

    def _due(self, state: HandlerState) -> float:
        """When (monotonic) the next poll is due: the handler's current interval after the last
        poll ended; at once when this process has not polled it yet."""
        if state.last_poll_end is None:
            return 0.0
        return state.last_poll_end + max(_interval(state), MIN_INTERVAL)

    async def _take_lease(self, state: HandlerState) -> None:
        leases = self.mp.repos.receipt_leases
        now = int(time.time())
        try:
            state.holding = await leases.take(state.name, self.owner, now, now + LEASE_SECONDS)
            if not state.holding or state.last_poll_end is None:
                row = (await leases.get_all()).get(state.name)
                if row is not None:
                    state.last_poll_ts = _as_float(row["last_poll_ts"])
                    state.last_error = row["last_error"]
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # not ours until the database answers
            if is_unavailable(exc):
                self._outage.failed(exc)  # bounded: not one traceback per handler and round
            else:
                log.exception("could not take the lease of receipt handler %r", state.name)
            state.holding = False
        else:
            self._outage.succeeded()

    async def _poll(self, state: HandlerState) -> None:
        renewing = asyncio.create_task(
            self._keep_lease(state), name=f"mailproxy:lease:{state.name}"
        )
        error: str | None = None
        try:
            async with asyncio.timeout(POLL_TIMEOUT):
                await state.handler.poll()
        except TimeoutError:
            error = f"the poll did not finish within {POLL_TIMEOUT:g} s"
            log.error("receipt handler %r: %s", state.name, error)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a handler's failure: shown in its status, retried next round
            error = _error_text(exc)
            # The first failure in a row with its traceback; repeats briefly (every round).
            repeated = state.failures > 0
            log.log(
                logging.INFO if repeated else logging.WARNING,
                "receipt handler %r failed (%d in a row): %s",
                state.name,
                state.failures + 1,
                error,
                exc_info=not repeated,
            )
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            state.last_poll_end = time.monotonic()
        now = int(time.time())
        try:
            await self.mp.repos.receipt_leases.record_poll(state.name, self.owner, now, error=error)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_unavailable(exc):
                self._outage.failed(exc)
            else:
                log.exception("could not record the poll of receipt handler %r", state.name)
        state.last_error = error
        if error is None:
            state.last_poll_ts = float(now)
            state.failures = 0
        else:
            state.failures += 1
        state.polls += 1

    async def _keep_lease(self, state: HandlerState) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            await self._take_lease(state)
            if not state.holding:
                log.warning("receipt handler %r: lease lost during a poll", state.name)

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self.mp.db.unlisten(RECEIPT_CHANNEL, self._on_notification)
        except Exception:
            log.exception("could not stop listening for receipt poll requests")
        for state in self.states.values():
            if state.holding:
                try:
                    await self.mp.repos.receipt_leases.release(state.name, self.owner)
                except Exception:
                    log.exception("could not release the lease of receipt handler %r", state.name)
                state.holding = False
            await _close(state)


def _interval(state: HandlerState) -> float:
    value = getattr(state.handler, "poll_interval", None)
    try:
        return float(value) if value is not None else state.interval
    except (TypeError, ValueError):
        return state.interval


def _as_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text[:MAX_ERROR_TEXT]


async def _close(state: HandlerState) -> None:
    closer = getattr(state.handler, "aclose", None)
    if closer is None:
        return
    try:
        result = closer()
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("closing receipt handler %r failed", state.name)


async def run_receipts(mp: MailProxy) -> None:
    """The ``receipts`` background task (``serve`` only)."""
    loop = ReceiptLoop(mp)
    mp.receipt_loop = loop
    try:
        await loop.run()
    finally:
        mp.receipt_loop = None
