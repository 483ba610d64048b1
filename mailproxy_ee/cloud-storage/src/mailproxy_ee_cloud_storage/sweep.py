"""The ``ee_cloud_storage_sweep`` task: deletes rewritten large files whose link expired.

The kernel writes each rewritten attachment as ``<prefix><expires_ts>-<random>/<filename>``.
A round lists, for every tenant whose ``large_file_config`` rewrites to a cloud store (an
``s3://``, ``gs://`` or ``az://`` storage URL, or ``<mount>:<prefix>`` naming an ``s3``, ``gcs``
or ``azure`` mount), the entries right below the prefix and deletes those whose expiry passed.
Listing one level is cheap on every store; a bucket lifecycle rule on the prefix does the same
job inside the cloud (see the plugin's README). In test mode the task does nothing; tests call
:func:`sweep_expired`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from mailproxy_core import MailProxy, MailproxyError, run_every

from .config import URL_SCHEMES, Problems, clean_prefix, parse_mount, parse_url
from .state import state_of
from .storage import CloudStorage

log = logging.getLogger(__name__)

CLOUD_PROTOCOLS = ("s3", "gcs", "azure")


async def run_sweep(mp: MailProxy) -> None:
    """Background task: one round at startup, then one every ``sweep_interval`` seconds; none
    in test mode, as for the kernel's retention (tests run a round themselves)."""
    if mp.settings.test_mode:
        return

    async def sweep_round() -> None:
        removed = await sweep_expired(mp)
        if removed:
            log.info("deleted %d expired large files from cloud storage", removed)

    await run_every(
        state_of(mp).settings.sweep_interval,
        sweep_round,
        log=log,
        failed="deleting expired large files from cloud storage failed",
        effect="expired large files are deleted when it is back",
    )


async def sweep_expired(mp: MailProxy, now: float | None = None) -> int:
    """Delete every rewritten file whose link expired before ``now``; returns how many."""
    moment = time.time() if now is None else now
    removed = 0
    for storage, prefix in await configured_stores(mp):
        try:
            names = await storage.list_dirs(prefix)
        except (OSError, MailproxyError) as err:
            log.warning("listing %s for expired files failed: %s", storage.target.describe(), err)
            continue
        for name in names:
            stamp, dash, rest = name.partition("-")
            if dash and rest and stamp.isdigit() and int(stamp) < moment:
                removed += await storage.delete_tree(prefix + name)
    return removed


async def configured_stores(mp: MailProxy) -> list[tuple[CloudStorage, str]]:
    """The cloud stores and prefixes that tenants' ``rewrite`` configurations write to."""
    state = state_of(mp)
    found: dict[tuple[str, str, str], tuple[CloudStorage, str]] = {}
    for tenant_id in await mp.tenant_names():
        tenant = await mp.tenant(tenant_id)
        config = tenant.large_file_config if tenant is not None else None
        if not isinstance(config, Mapping) or config.get("action") != "rewrite":
            continue
        url = str(config.get("storage_url") or "")
        try:
            if url.partition("://")[0].lower() in URL_SCHEMES and "://" in url:
                storage, prefix = CloudStorage(parse_url(url, state.settings), state.pool), ""
            else:
                mount_name, sep, rest = url.partition(":")
                if not sep:
                    continue
                mount = await mp.storage_mount(tenant_id, mount_name)
                if mount is None or mount.protocol not in CLOUD_PROTOCOLS:
                    continue
                target = parse_mount(mount.protocol, mount.config, state.settings)  # type: ignore[arg-type]
                problems = Problems(mount.protocol)
                prefix = clean_prefix(rest, problems)
                if problems.items:
                    continue
                storage = CloudStorage(target, state.pool)
        except MailproxyError as err:
            log.warning("tenant %s: large_file_config.storage_url unusable: %s", tenant_id, err)
            continue
        target = storage.target
        found[(target.client_key, target.container, target.prefix + prefix)] = (storage, prefix)
    return list(found.values())
