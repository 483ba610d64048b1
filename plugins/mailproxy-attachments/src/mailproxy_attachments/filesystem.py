"""The ``filesystem`` fetcher: absolute paths inside ``MAILPROXY_ATTACHMENT_ROOTS`` only.

With no roots configured the mode is off. A path must be absolute, must not contain a ``..``
component, and its real path (every symlink resolved) must lie inside the real path of a root;
otherwise the attachment fails permanently and nothing is opened. The file is then opened
without following a final symlink (one swapped in after the check fails the open), must be a
regular file, and is read up to the size cap. All of it runs in a worker thread.

Missing, unreadable or non-regular files are permanent failures; other I/O errors are
transient.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat

from mailproxy_core import AttachmentError, AttachmentRef, MailProxy, Tenant

from .service import service_for, too_large

PERMANENT_ERRNOS = frozenset(
    {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ELOOP, errno.ENOTDIR}
)


class FilesystemFetcher:
    """Reads attachments from the directories the operator allowed."""

    def __init__(self, mp: MailProxy) -> None:
        self.service = service_for(mp)
        self.roots = tuple(os.path.realpath(root) for root in mp.settings.attachment_roots)

    async def fetch(self, ref: AttachmentRef, tenant: Tenant, max_bytes: int | None) -> bytes:
        """The file's bytes; see the module doc for what is refused."""
        path = ref.storage_path
        if not self.roots:
            raise AttachmentError(
                "filesystem attachments are off (MAILPROXY_ATTACHMENT_ROOTS is empty)",
                transient=False,
            )
        if not os.path.isabs(path):
            raise AttachmentError(f"'{path}' is not an absolute path", transient=False)
        if ".." in path.replace("\\", "/").split("/"):
            raise AttachmentError(f"'{path}' must not contain '..'", transient=False)

        async def load(limit: int) -> bytes:
            return await asyncio.to_thread(read_inside, path, self.roots, limit)

        return await self.service.fetch(ref, tenant, max_bytes, load)

    def aclose(self) -> None:
        """Remove the shared cache's private directory (the kernel calls this at shutdown)."""
        self.service.close()


def inside_roots(real: str, roots: tuple[str, ...]) -> bool:
    """Whether the real path ``real`` is one of ``roots`` or below one."""
    return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def read_inside(path: str, roots: tuple[str, ...], limit: int) -> bytes:
    """Blocking: check that ``path`` really lies inside ``roots``, then read at most ``limit``."""
    real = os.path.realpath(path)
    if not inside_roots(real, roots):
        raise AttachmentError(f"'{path}' is outside MAILPROXY_ATTACHMENT_ROOTS", transient=False)
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as err:
        raise _io_error(path, err) from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise AttachmentError(f"'{path}' is not a regular file", transient=False)
        if info.st_size > limit:
            raise too_large(limit)
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as err:
        raise _io_error(path, err) from err
    finally:
        os.close(fd)
    if len(data) > limit:
        raise too_large(limit)
    return data


def _io_error(path: str, err: OSError) -> AttachmentError:
    reason = err.strerror or type(err).__name__
    return AttachmentError(
        f"cannot read '{path}': {reason}", transient=err.errno not in PERMANENT_ERRNOS
    )
