"""The ``storage`` fetcher: ``<mount>:<relative path>`` through the tenant's storage mounts.

The mount is the tenant's ``storages`` row of that name; its ``protocol`` picks the registered
storage backend (``local`` from ``mailproxy-storage-local``; EE ``s3``, ``gcs``, ``azure``) and its
decrypted ``config`` configures it. Backends are kept a few seconds per mount, like the
dispatcher's other directory data.

An unknown mount (possible with an explicit ``fetch_mode: "storage"``), an uninstalled protocol,
a path the backend refuses (``..``, escaping symlinks) and a missing file are permanent
failures; other I/O errors are transient.
"""

from __future__ import annotations

import functools
import inspect
import time

from mailproxy_core import (
    AttachmentError,
    AttachmentRef,
    MailProxy,
    MailproxyError,
    StorageBackend,
    Tenant,
)

from .service import service_for, too_large

MOUNT_CACHE_SECONDS = 5.0
"""How long a mount's backend is reused before its row is read again."""

MISSING_FILE_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


class StorageFetcher:
    """Reads ``<mount>:<path>`` attachments from the tenant's storage mounts."""

    def __init__(self, mp: MailProxy) -> None:
        self.mp = mp
        self.service = service_for(mp)
        self._backends: dict[tuple[str, str], tuple[float, StorageBackend]] = {}

    async def fetch(self, ref: AttachmentRef, tenant: Tenant, max_bytes: int | None) -> bytes:
        """The file's bytes from the mount's backend."""
        mount, sep, path = ref.storage_path.partition(":")
        if not sep or not mount or not path:
            raise AttachmentError(
                f"'{ref.storage_path}' is not '<mount>:<relative path>'", transient=False
            )

        async def load(limit: int) -> bytes:
            backend = await self.backend(tenant.id, mount)
            try:
                if _reads_with_a_cap(backend):
                    # at most limit + 1 bytes: enough to know the file is too large
                    data = await backend.read(path, max_bytes=limit)
                else:  # a backend written before read() took max_bytes
                    data = await backend.read(path)
            except AttachmentError:
                raise
            except MailproxyError as err:
                raise AttachmentError(err.detail, transient=False) from err
            except MISSING_FILE_ERRORS as err:
                raise AttachmentError(
                    f"no file '{path}' in storage '{mount}'", transient=False
                ) from err
            except OSError as err:
                raise AttachmentError(
                    f"reading '{path}' from storage '{mount}' failed: {err}", transient=True
                ) from err
            if len(data) > limit:
                raise too_large(limit)
            return data

        return await self.service.fetch(ref, tenant, max_bytes, load)

    async def backend(self, tenant_id: str, mount: str) -> StorageBackend:
        """The backend of the tenant's mount (cached a few seconds); permanent error if none."""
        now = time.monotonic()
        cached = self._backends.get((tenant_id, mount))
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self.mp.storage_mount(tenant_id, mount)
        if found is None:
            raise AttachmentError(
                f"storage '{mount}' not found for tenant '{tenant_id}'", transient=False
            )
        try:
            backend = self.mp.storage(found.protocol, found.config)
        except MailproxyError as err:
            raise AttachmentError(f"storage '{mount}': {err.detail}", transient=False) from err
        self._backends[(tenant_id, mount)] = (now + MOUNT_CACHE_SECONDS, backend)
        return backend

    def aclose(self) -> None:
        """Remove the shared cache's private directory (the kernel calls this at shutdown)."""
        self.service.close()


@functools.cache
def _takes_max_bytes(read_of: type) -> bool:
    try:
        return "max_bytes" in inspect.signature(read_of.read).parameters  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return False


def _reads_with_a_cap(backend: StorageBackend) -> bool:
    """Whether the backend's ``read`` accepts ``max_bytes`` (optional in the protocol)."""
    return _takes_max_bytes(type(backend))
