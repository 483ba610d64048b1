"""The two tiers of the attachment cache: memory (small, hot files) and disk (everything).

Keys are opaque strings (the service derives them from the tenant and the MD5 of the content).
Both tiers expire entries after a time to live and evict the least recently used entries when
over their size limit. The memory tier is plain Python, touched only from the event loop. The
disk tier keeps one file per key, named by the SHA-256 of the key, written atomically (a
temporary file renamed into place) so that processes sharing the directory never read half a
file; its blocking work runs in worker threads. A file already there when the process starts,
or written by another process, is found by looking at the directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import shutil
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class MemoryCache:
    """An LRU of byte strings bounded by their total size, each entry with a deadline."""

    def __init__(
        self, max_bytes: int, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.size = 0

    def get(self, key: str) -> bytes | None:
        """The cached bytes, refreshed as most recently used; ``None`` if absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        deadline, data = entry
        if deadline < self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return data

    def put(self, key: str, data: bytes) -> None:
        """Cache ``data``, evicting the least recently used entries beyond the size limit."""
        if len(data) > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self._clock() + self.ttl, data)
        self.size += len(data)
        while self.size > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: str) -> None:
        _deadline, data = self._entries.pop(key)
        self.size -= len(data)


@dataclass(slots=True)
class _DiskEntry:
    size: int
    stored_at: float


class DiskCache:
    """Files in one directory, bounded by their total size, each kept ``ttl`` seconds."""

    def __init__(self, directory: Path | None, max_bytes: int, ttl: float) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._owned = directory is None
        self._directory = directory
        self._index: OrderedDict[str, _DiskEntry] = OrderedDict()
        self.size = 0
        self._lock = asyncio.Lock()

    @property
    def directory(self) -> Path:
        """The cache directory (a private temporary one is made on first use when unset)."""
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="mailproxy-attachments-"))
        return self._directory

    def _path(self, key: str) -> Path:
        return self.directory / hashlib.sha256(key.encode()).hexdigest()

    async def get(self, key: str) -> bytes | None:
        """The cached bytes, or ``None`` when absent or older than the time to live."""
        path = self._path(key)
        data, stored_at = await asyncio.to_thread(_read_fresh, path, self.ttl)
        if data is None:
            if key in self._index:
                self._forget(key)
            return None
        if key not in self._index:
            self.size += len(data)
        self._index[key] = _DiskEntry(len(data), stored_at)
        self._index.move_to_end(key)
        await self._trim()
        return data

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, evicting the least recently used files beyond the limit."""
        if len(data) > self.max_bytes:
            return
        path = self._path(key)
        await asyncio.to_thread(_write_atomically, path, data)
        if key in self._index:
            self._forget(key)
        self._index[key] = _DiskEntry(len(data), time.time())
        self.size += len(data)
        await self._trim()

    async def _trim(self) -> None:
        async with self._lock:
            victims = []
            while self.size > self.max_bytes and self._index:
                key = next(iter(self._index))
                victims.append(self._path(key))
                self._forget(key)
            if victims:
                await asyncio.to_thread(_unlink_all, victims)

    def _forget(self, key: str) -> None:
        entry = self._index.pop(key)
        self.size -= entry.size

    def close(self) -> None:
        """Remove the directory if it is the private temporary one."""
        if self._owned and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
            self._index.clear()
            self.size = 0


def _read_fresh(path: Path, ttl: float) -> tuple[bytes | None, float]:
    try:
        stored_at = path.stat().st_mtime
        if stored_at + ttl < time.time():
            path.unlink(missing_ok=True)
            return None, 0.0
        return path.read_bytes(), stored_at
    except FileNotFoundError:
        return None, 0.0


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{secrets.token_hex(6)}.part")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
