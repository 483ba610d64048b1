"""Tenants as ``Tenant`` values, secrets decrypted (for the kernel, never for a response)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..models import Tenant

if TYPE_CHECKING:
    from ..crypto import SecretBox
    from ..kernel import MailProxy

CLIENT_AUTH_SECRETS = ("token", "password")
"""The ``client_auth`` fields encrypted at rest and never returned."""


def tenant_from_row(box: SecretBox, row: Mapping[str, Any]) -> Tenant:
    """The ``Tenant`` model of a ``TenantsRepo`` row, secrets decrypted.

    Raises:
        ConfigurationError: a secret cannot be decrypted with the configured key.
    """
    client_auth = row.get("client_auth")
    if client_auth:
        client_auth = box.decrypt_fields(client_auth, CLIENT_AUTH_SECRETS)
    secret = row.get("report_signing_secret")
    return Tenant(
        id=row["id"],
        name=row.get("name"),
        client_base_url=row.get("client_base_url"),
        client_sync_path=row.get("client_sync_path"),
        client_attachment_path=row.get("client_attachment_path"),
        client_auth=client_auth or None,
        rate_limits=row.get("rate_limits"),
        large_file_config=row.get("large_file_config"),
        active=bool(row["active"]),
        suspended_batches=tuple(row.get("suspended_batches") or ()),
        reporter=row["reporter"],
        report_signing_secret=box.decrypt(secret) if secret else None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def load_tenant(mp: MailProxy, tenant_id: str) -> Tenant | None:
    """The tenant with its secrets decrypted, or ``None``: for the kernel, never for a response.

    Raises:
        ConfigurationError: a secret cannot be decrypted with the configured key.
    """
    row = await mp.repos.tenants.get(tenant_id)
    return None if row is None else tenant_from_row(mp.secrets, row)


async def load_tenants(mp: MailProxy, *, active_only: bool = False) -> list[Tenant]:
    """Every tenant (only active ones with ``active_only``), ordered by id, secrets decrypted."""
    rows = await mp.repos.tenants.list(active_only=active_only)
    return [tenant_from_row(mp.secrets, row) for row in rows]
