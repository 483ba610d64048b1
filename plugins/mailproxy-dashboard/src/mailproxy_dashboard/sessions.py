"""Server-side sessions of the dashboard: the browser holds only a random session id.

The credential the user signed in with stays in this process's memory, never in the cookie, so
every request is authenticated again through the kernel's auth chain: a revoked tenant key or a
rotated admin token ends the session on its next request. Sessions are per process; behind a
load balancer, pin a user to one process (or sign in again).
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

from mailproxy_core import Principal

COOKIE_NAME = "mailproxy_ui_session"


@dataclass(slots=True)
class Session:
    """One signed-in browser: its credential, who it is, its CSRF token and its clock."""

    id: str
    token: str
    principal: Principal
    csrf: str
    created: float
    last_seen: float
    flash: list[str] = field(default_factory=list)

    def csrf_ok(self, value: str | None) -> bool:
        """Whether ``value`` is this session's CSRF token (constant-time comparison)."""
        return value is not None and hmac.compare_digest(value.encode(), self.csrf.encode())


class SessionStore:
    """Sessions of one app, with idle and absolute expiry.

    Args:
        idle_seconds: a session unused this long is gone.
        max_seconds: a session is gone this long after it was created.
    """

    def __init__(self, idle_seconds: float, max_seconds: float) -> None:
        self._sessions: dict[str, Session] = {}
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds

    def create(self, token: str, principal: Principal) -> Session:
        """A new session for a credential the auth chain accepted."""
        self._purge(time.monotonic())
        now = time.monotonic()
        session = Session(
            id=secrets.token_urlsafe(32),
            token=token,
            principal=principal,
            csrf=secrets.token_urlsafe(32),
            created=now,
            last_seen=now,
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id (its idle clock restarted), or ``None``."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = time.monotonic()
        if self._expired(session, now):
            del self._sessions[session_id]
            return None
        session.last_seen = now
        return session

    def drop(self, session_id: str | None) -> None:
        """End a session (sign-out, or its credential stopped working)."""
        if session_id:
            self._sessions.pop(session_id, None)

    def _expired(self, session: Session, now: float) -> bool:
        return (
            now - session.last_seen > self.idle_seconds or now - session.created > self.max_seconds
        )

    def _purge(self, now: float) -> None:
        for session_id in [sid for sid, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[session_id]
