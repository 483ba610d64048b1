"""The ``storage_local_link_cleanup`` task: deletes local files whose download link expired.

Each link issued is indexed in ``<base>/.mailproxy-links/<expiry>-<hash>`` (see ``links.py``).
A round sweeps the index of every directory that may hold linked files: those this process
issued links for, and those the tenants' ``large_file_config`` names for ``rewrite``
(``file:///<dir>``, or ``<mount>:<prefix>`` on a ``local`` mount), so files written by another
process or before a restart are found too. Expired entries lose their file (and the directories
it leaves empty), then their index entry. In test mode the task does nothing; tests call
:func:`delete_expired_links`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping

from mailproxy_core import InvalidInput, MailProxy, run_every

from .links import INDEX_DIR
from .state import state_of
from .storage import LocalStorage

log = logging.getLogger(__name__)


async def run_link_cleanup(mp: MailProxy) -> None:
    """Background task: one round at startup, then one every ``cleanup_interval`` seconds; none
    in test mode, as for the kernel's retention (tests run a round themselves)."""
    if mp.settings.test_mode:
        return

    async def cleanup_round() -> None:
        removed = await delete_expired_links(mp)
        if removed:
            log.info("deleted %d files whose download link expired", removed)

    await run_every(
        state_of(mp).settings.cleanup_interval,
        cleanup_round,
        log=log,
        failed="deleting expired download files failed",
        effect="expired download files are deleted when it is back",
    )


async def delete_expired_links(mp: MailProxy, now: float | None = None) -> int:
    """Delete every indexed file whose link expired before ``now``; returns how many."""
    moment = time.time() if now is None else now
    roots = set(state_of(mp).signer.issued_roots) | await configured_roots(mp)
    removed = 0
    for root in sorted(roots):
        removed += await asyncio.to_thread(_sweep, root, moment)
    return removed


async def configured_roots(mp: MailProxy) -> set[str]:
    """Base directories named by the tenants' ``rewrite`` configurations."""
    roots: set[str] = set()
    for tenant_id in await mp.tenant_names():
        tenant = await mp.tenant(tenant_id)
        config = tenant.large_file_config if tenant is not None else None
        if not isinstance(config, Mapping) or config.get("action") != "rewrite":
            continue
        url = str(config.get("storage_url") or "")
        directory: str | None = url.removeprefix("file://")
        if not url.startswith(("file://", "/")):
            directory = await _local_mount_base(mp, tenant_id, url.partition(":")[0])
        if directory:
            roots.add(directory)
    return set(filter(None, await asyncio.to_thread(lambda: [_real_dir(d) for d in roots])))


def _real_dir(directory: str) -> str | None:
    expanded = os.path.expanduser(directory)
    return os.path.realpath(expanded) if os.path.isabs(expanded) else None


async def _local_mount_base(mp: MailProxy, tenant_id: str, name: str) -> str | None:
    mount = await mp.storage_mount(tenant_id, name)
    if mount is None or mount.protocol != "local":
        return None
    base = mount.config.get("base_path")
    return base if isinstance(base, str) else None


def _sweep(root: str, now: float) -> int:
    index = os.path.join(root, INDEX_DIR)
    try:
        entries = os.listdir(index)
    except FileNotFoundError:
        return 0
    # A file linked twice (a mount's url() asked again) lives until its latest link expires.
    latest: dict[str, int] = {}
    parsed: list[tuple[str, int, str]] = []
    for entry in entries:
        stamp, dash, digest = entry.partition("-")
        if dash and stamp.isdigit():
            parsed.append((entry, int(stamp), digest))
            latest[digest] = max(latest.get(digest, 0), int(stamp))
    storage = LocalStorage(root)
    removed = 0
    for entry, expiry, digest in parsed:
        if expiry >= now:
            continue
        entry_path = os.path.join(index, entry)
        if latest[digest] < now:
            removed += _remove_linked_file(storage, entry_path)
        try:
            os.unlink(entry_path)
        except FileNotFoundError:
            pass
    return removed


def _remove_linked_file(storage: LocalStorage, entry_path: str) -> int:
    try:
        with open(entry_path, encoding="utf-8") as handle:
            real = storage.resolve(handle.read())
        if not os.path.isfile(real):
            return 0
        storage.remove(real)
    except (OSError, InvalidInput):
        return 0  # unreadable or unsafe entry, or already gone: nothing of ours to delete
    return 1
