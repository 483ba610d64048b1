"""The authentication backend: a tenant API key becomes that tenant's principal.

Asked before the admin token. A token without the ``mpk_`` form, or one no stored hash matches
(unknown, replaced or revoked), is declined so the next backend may recognise it; the chain then
answers 401. An expired key is refused with 401 saying so, and a call outside the key's scopes
with 403 naming the scope it needs.

Every request reads the key's row (one indexed lookup by hash, no cache), so a key replaced or
revoked through any process sharing the database is refused by every process from the next
request on.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from mailproxy_core import (
    AuthError,
    Forbidden,
    MailProxy,
    Principal,
    extract_token,
    route_info,
    verify_token,
)

from .keys import allows, key_hash, looks_like_key, requirement
from .store import KeyStore

logger = logging.getLogger(__name__)

ADMIN_ONLY = "admin_only"


class ApiKeyBackend:
    """Authenticates tenant API keys (``X-API-Token`` or ``Authorization: Bearer``)."""

    def __init__(self, mp: MailProxy) -> None:
        self._store = KeyStore(mp)

    async def authenticate(self, request: Any) -> Principal | None:
        token = extract_token(request)
        if not token or not looks_like_key(token):
            return None
        key = await self._store.find(key_hash(token))
        if key is None or not verify_token(token, key.key_hash):
            return None
        now = int(time.time())
        if key.expired(now):
            raise AuthError(
                f"this API key of tenant '{key.tenant_id}' expired at {key.expires_at} "
                "(unix seconds); ask the instance admin or a 'manage' key for a new one"
            )
        route = route_info(request)
        # Routes reserved to the admin are refused by the kernel (403) whatever the scopes.
        if route is None or route.scope != ADMIN_ONLY:
            needed = requirement(route, request.method)
            if not allows(key.scopes, needed):
                what = route.path if route is not None else request.path
                raise Forbidden(
                    f"the API key '{key.name}' lacks the scope '{needed.named}' needed for "
                    f"{request.method} {what} (its scopes: "
                    f"{', '.join(sorted(key.scopes)) or 'none'})"
                )
        try:
            await self._store.touch(key, now)
        except Exception:
            # Bookkeeping only: the request goes on (never log the key).
            logger.warning(
                "could not record the use of API key '%s' of tenant '%s'",
                key.name,
                key.tenant_id,
                exc_info=True,
            )
        return Principal.tenant(key.tenant_id, name=key.name)
