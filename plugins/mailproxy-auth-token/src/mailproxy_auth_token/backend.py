"""The admin token: configured (``MAILPROXY_API_TOKEN``) or generated once and stored as a hash."""

from __future__ import annotations

import hmac
import time
from typing import Any

from mailproxy_core import MailProxy, Principal, extract_token, hash_token, new_token, verify_token

HASH_CACHE_SECONDS = 5.0
"""How long the stored hash is trusted before it is read again, so a token regenerated with
``mail-proxy token --regenerate`` replaces the old one in a running service within seconds."""


async def ensure_admin_token(mp: MailProxy) -> None:
    """On first start without ``MAILPROXY_API_TOKEN``, generate a token and announce it once.

    Only the hash is stored; the token itself is shown on the console of ``mail-proxy serve``
    and never logged.
    """
    if mp.settings.api_token is not None or mp.role != "serve":
        return
    if await mp.admin_token_hash():
        mp.announce(
            "Admin API token: already set on an earlier start (only its hash is kept). "
            "Run `mail-proxy token --regenerate` to get a new one."
        )
        return
    token = new_token()
    # Two processes starting together: only the first stored hash wins; the other stays quiet.
    if await mp.store_admin_token_hash(hash_token(token), only_if_unset=True):
        mp.announce(f"Admin API token (shown once, keep it safe): {token}")


class AdminTokenBackend:
    """Authenticates the instance admin by ``X-API-Token`` or ``Authorization: Bearer``."""

    def __init__(self, mp: MailProxy) -> None:
        self._mp = mp
        configured = mp.settings.api_token
        self._configured = configured.get_secret_value() if configured is not None else None
        self._hash: str | None = None
        self._hash_read_at = 0.0

    async def _stored_hash(self) -> str | None:
        now = time.monotonic()
        if self._hash is None or now - self._hash_read_at > HASH_CACHE_SECONDS:
            self._hash = await self._mp.admin_token_hash()
            self._hash_read_at = now
        return self._hash

    async def authenticate(self, request: Any) -> Principal | None:
        token = extract_token(request)
        if not token:
            return None
        if self._configured is not None:
            if hmac.compare_digest(token.encode(), self._configured.encode()):
                return Principal.admin()
            return None
        stored = await self._stored_hash()
        if stored and verify_token(token, stored):
            return Principal.admin()
        return None
