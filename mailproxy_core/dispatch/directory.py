"""Short-lived caches of the accounts, tenants and storage names the dispatcher needs.

Loading and decrypting an account for every message would cost a query per send; entries are
trusted for ``CACHE_SECONDS``, so a changed password or rate limit reaches the dispatcher within
that time (an API change in the same process clears the cache at once through ``forget``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from ..db.repos.queue import QueueRepo
from ..models import Account, Message, Tenant
from ..records.accounts import load_account_by_pk
from ..records.storages import load_storages
from ..records.tenants import load_tenant

if TYPE_CHECKING:
    from ..kernel import MailProxy

CACHE_SECONDS = 2.0

K = TypeVar("K")
V = TypeVar("V")


class _TtlCache(Generic[K, V]):
    def __init__(self, load: Callable[[K], Awaitable[V]], ttl: float) -> None:
        self._load = load
        self._ttl = ttl
        self._entries: dict[K, tuple[float, V]] = {}

    async def get(self, key: K) -> V:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self._ttl:
            return entry[1]
        value = await self._load(key)
        self._entries[key] = (now, value)
        return value

    def clear(self) -> None:
        self._entries.clear()


class Directory:
    """Accounts, tenants and storage mount names, cached for a couple of seconds."""

    def __init__(self, mp: MailProxy, queue: QueueRepo, ttl: float = CACHE_SECONDS) -> None:
        self.queue = queue

        async def load_names(tenant_id: str) -> frozenset[str]:
            return frozenset(mount.name for mount in await load_storages(mp, tenant_id))

        async def load_account(pk: str) -> Account | None:
            return await load_account_by_pk(mp, pk)

        async def load_tenant_by_id(tenant_id: str) -> Tenant | None:
            return await load_tenant(mp, tenant_id)

        self._accounts: _TtlCache[str, Account | None] = _TtlCache(load_account, ttl)
        self._tenants: _TtlCache[str, Tenant | None] = _TtlCache(load_tenant_by_id, ttl)
        self._storages: _TtlCache[str, frozenset[str]] = _TtlCache(load_names, ttl)

    async def account(self, message: Message) -> Account | None:
        """The message's account (by the pk recorded at enqueue time)."""
        if not message.account_pk:
            return None
        return await self._accounts.get(message.account_pk)

    async def tenant(self, tenant_id: str) -> Tenant | None:
        return await self._tenants.get(tenant_id)

    async def storage_names(self, tenant_id: str) -> frozenset[str]:
        return await self._storages.get(tenant_id)

    def forget(self) -> None:
        """Drop every cached entry."""
        self._accounts.clear()
        self._tenants.clear()
        self._storages.clear()
