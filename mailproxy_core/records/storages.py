"""Storage mounts as ``StorageMount`` values, configs decrypted (never for a response)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..models import StorageMount

if TYPE_CHECKING:
    from ..crypto import SecretBox
    from ..kernel import MailProxy


def open_config(box: SecretBox, stored: str | None) -> dict[str, Any]:
    """The decrypted config of a mount row (``{}`` when none was given)."""
    if not stored:
        return {}
    value = json.loads(box.decrypt(stored))
    return dict(value) if isinstance(value, Mapping) else {}


def mount_from_row(box: SecretBox, row: Mapping[str, Any]) -> StorageMount:
    return StorageMount(
        tenant_id=row["tenant_id"],
        name=row["name"],
        protocol=row["protocol"],
        config=open_config(box, row.get("config")),
    )


async def load_storage(mp: MailProxy, tenant_id: str, name: str) -> StorageMount | None:
    """The tenant's mount ``name`` with its config decrypted, or ``None``; never for a response.

    Raises:
        ConfigurationError: the config cannot be decrypted with the configured key.
    """
    row = await mp.repos.storages.get(tenant_id, name)
    return None if row is None else mount_from_row(mp.secrets, row)


async def load_storages(mp: MailProxy, tenant_id: str) -> list[StorageMount]:
    """Every mount of the tenant, ordered by name, configs decrypted."""
    return [mount_from_row(mp.secrets, row) for row in await mp.repos.storages.list(tenant_id)]
