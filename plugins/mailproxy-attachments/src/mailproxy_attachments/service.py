"""What every fetcher of the plugin goes through: cache, concurrency limit, size cap.

One ``FetchService`` per kernel is shared by all fetchers and so by all messages:

- **Cache keys** are the attachment's ``content_md5``, else the ``{MD5:<hex>}`` marker of its
  file name, scoped by tenant (a tenant can never receive another tenant's file by naming its
  MD5). Attachments without either are not cached. Content is cached only when its real MD5
  matches the key, so a wrong key costs a fetch, never a wrong file.
- **Tiers**: every cached file goes to disk; files up to ``memory_cache_max_file_kb`` are also
  kept in memory, and a small file found on disk is brought back into memory.
- **Single flight**: concurrent fetches of one key (the same file in many messages claimed
  together) make one request; the others wait for it.
- **Concurrency**: at most ``max_concurrent_fetches`` loads run at once; cache hits do not
  count.
- **Size cap**: ``max_size_mb``, or the caller's ``max_bytes`` when smaller.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from mailproxy_core import AttachmentError, AttachmentRef, MailProxy, Tenant

from .cache import DiskCache, MemoryCache
from .settings import SETTINGS_SECTION, AttachmentsSettings

log = logging.getLogger(__name__)

MIB = 1024 * 1024
MD5_MARKER = re.compile(r"\{MD5:([0-9a-fA-F]{32})\}")
"""The kernel strips this marker from the delivered file name; here it only names the content."""

Loader = Callable[[int], Awaitable[bytes]]
"""Fetches the content, given the size cap in bytes it must enforce while reading."""


def cache_md5(ref: AttachmentRef) -> str | None:
    """The MD5 (lower-case hex) that names the content of ``ref``, or ``None``."""
    if ref.content_md5:
        return ref.content_md5.lower()
    match = MD5_MARKER.search(ref.filename)
    return match.group(1).lower() if match else None


def too_large(limit: int) -> AttachmentError:
    """The permanent error of content over the size cap."""
    return AttachmentError(
        f"larger than the limit of {round(limit / MIB, 2):g} MB", transient=False
    )


@dataclass(slots=True)
class FetchStats:
    """Counters for tests, logs and benchmarks."""

    hits: int = 0
    loads: int = 0


class FetchService:
    """The cache, the concurrency limit and the size cap shared by the plugin's fetchers."""

    def __init__(self, settings: AttachmentsSettings) -> None:
        self.settings = settings
        self.max_bytes = int(settings.max_size_mb * MIB)
        self.small_file_bytes = int(settings.memory_cache_max_file_kb * 1024)
        self.memory = (
            MemoryCache(int(settings.memory_cache_mb * MIB), settings.memory_cache_ttl)
            if settings.memory_cache_mb > 0
            else None
        )
        self.disk = (
            DiskCache(
                settings.disk_cache_dir, int(settings.disk_cache_mb * MIB), settings.disk_cache_ttl
            )
            if settings.disk_cache_mb > 0
            else None
        )
        self.stats = FetchStats()
        self._slots = asyncio.Semaphore(settings.max_concurrent_fetches)
        self._inflight: dict[str, asyncio.Task[bytes]] = {}

    def limit(self, max_bytes: int | None) -> int:
        """The size cap of one fetch: the plugin's, or the caller's when smaller."""
        return self.max_bytes if max_bytes is None else min(self.max_bytes, max_bytes)

    async def fetch(
        self, ref: AttachmentRef, tenant: Tenant, max_bytes: int | None, load: Loader
    ) -> bytes:
        """The content of ``ref``: from the cache, from a fetch in flight, or from ``load``."""
        limit = self.limit(max_bytes)
        md5 = cache_md5(ref)
        if md5 is None:
            return await self._load(load, limit)
        key = f"{tenant.id}\0{md5}"
        cached = await self._cached(key)
        if cached is not None:
            if len(cached) > limit:
                raise too_large(limit)
            self.stats.hits += 1
            return cached
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._load_and_keep(key, md5, load, limit))
            self._inflight[key] = task
            task.add_done_callback(lambda _done: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def _cached(self, key: str) -> bytes | None:
        if self.memory is not None:
            data = self.memory.get(key)
            if data is not None:
                return data
        if self.disk is not None:
            data = await self.disk.get(key)
            if data is not None and self.memory is not None and len(data) <= self.small_file_bytes:
                self.memory.put(key, data)
            return data
        return None

    async def _load(self, load: Loader, limit: int) -> bytes:
        async with self._slots:
            self.stats.loads += 1
            data = await load(limit)
        if len(data) > limit:  # a loader that could not stop early
            raise too_large(limit)
        return data

    async def _load_and_keep(self, key: str, md5: str, load: Loader, limit: int) -> bytes:
        data = await self._load(load, limit)
        if hashlib.md5(data, usedforsecurity=False).hexdigest() != md5:
            log.warning("attachment content does not match its MD5 %s; not cached", md5)
            return data
        if len(data) <= self.small_file_bytes and self.memory is not None:
            self.memory.put(key, data)
        if self.disk is not None:
            try:
                await self.disk.put(key, data)
            except OSError:
                log.exception("writing the attachment disk cache failed; continuing without")
        return data

    def close(self) -> None:
        """Remove the private disk cache directory."""
        if self.disk is not None:
            self.disk.close()


_SERVICES: WeakKeyDictionary[MailProxy, FetchService] = WeakKeyDictionary()


def service_for(mp: MailProxy) -> FetchService:
    """The kernel's ``FetchService``, created from the plugin settings on first use."""
    service = _SERVICES.get(mp)
    if service is None:
        settings = mp.plugin_settings(SETTINGS_SECTION)
        assert isinstance(settings, AttachmentsSettings)
        service = FetchService(settings)
        _SERVICES[mp] = service
    return service
