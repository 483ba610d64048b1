"""A pool of SMTP sessions per (host, port, user).

Semantics:

- **Cap.** At most ``max_connections`` sessions per key exist at once, in use or idle. A send
  holds one *slot* for its whole duration; slots are handed out first come, first served.
- **Reuse.** An idle session is reused (most recently used first) unless it was closed by the
  server meanwhile, outlived its TTL (``account.ttl`` seconds from when it was opened; 0 disables
  reuse) or was opened for different credentials or TLS setting. A session idle for more than
  ``health_check_after`` seconds must answer NOOP first; one that does not is dropped and the
  next one tried, so a dead session costs no failed send.
- **Idle cap.** A session idle for ``idle_timeout`` seconds, or reaching its TTL while idle, is
  closed by a timer, without waiting for the next send.
- **Closing** sends QUIT (``close_timeout``) and always drops the socket. ``aclose()`` closes
  idle sessions, aborts those in use and makes later sends fail as transient.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiosmtplib

from mailproxy_core import Account, PoolState, TransientSendError

from .connect import account_port
from .settings import SmtpSettings

log = logging.getLogger(__name__)

PoolKey = tuple[str, int, str]
"""(host, port, user) of the sessions that may serve one another's sends."""

Opener = Callable[[Account], Awaitable[aiosmtplib.SMTP]]
"""Opens a ready session for an account (``Connector.open``)."""


def pool_key(account: Account) -> PoolKey:
    """The pool an account's sends draw from."""
    return (account.host.lower(), account_port(account), account.user or "")


def session_profile(account: Account) -> str:
    """What a session was opened with besides its key: TLS setting and a digest of the password.

    Two accounts sharing a key but differing here never share a session (an account requiring
    TLS must not inherit a plain session). Only a digest is kept, never the password.
    """
    digest = hashlib.sha256((account.password or "").encode()).hexdigest()[:16]
    return f"{account.use_tls}:{digest}"


@dataclass(slots=True, eq=False)
class PooledSession:
    """One SMTP session and its bookkeeping (times are ``loop.time()`` seconds)."""

    smtp: aiosmtplib.SMTP
    key: PoolKey
    profile: str
    opened_at: float
    expires_at: float
    last_used: float
    sends: int = 0
    timer: asyncio.TimerHandle | None = None


class FairSlots:
    """A counting semaphore that serves waiters strictly in arrival order."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        """Take a slot, waiting behind everyone who asked earlier."""
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back, handing it straight to the longest waiter if there is one."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot changes hands; in_use stays the same
                return
        self.in_use -= 1

    @property
    def waiting(self) -> int:
        """How many callers wait for a slot."""
        return len(self._waiters)

    @property
    def unused(self) -> bool:
        """No slot taken and nobody waiting."""
        return self.in_use == 0 and not self._waiters


@dataclass(slots=True, eq=False)
class Lease:
    """A slot of one pool key with the session it currently holds.

    ``reused`` says whether the session served an earlier send (so it may have gone stale);
    ``reusable`` is cleared by the holder when the session must not go back to the pool.
    """

    pool: SessionPool
    account: Account
    session: PooledSession | None = None
    reused: bool = False
    reusable: bool = True

    @property
    def smtp(self) -> aiosmtplib.SMTP:
        """The session's aiosmtplib client."""
        assert self.session is not None, "lease holds no session"
        return self.session.smtp

    async def reconnect(self) -> None:
        """Drop the current session and open a fresh one in the same slot."""
        old, self.session = self.session, None
        if old is not None:
            self.pool.forget(old)
            old.smtp.close()
        self.session = await self.pool.open_session(self.account)
        self.reused = False
        self.reusable = True


@dataclass(slots=True, eq=False)
class _KeyState:
    slots: FairSlots
    idle: list[PooledSession] = field(default_factory=list)


class SessionPool:
    """Sessions per (host, port, user), capped, reused, health-checked and expired."""

    def __init__(self, settings: SmtpSettings, opener: Opener) -> None:
        self.settings = settings
        self._opener = opener
        self._keys: dict[PoolKey, _KeyState] = {}
        self._sessions: set[PooledSession] = set()
        self._closers: set[asyncio.Task[None]] = set()
        self.closed = False

    # -- what the transport uses ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(self, account: Account) -> AsyncIterator[Lease]:
        """Hold a slot and a ready session for one send; both go back when the block exits.

        Raises:
            TransientSendError: the pool is closed, or no session could be opened (transient).
            PermanentSendError: opening failed for good (bad credentials, STARTTLS missing).
        """
        key = pool_key(account)
        state = self._state(key)
        await state.slots.acquire()
        lease = Lease(pool=self, account=account)
        try:
            self._check_open()
            lease.session, lease.reused = await self._checkout(state, account)
            try:
                yield lease
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    lease.reusable = False  # cancelled mid-command: the session's state is unknown
                raise
        finally:
            try:
                session, lease.session = lease.session, None
                if session is not None:
                    await self._checkin(state, session, keep=lease.reusable)
            finally:
                state.slots.release()
                self._prune(key, state)

    async def open_session(self, account: Account) -> PooledSession:
        """Open a new session for an account (the caller holds a slot of its key)."""
        self._check_open()
        smtp = await self._opener(account)
        if self.closed:  # aclose() ran while we were connecting: do not leave this one behind
            smtp.close()
            self._check_open()
        now = asyncio.get_running_loop().time()
        session = PooledSession(
            smtp=smtp,
            key=pool_key(account),
            profile=session_profile(account),
            opened_at=now,
            expires_at=now + max(account.ttl, 0),
            last_used=now,
        )
        self._sessions.add(session)
        log.debug("opened SMTP session to %s:%s", session.key[0], session.key[1])
        return session

    def forget(self, session: PooledSession) -> None:
        """Stop tracking a session the caller is about to drop."""
        self._sessions.discard(session)
        if session.timer is not None:
            session.timer.cancel()
            session.timer = None

    def open_sessions(self, account: Account) -> int:
        """How many sessions exist for an account's key, in use or idle."""
        key = pool_key(account)
        return sum(1 for session in self._sessions if session.key == key)

    def state_of(self, account: Account) -> PoolState:
        """The sessions of an account's key (host, port, user) right now: open (in use or
        idle), idle, slots in use, sends waiting for a slot, and the cap."""
        key = pool_key(account)
        state = self._keys.get(key)
        return PoolState(
            open=self.open_sessions(account),
            idle=len(state.idle) if state is not None else 0,
            in_use=state.slots.in_use if state is not None else 0,
            waiting=state.slots.waiting if state is not None else 0,
            max_connections=self.settings.max_connections,
        )

    async def aclose(self) -> None:
        """Close every session: QUIT the idle ones, abort those in use; later leases fail."""
        self.closed = True
        idle = [session for state in self._keys.values() for session in state.idle]
        for state in self._keys.values():
            state.idle.clear()
        busy = [session for session in self._sessions if session not in idle]
        for session in busy:
            self.forget(session)
            session.smtp.close()
        results = await asyncio.gather(
            *(self._close(session) for session in idle), *self._closers, return_exceptions=True
        )
        for result in results:
            if isinstance(result, Exception):
                log.warning("closing a pooled SMTP session failed: %r", result)

    # -- internals ------------------------------------------------------------------------------

    def _state(self, key: PoolKey) -> _KeyState:
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyState(FairSlots(self.settings.max_connections))
        return state

    def _prune(self, key: PoolKey, state: _KeyState) -> None:
        """Forget a key nobody uses, so that the table does not grow with every account seen."""
        if state.slots.unused and not state.idle and self._keys.get(key) is state:
            del self._keys[key]

    def _check_open(self) -> None:
        if self.closed:
            raise TransientSendError("the SMTP transport is shut down; the send will be retried")

    async def _checkout(self, state: _KeyState, account: Account) -> tuple[PooledSession, bool]:
        """A healthy idle session of this key, else a new one; ``True`` when reused."""
        profile = session_profile(account)
        while state.idle:
            session = state.idle.pop()
            if session.timer is not None:
                session.timer.cancel()
                session.timer = None
            now = asyncio.get_running_loop().time()
            if not self._reusable(session, profile, now):
                await self._close(session)
                continue
            if now - session.last_used > self.settings.health_check_after:
                if not await self._answers_noop(session):
                    await self._close(session)
                    continue
            return session, True
        return await self.open_session(account), False

    def _reusable(self, session: PooledSession, profile: str, now: float) -> bool:
        return (
            session.smtp.is_connected
            and session.profile == profile
            and now < session.expires_at
            and now - session.last_used < self.settings.idle_timeout
        )

    async def _answers_noop(self, session: PooledSession) -> bool:
        """Whether an idle session still answers; a session that does not is not worth keeping."""
        try:
            reply = await session.smtp.noop(timeout=self.settings.command_timeout)
        except (aiosmtplib.SMTPException, OSError):
            log.info("pooled SMTP session to %s:%s failed its health check", *session.key[:2])
            return False
        return 200 <= reply.code < 300

    async def _checkin(self, state: _KeyState, session: PooledSession, *, keep: bool) -> None:
        """Return a session to the idle list, or close it when it must not be reused."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        session.last_used = now
        session.sends += 1
        if keep and not self.closed and session.smtp.is_connected and now < session.expires_at:
            state.idle.append(session)
            delay = min(self.settings.idle_timeout, session.expires_at - now)
            session.timer = loop.call_later(delay, self._expire, state, session)
            return
        await self._close(session)

    def _expire(self, state: _KeyState, session: PooledSession) -> None:
        """Timer callback: an idle session reached its idle cap or TTL."""
        session.timer = None
        if session not in state.idle:
            return
        state.idle.remove(session)
        self._prune(session.key, state)
        task = asyncio.get_running_loop().create_task(self._close(session))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def _close(self, session: PooledSession) -> None:
        """QUIT politely within ``close_timeout``; the socket is dropped whatever happens."""
        self.forget(session)
        smtp = session.smtp
        try:
            if smtp.is_connected:
                await smtp.quit(timeout=self.settings.close_timeout)
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.debug("QUIT to %s:%s failed: %s", session.key[0], session.key[1], exc)
        finally:
            smtp.close()
