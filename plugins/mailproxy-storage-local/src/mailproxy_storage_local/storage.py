"""The ``local`` storage backend: files under one base directory, through fsspec's ``file``.

A mount's config is ``{"base_path": "/srv/files"}`` (absolute, ``~`` expanded), optionally with
``"public_base_url"``: then :meth:`LocalStorage.url` answers signed ``/download`` links (the
kernel adds it for rewritten large attachments, from the tenant's ``large_file_config``).

The plugin builds mounts with its ``allowed_roots`` setting: a base directory outside them (or
any, when none are set) is refused. Paths are relative to the base directory and may never
leave it: a path that is empty, absolute, has a ``..`` component, or resolves (symlinks
followed) outside the base directory's real path is refused with ``InvalidInput`` before
anything is read or written. Names starting with ``.mailproxy-`` at the top level belong to the
plugin (the link key and the link index) and are refused too. File I/O runs in worker
threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsspec.implementations.local import LocalFileSystem

from mailproxy_core import ConfigurationError, InvalidInput

if TYPE_CHECKING:
    from .links import LinkSigner

RESERVED_PREFIX = ".mailproxy-"
"""Top-level names the plugin keeps for itself inside a base directory."""


class LocalStorage:
    """Reads and writes files below ``base_path``; never outside it."""

    def __init__(
        self,
        base_path: str | os.PathLike[str],
        *,
        public_base_url: str | None = None,
        signer: LinkSigner | None = None,
        allowed_roots: tuple[str, ...] | None = None,
    ) -> None:
        base = Path(base_path).expanduser()
        if not base.is_absolute():
            raise ConfigurationError(
                f"local storage base_path '{base_path}' must be an absolute directory path"
            )
        self.base_path = os.path.realpath(base)
        if allowed_roots is not None:
            if not allowed_roots:
                raise ConfigurationError(
                    "the local storage backend is off: list the directories it may use in "
                    "[plugins.storage_local] allowed_roots (MAILPROXY_STORAGE_LOCAL__ALLOWED_ROOTS)"
                )
            if not any(_inside(self.base_path, root) for root in allowed_roots):
                raise ConfigurationError(
                    f"local storage base_path '{base_path}' is outside "
                    "[plugins.storage_local] allowed_roots"
                )
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.signer = signer
        self.fs = LocalFileSystem()

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        signer: LinkSigner | None = None,
        allowed_roots: tuple[str, ...] | None = None,
    ) -> LocalStorage:
        """Build from a mount config; ``ConfigurationError`` without a usable ``base_path``.

        With ``allowed_roots`` (real paths) the base directory must lie inside one of them.
        """
        base_path = config.get("base_path")
        if not isinstance(base_path, str) or not base_path.strip():
            raise ConfigurationError(
                "local storage needs config.base_path, the absolute directory of its files"
            )
        public = config.get("public_base_url")
        return cls(
            base_path.strip(),
            public_base_url=public if isinstance(public, str) and public else None,
            signer=signer,
            allowed_roots=allowed_roots,
        )

    # -- paths ---------------------------------------------------------------------------------

    def resolve(self, path: str) -> str:
        """The absolute real path of ``path`` inside the base directory.

        Raises ``InvalidInput`` when the path is empty, absolute, has a ``..`` component, names
        a reserved entry, or resolves outside the base directory (through a symlink).
        """
        relative = path.replace("\\", "/")
        parts = [part for part in relative.split("/") if part not in ("", ".")]
        if not parts or "\x00" in relative or relative.startswith("/"):
            raise InvalidInput(f"storage path '{path}' must be a relative file path")
        if ".." in parts:
            raise InvalidInput(f"storage path '{path}' must not contain '..'")
        if parts[0].startswith(RESERVED_PREFIX):
            raise InvalidInput(f"storage path '{path}' names a reserved entry")
        joined = os.path.join(self.base_path, *parts)
        real = os.path.realpath(joined)
        if not _inside(real, self.base_path):
            raise InvalidInput(f"storage path '{path}' leaves the storage's base directory")
        return real

    # -- the StorageBackend protocol -----------------------------------------------------------

    async def read(self, path: str, max_bytes: int | None = None) -> bytes:
        """The file's bytes; ``FileNotFoundError`` when it does not exist.

        With ``max_bytes`` at most ``max_bytes + 1`` bytes are read, so a caller enforcing a size
        cap learns that the file is larger without reading it all.
        """
        return await asyncio.to_thread(self._read, path, max_bytes)

    async def write(self, path: str, data: bytes) -> None:
        """Create or replace the file atomically (parents created as needed)."""
        await asyncio.to_thread(self._write, path, data)

    async def delete(self, path: str) -> None:
        """Remove the file and the directories it leaves empty; a missing file is fine."""
        await asyncio.to_thread(lambda: self.remove(self.resolve(path)))

    async def exists(self, path: str) -> bool:
        """Whether the file exists."""
        return await asyncio.to_thread(lambda: bool(self.fs.isfile(self.resolve(path))))

    async def url(self, path: str, expires_in: int | None = None) -> str | None:
        """A signed ``<public_base_url>/download/<token>/<name>`` link, or ``None``.

        ``None`` unless the mount has a ``public_base_url``: local files have no URL of their
        own. Links expire after ``expires_in`` seconds (default one day); the file is deleted
        by the cleanup task once its link expired.
        """
        if self.public_base_url is None or self.signer is None:
            return None
        real = await asyncio.to_thread(self.resolve, path)
        return await self.signer.link(self, self.relative(real), expires_in or 86400)

    # -- blocking helpers (worker threads) -----------------------------------------------------

    def _read(self, path: str, max_bytes: int | None = None) -> bytes:
        real = self.resolve(path)
        if not self.fs.isfile(real):
            raise FileNotFoundError(f"no such file: {self.relative(real)}")
        end = None if max_bytes is None else max_bytes + 1
        data: bytes = self.fs.cat_file(real, start=0 if end is not None else None, end=end)
        return data

    def _write(self, path: str, data: bytes) -> None:
        real = self.resolve(path)
        parent = posixpath.dirname(real)
        self.fs.makedirs(parent, exist_ok=True)
        if not _inside(os.path.realpath(parent), self.base_path):  # a symlink raced in
            raise InvalidInput(f"storage path '{self.relative(real)}' leaves the base directory")
        temporary = f"{real}.{secrets.token_hex(6)}.part"
        try:
            self.fs.pipe_file(temporary, data)
            os.replace(temporary, real)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)

    def remove(self, real: str) -> None:
        """Blocking: delete the file at resolved path ``real`` and the directories it empties."""
        if self.fs.isfile(real):
            self.fs.rm_file(real)
        parent = os.path.dirname(real)
        while parent != self.base_path and _inside(parent, self.base_path):
            try:
                os.rmdir(parent)
            except OSError:
                break  # not empty (or gone): stop climbing
            parent = os.path.dirname(parent)

    def relative(self, real: str) -> str:
        """``real`` relative to the base directory, for messages."""
        return os.path.relpath(real, self.base_path).replace(os.sep, "/")


def _inside(real: str, base: str) -> bool:
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)
