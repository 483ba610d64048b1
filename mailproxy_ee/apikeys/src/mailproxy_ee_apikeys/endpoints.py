"""Routes of the plugin: the default key (``tenants/create_api_key|revoke_api_key``, admin only)
and named scoped keys (``api_keys/add|list|revoke``, scoped to the caller's tenant).

A key is shown exactly once, in the answer that creates it; only its hash is stored.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from mailproxy_core import (
    POST,
    Conflict,
    Endpoint,
    InvalidInput,
    MailProxy,
    NotFound,
    admin_only,
    tenant_scoped,
)

from .keys import (
    ALL_SCOPES,
    DEFAULT_KEY_NAME,
    KEY_NAME,
    KeyScope,
    encode_scopes,
    key_hash,
    new_key,
)
from .store import KeyStore, StoredKey

ScopeName = Literal["send", "read", "manage"]

DEFAULT_KEY_SCOPES = encode_scopes([KeyScope.MANAGE])
"""The default key has every right of its tenant."""


async def require_tenant(mp: MailProxy, tenant_id: str) -> None:
    """Raise 404 unless the tenant exists."""
    if await mp.tenant(tenant_id) is None:
        raise NotFound(f"tenant '{tenant_id}' not found")


async def mint_default_key(mp: MailProxy, tenant_id: str, expires_at: int | None = None) -> str:
    """Give the tenant a new default key (replacing any previous one) and return it."""
    key = new_key()
    await KeyStore(mp).set_default(
        tenant_id, key_hash(key), DEFAULT_KEY_SCOPES, expires_at, int(time.time())
    )
    return key


def key_listing(key: StoredKey) -> dict[str, Any]:
    """How ``api_keys/list`` shows a key: never the key, never its hash."""
    return {
        "name": key.name,
        "scopes": [str(scope) for scope in ALL_SCOPES if scope in key.scopes],
        "created_ts": key.created_ts,
        "expires_at": key.expires_at,
        "last_used_ts": key.last_used_ts,
    }


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"{field}: {message}", errors=[{"field": field, "message": message, "type": "value_error"}]
    )


class TenantApiKeys(Endpoint):
    """The tenant's default key (methods added to the ``tenants`` entity)."""

    @POST
    @admin_only
    async def create_api_key(self, tenant_id: str, expires_at: int | None = None) -> dict[str, Any]:
        """Give a tenant a new default API key, shown only in this answer.

        The previous default key, if any, is refused from now on, in every process.

        Args:
            tenant_id: the tenant.
            expires_at: unix seconds from which the key is refused (401); absent or null means
                never. Any integer is accepted: a past value gives a key that never works.
        """
        await require_tenant(self.mp, tenant_id)
        key = await mint_default_key(self.mp, tenant_id, expires_at)
        return {"ok": True, "tenant_id": tenant_id, "api_key": key, "expires_at": expires_at}

    @POST
    @admin_only
    async def revoke_api_key(self, tenant_id: str) -> dict[str, Any]:
        """Remove a tenant's default API key; it is refused from now on, in every process.

        Answers ``{"ok": true}`` also when the tenant had no default key.

        Args:
            tenant_id: the tenant.
        """
        await require_tenant(self.mp, tenant_id)
        await KeyStore(self.mp).delete(tenant_id, DEFAULT_KEY_NAME)
        return {"ok": True}


class ApiKeys(Endpoint):
    """Named API keys of a tenant, each with scopes ``send``, ``read``, ``manage``."""

    @POST
    @tenant_scoped
    async def add(
        self,
        tenant_id: str,
        name: str,
        scopes: list[ScopeName],
        expires_at: int | None = None,
    ) -> dict[str, Any]:
        """Create a named API key with scopes; the key is shown only in this answer.

        Scopes: ``send`` (``messages/add``, ``messages/add_batch`` and reading the tenant's
        messages), ``read`` (every read of the tenant), ``manage`` (everything the tenant's
        default key may do). A name already in use by the tenant → 409.

        Args:
            tenant_id: the tenant the key acts for.
            name: the key's name, unique per tenant: 1-64 letters, digits, ``_``, ``.``, ``-``
                (``default`` is the default key's).
            scopes: one or more of ``send``, ``read``, ``manage``.
            expires_at: unix seconds from which the key is refused (401); absent or null means
                never.
        """
        if name == DEFAULT_KEY_NAME:
            raise _invalid(
                "name", "'default' is the default key's name; use tenants/create_api_key for it"
            )
        if not KEY_NAME.match(name):
            raise _invalid(
                "name",
                "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
            )
        if not scopes:
            raise _invalid("scopes", "give at least one of 'send', 'read', 'manage'")
        stored_scopes = encode_scopes(scopes)
        await require_tenant(self.mp, tenant_id)
        key = new_key()
        added = await KeyStore(self.mp).add(
            tenant_id, name, key_hash(key), stored_scopes, expires_at, int(time.time())
        )
        if not added:
            raise Conflict(f"tenant '{tenant_id}' already has an API key named '{name}'")
        return {
            "ok": True,
            "tenant_id": tenant_id,
            "name": name,
            "scopes": stored_scopes.split(","),
            "api_key": key,
            "expires_at": expires_at,
        }

    @tenant_scoped
    async def list(self, tenant_id: str) -> list[dict[str, Any]]:
        """A tenant's API keys (the default key as ``default``), never the keys themselves.

        Each entry: ``{name, scopes, created_ts, expires_at, last_used_ts}``. ``last_used_ts``
        is kept to the minute.

        Args:
            tenant_id: the tenant.
        """
        await require_tenant(self.mp, tenant_id)
        return [key_listing(key) for key in await KeyStore(self.mp).list(tenant_id)]

    @POST
    @tenant_scoped
    async def revoke(self, tenant_id: str, name: str) -> dict[str, Any]:
        """Remove a tenant's API key by name; it is refused from now on, in every process.

        Args:
            tenant_id: the tenant.
            name: the key's name (``default`` removes the default key).
        """
        await require_tenant(self.mp, tenant_id)
        if not await KeyStore(self.mp).delete(tenant_id, name):
            raise NotFound(f"API key '{name}' not found for tenant '{tenant_id}'")
        return {"ok": True}
