"""Tenant names for the ``tenant_name`` label, read lazily and cached per app.

Names are resolved at scrape time, never in the event hooks: the hooks run in the dispatcher's
outcome writer and must not wait for the database. One read of the tenant list serves every
tenant and is trusted for ``ttl`` seconds; a tenant seen for the first time forces a new read
(at most once per scrape). A renamed tenant's series carry the new name after the next read; a
deleted tenant, or one without a name, is labelled with its id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from mailproxy_core import MailProxy


class TenantNames:
    """Tenant id → display name, refreshed from the kernel's tenants at most every ``ttl`` s."""

    def __init__(
        self, *, enabled: bool, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._enabled = enabled
        self._ttl = ttl
        self._clock = clock
        self._names: dict[str, str] = {}
        self._read_at: float | None = None

    def name_of(self, tenant_id: str) -> str:
        """The tenant's name as last read; its id when it has none or was never read."""
        return self._names.get(tenant_id) or tenant_id

    async def refresh(self, mp: MailProxy, tenant_ids: Iterable[str]) -> None:
        """Re-read the names if they are older than ``ttl`` or one of ``tenant_ids`` is new.

        Raises what the database raises; the caller keeps serving the names it has.
        """
        if not self._enabled:
            return
        now = self._clock()
        fresh = self._read_at is not None and now - self._read_at < self._ttl
        wanted = set(tenant_ids)
        if fresh and wanted.issubset(self._names):
            return
        names = dict(await mp.tenant_names())
        # Remember ids that are gone too, so a deleted tenant does not force a read per scrape.
        names.update({tenant_id: tenant_id for tenant_id in wanted - names.keys()})
        self._names = names
        self._read_at = now
