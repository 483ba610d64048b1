"""The ``storages`` entity (docs/api.md): a tenant's named file-storage mounts.

An attachment's ``storage_path`` of the form ``<mount>:<relative path>`` is read from the
tenant's mount of that name, through the storage backend registered for the mount's
``protocol`` (``local``; EE ``s3``, ``gcs``, ``azure``). The mount's ``config`` may hold cloud
credentials, so it is encrypted *as a whole* at rest; responses show only its non-secret keys
and list the secret ones in ``secret_config_keys``. :func:`load_storage` returns the decrypted
mount for the attachment fetchers.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from ..api.endpoint import POST, Endpoint, tenant_scoped
from ..errors import MailproxyError, NotFound
from ..records.storages import open_config
from .fields import FieldErrors
from .views import StorageObject, storage_view

log = logging.getLogger(__name__)

MOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""A mount name: it prefixes attachment paths (``HOME:invoices/1.pdf``), so no ``:`` or ``/``."""

RESERVED_MOUNT_NAMES = frozenset({"base64", "http", "https"})
"""Names that attachment paths already use as prefixes (``base64:...``, ``https://...``)."""


def _not_found(tenant_id: str, name: str) -> NotFound:
    return NotFound(f"storage '{name}' not found for tenant '{tenant_id}'")


class StoragesEndpoint(Endpoint):
    """Storages: a tenant's named file-storage mounts."""

    @POST
    @tenant_scoped
    async def add(
        self,
        tenant_id: str,
        name: str,
        protocol: str,
        config: dict[str, Any] | None = None,
    ) -> StorageObject:
        """Create a storage mount of the tenant, or replace the mount with the same name.

        Like the reference, adding an existing name replaces its protocol and config. The
        config is stored encrypted; the returned object shows its non-secret keys and lists
        the secret ones (keys, tokens, passwords ...) in ``secret_config_keys``.

        Args:
            tenant_id: the owning tenant.
            name: the mount name used in attachment paths ("HOME" for "HOME:path/file.pdf");
                letters, digits, '_', '.', '-'; not base64, http or https.
            protocol: a registered storage backend (local; EE s3, gcs, azure).
            config: backend-specific settings, e.g. {"base_path": "/data"} for local or
                {"bucket", "prefix", "aws_access_key_id", "aws_secret_access_key"} for s3.
                The backend checks it when the mount is added (422 naming the problem).
        """
        errors = FieldErrors()
        if not MOUNT_NAME.match(name):
            errors.add(
                "name",
                "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
                "string_pattern_mismatch",
            )
        elif name.lower() in RESERVED_MOUNT_NAMES:
            errors.add("name", f"'{name}' is reserved for attachment path prefixes")
        protocols = sorted(self.mp.registry.storage_backends.names())
        if protocol not in protocols:
            errors.add(
                "protocol",
                f"unknown storage protocol '{protocol}'; available: "
                f"{', '.join(protocols) or 'none installed'}",
            )
        errors.raise_if_any()
        try:  # build the backend once: a mount it cannot use is refused now, not at first use
            self.mp.storage(protocol, config or {})
        except MailproxyError as err:
            errors.add("config", err.detail)
            errors.raise_if_any()
        stored = None
        if config:
            stored = self.mp.secrets.encrypt(json.dumps(config, ensure_ascii=False))
        row = await self.mp.repos.storages.upsert(tenant_id, name, protocol=protocol, config=stored)
        log.info("storage mount saved", extra={"tenant_id": tenant_id, "storage": name})
        return storage_view(row, config)

    @tenant_scoped
    async def get(self, tenant_id: str, name: str) -> StorageObject:
        """One mount of the tenant (secret config values left out); 404 if unknown.

        Args:
            tenant_id: the owning tenant.
            name: the mount name.
        """
        row = await self.mp.repos.storages.get(tenant_id, name)
        if row is None:
            raise _not_found(tenant_id, name)
        return storage_view(row, open_config(self.mp.secrets, row.get("config")))

    @tenant_scoped
    async def list(self, tenant_id: str) -> list[StorageObject]:
        """Every mount of the tenant, ordered by name (secret config values left out).

        Args:
            tenant_id: the owning tenant.
        """
        rows = await self.mp.repos.storages.list(tenant_id)
        if not rows and not await self.mp.repos.tenants.exists(tenant_id):
            raise NotFound(f"tenant '{tenant_id}' not found")
        box = self.mp.secrets
        return [storage_view(row, open_config(box, row.get("config"))) for row in rows]

    @POST
    @tenant_scoped
    async def delete(self, tenant_id: str, name: str) -> dict[str, Any]:
        """Delete a mount; attachments naming it then fail permanently.

        Args:
            tenant_id: the owning tenant.
            name: the mount name.
        """
        if not await self.mp.repos.storages.delete(tenant_id, name):
            raise _not_found(tenant_id, name)
        log.info("storage mount deleted", extra={"tenant_id": tenant_id, "storage": name})
        return {"ok": True}
