"""The admin token: configured (``MAILPROXY_API_TOKEN``) and/or stored as a hash.

The stored token is generated on the first start without a configured one, replaced by
``mail-proxy token --regenerate`` or set through ``instance/update`` (``api_token``). Both the
configured token and the stored one are admin tokens.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from mailproxy_core import MailProxy, Principal, extract_token, hash_token, new_token, verify_token

HASH_CACHE_SECONDS = 5.0
"""How long a token matching the stored hash is trusted before the hash is read again, so a
replaced token stops working in every running process within seconds. A token that does not
match the remembered hash makes it read again at once, so a new token works at once everywhere."""


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

    async def _read_hash(self) -> str | None:
        self._hash = await self._mp.admin_token_hash()
        self._hash_read_at = time.monotonic()
        return self._hash

    async def _matches_stored(self, token: str) -> bool:
        """Whether ``token`` is the stored admin token (see ``HASH_CACHE_SECONDS``)."""
        fresh = time.monotonic() - self._hash_read_at <= HASH_CACHE_SECONDS
        if fresh and self._hash and verify_token(token, self._hash):
            return True
        stored = await self._read_hash()
        return bool(stored) and verify_token(token, stored or "")

    async def authenticate(self, request: Any) -> Principal | None:
        token = extract_token(request)
        if not token:
            return None
        if self._configured is not None and hmac.compare_digest(
            token.encode(), self._configured.encode()
        ):
            return Principal.admin()
        if await self._matches_stored(token):
            return Principal.admin()
        return None
