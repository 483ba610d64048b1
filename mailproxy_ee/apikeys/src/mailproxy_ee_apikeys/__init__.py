"""mail-proxy enterprise plugin ``ee_apikeys``: per-tenant API keys.

* a **default key** per tenant, minted when ``tenants/add`` creates the tenant (shown once as
  ``api_key``), replaced by ``tenants/create_api_key``, removed by ``tenants/revoke_api_key``;
* **scoped keys**: any number of named keys per tenant (``api_keys/add|list|revoke``) with the
  scopes ``send``, ``read`` and ``manage``;
* an authentication backend, asked before the admin token, that turns a key into its tenant's
  principal, so every route is scoped to that tenant;
* ``has_api_key`` and ``api_key_expires_at`` on tenant objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mailproxy_core import (
    AuthBackendSpec,
    EndpointSpec,
    MailProxy,
    MigrationSpec,
    Tenant,
    ViewExtensionSpec,
    hookimpl,
)

from .backend import ApiKeyBackend
from .endpoints import ApiKeys, TenantApiKeys, mint_default_key
from .store import MIGRATIONS, KeyStore

__version__ = "0.1.0"

AUTH_ORDER = 5
"""Asked before the admin token (``auth_token`` is 10): a key is recognised by its form."""


@hookimpl
def mailproxy_register_auth_backends() -> list[AuthBackendSpec]:
    return [AuthBackendSpec("ee_api_keys", ApiKeyBackend, order=AUTH_ORDER)]


@hookimpl
def mailproxy_register_endpoints() -> list[EndpointSpec]:
    return [EndpointSpec("tenants", TenantApiKeys), EndpointSpec("api_keys", ApiKeys)]


@hookimpl
def mailproxy_register_migrations() -> list[MigrationSpec]:
    return list(MIGRATIONS)


@hookimpl
async def mailproxy_tenant_created(mp: MailProxy, tenant: Tenant) -> Mapping[str, Any]:
    """A new tenant gets its first default key, shown once in the ``tenants/add`` answer."""
    return {"api_key": await mint_default_key(mp, tenant.id)}


async def tenant_key_fields(
    mp: MailProxy, rows: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """``has_api_key`` and ``api_key_expires_at`` of each tenant object (never a hash)."""
    defaults = await KeyStore(mp).default_keys([str(row["id"]) for row in rows])
    fields: list[dict[str, Any]] = []
    for row in rows:
        key = defaults.get(str(row["id"]))
        fields.append(
            {
                "has_api_key": key is not None,
                "api_key_expires_at": None if key is None else key.expires_at,
            }
        )
    return fields


@hookimpl
def mailproxy_register_view_extensions() -> list[ViewExtensionSpec]:
    return [ViewExtensionSpec("ee_apikeys", "tenants", tenant_key_fields)]


@hookimpl(optionalhook=True)
def mailproxy_dashboard_pages() -> list[Any]:
    """With the web dashboard installed: the API keys page (the dashboard is imported only
    here, so the plugin works without it)."""
    from .dashboard import pages

    return list(pages())
