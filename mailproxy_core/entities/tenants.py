"""The ``tenants`` entity (docs/api.md) and the kernel's way to read a tenant with its secrets.

Secrets at rest: the ``client_auth`` token/password and the ``report_signing_secret`` are
encrypted with the instance key (``mp.secrets``) before they are written. API responses never
contain them (``views.tenant_view``); :func:`load_tenant` decrypts them for internal use only
(the reporter and the attachment fetcher authenticate to the client application with them).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

from ..api.endpoint import POST, Endpoint, admin_only, tenant_scoped
from ..errors import Forbidden, MailproxyError, NotFound
from ..records.tenants import CLIENT_AUTH_SECRETS, tenant_from_row
from .batches import activate_batch, get_suspended_batches, suspend_batch
from .fields import (
    ClientAuth,
    FieldErrors,
    LargeFileConfig,
    RateLimits,
    blank_to_none,
    check_http_url,
    check_identifier,
    check_url_path,
)
from .view_extensions import extend_view, extend_views
from .views import TenantObject, tenant_view

if TYPE_CHECKING:
    from ..kernel import MailProxy

log = logging.getLogger(__name__)

DEFAULT_REPORTER = "http"
"""The reporter of a tenant that names none (delivered by the ``reporter_http`` plugin)."""

ADMIN_ONLY_FIELDS = ("active", "reporter")
"""Tenant fields only the instance admin may change: a tenant key cannot re-enable a tenant
the operator disabled, nor move its reports to another delivery mechanism."""


def check_storage_url(mp: MailProxy, errors: FieldErrors, url: str | None) -> None:
    """``large_file_config.storage_url`` (when set) must be a form the dispatcher can use:
    ``file:///<directory>`` (or an absolute path), ``<mount>:<prefix>``, or a URL whose scheme
    an installed storage backend claims (checked by that backend, without network access)."""
    if url is None or url.startswith(("file://", "/")):
        return
    field = "large_file_config.storage_url"
    _scheme, has_scheme, _rest = url.partition("://")
    if has_scheme:
        try:
            mp.storage_for_url(url)
        except MailproxyError as err:
            errors.add(field, err.detail)
        return
    mount, has_mount, _prefix = url.partition(":")
    if not has_mount or not mount:
        claimed = "".join(f", {name}://..." for name in sorted(mp.storage_url_schemes()))
        errors.add(
            field,
            f"'{url}' is not a storage URL: give file:///<directory>, <mount>:<prefix>{claimed}",
        )
        return
    check_identifier(errors, field, mount)


class TenantsEndpoint(Endpoint):
    """Tenants: the client applications served by this instance."""

    @POST
    @admin_only
    async def add(
        self,
        id: str,
        name: str | None = None,
        client_base_url: str | None = None,
        client_sync_path: str | None = None,
        client_attachment_path: str | None = None,
        client_auth: ClientAuth | None = None,
        rate_limits: RateLimits | None = None,
        large_file_config: LargeFileConfig | None = None,
        active: bool | None = None,
        reporter: str | None = None,
        report_signing_secret: str | None = None,
    ) -> TenantObject:
        """Create a tenant (a client application), or update the tenant with the same id.

        An existing id is updated with the fields given, like ``tenants/update``: fields left
        out (or null) keep their values, and the answer is 200 as for a creation. Returns the
        tenant object. Secrets (client_auth token/password, report_signing_secret) are stored
        encrypted and never returned: the object shows ``client_auth`` as
        ``{"method", "user"?}`` plus ``has_credentials`` and ``has_report_signing_secret``.
        Plugins may add fields to the response of a creation only (an EE API key shown once).

        Args:
            id: the tenant id chosen by the operator (no spaces, '/' or '\\'; at most 128 chars).
            name: a display name.
            client_base_url: http(s) base URL of the client application (delivery reports and
                attachments are requested from it).
            client_sync_path: path of the delivery-report endpoint (default /mail-proxy/sync).
            client_attachment_path: path of the attachment endpoint
                (default /mail-proxy/attachments).
            client_auth: how to authenticate to the client application:
                {"method": "bearer", "token"}, {"method": "basic", "user", "password"} or
                {"method": "none"}.
            rate_limits: limits across all accounts of the tenant:
                {"per_minute"?, "per_hour"?, "per_day"?}, positive integers.
            large_file_config: handling of large attachments: {"enabled", "max_size_mb",
                "action": "warn"|"reject"|"rewrite", "storage_url"?, "public_base_url"?,
                "file_ttl_days"?}.
            active: whether the tenant's messages are sent (default true for a new tenant).
            reporter: the delivery-report mechanism (a registered reporter; default http for a
                new tenant).
            report_signing_secret: when set, reports carry an X-Mailproxy-Signature HMAC header.
        """
        errors = FieldErrors()
        check_identifier(errors, "id", id)
        fields = self._prepare(
            errors,
            name=name,
            client_base_url=client_base_url,
            client_sync_path=client_sync_path,
            client_attachment_path=client_attachment_path,
            client_auth=client_auth,
            rate_limits=rate_limits,
            large_file_config=large_file_config,
            reporter=reporter,
            report_signing_secret=report_signing_secret,
        )
        errors.raise_if_any()
        if active is not None:
            fields["active"] = active
        created_extra: dict[str, Any] = {}

        async def on_create(row: dict[str, Any]) -> None:
            tenant = tenant_from_row(self.mp.secrets, row)
            created_extra.update(await self.mp.hooks.tenant_created(self.mp, tenant))

        row, created = await self.mp.repos.tenants.add_or_update(
            id,
            defaults={"active": True, "reporter": DEFAULT_REPORTER},
            fields=fields,
            on_create=on_create,
        )
        log.info("tenant %s", "added" if created else "updated", extra={"tenant_id": id})
        if not created:
            self.mp.directory_changed()
        view = await extend_view(self.mp, "tenants", tenant_view(row))
        for key, value in created_extra.items():
            cast(dict[str, Any], view).setdefault(key, value)
        return view

    @tenant_scoped
    async def get(self, tenant_id: str) -> TenantObject:
        """The tenant object (no secrets); 404 for an unknown tenant.

        Args:
            tenant_id: the tenant.
        """
        row = await self.mp.repos.tenants.get(tenant_id)
        if row is None:
            raise NotFound(f"tenant '{tenant_id}' not found")
        return await extend_view(self.mp, "tenants", tenant_view(row))

    @admin_only
    async def list(self, active_only: bool = False) -> list[TenantObject]:
        """Every tenant, ordered by id (no secrets).

        Args:
            active_only: only tenants whose messages are sent.
        """
        rows = await self.mp.repos.tenants.list(active_only=active_only)
        return await extend_views(self.mp, "tenants", [tenant_view(row) for row in rows])

    @POST
    @tenant_scoped
    async def update(
        self,
        tenant_id: str,
        name: str | None = None,
        client_base_url: str | None = None,
        client_sync_path: str | None = None,
        client_attachment_path: str | None = None,
        client_auth: ClientAuth | None = None,
        rate_limits: RateLimits | None = None,
        large_file_config: LargeFileConfig | None = None,
        active: bool | None = None,
        reporter: str | None = None,
        report_signing_secret: str | None = None,
    ) -> TenantObject:
        """Change some fields of a tenant; returns the tenant object.

        Fields left out (or null) keep their value. An empty string clears a text field
        (name, client_base_url, client_sync_path, client_attachment_path,
        report_signing_secret); {"method": "none"} removes the client credentials; {} removes
        the rate limits. client_auth is replaced as a whole, so send the secret again when
        changing the user. A tenant key may update its own tenant except ``active`` and
        ``reporter``, which only the instance admin may change (403).

        Args:
            tenant_id: the tenant.
            name: a display name.
            client_base_url: http(s) base URL of the client application.
            client_sync_path: path of the delivery-report endpoint.
            client_attachment_path: path of the attachment endpoint.
            client_auth: {"method": "bearer", "token"}, {"method": "basic", "user", "password"}
                or {"method": "none"}.
            rate_limits: {"per_minute"?, "per_hour"?, "per_day"?}, positive integers.
            large_file_config: {"enabled", "max_size_mb", "action", "storage_url"?,
                "public_base_url"?, "file_ttl_days"?}.
            active: whether the tenant's messages are sent (admin only).
            reporter: the delivery-report mechanism (admin only).
            report_signing_secret: the HMAC secret of delivery reports.
        """
        if not self.is_admin:
            given = {"active": active, "reporter": reporter}
            locked = [field for field in ADMIN_ONLY_FIELDS if given[field] is not None]
            if locked:
                raise Forbidden(
                    f"only the instance admin may change {', '.join(locked)} of a tenant; "
                    "leave these fields out"
                )
        errors = FieldErrors()
        fields = self._prepare(
            errors,
            name=name,
            client_base_url=client_base_url,
            client_sync_path=client_sync_path,
            client_attachment_path=client_attachment_path,
            client_auth=client_auth,
            rate_limits=rate_limits,
            large_file_config=large_file_config,
            reporter=reporter,
            report_signing_secret=report_signing_secret,
        )
        errors.raise_if_any()
        if active is not None:
            fields["active"] = active
        if not fields:
            return await self.get(tenant_id)
        row = await self.mp.repos.tenants.update(tenant_id, **fields)
        self.mp.directory_changed()
        return await extend_view(self.mp, "tenants", tenant_view(row))

    @POST
    @admin_only
    async def delete(self, tenant_id: str) -> dict[str, Any]:
        """Delete a tenant with its accounts, messages, events and storages (one transaction).

        Args:
            tenant_id: the tenant.
        """
        if not await self.mp.repos.tenants.delete(tenant_id):
            raise NotFound(f"tenant '{tenant_id}' not found")
        log.info("tenant deleted", extra={"tenant_id": tenant_id})
        self.mp.directory_changed()
        return {"ok": True}

    @POST
    @tenant_scoped
    async def suspend_batch(self, tenant_id: str, batch_code: str | None = None) -> dict[str, Any]:
        """Stop sending one batch of the tenant, or everything when batch_code is left out.

        Suspended messages stay queued. Without batch_code every message is held, those
        without a batch code included (``"*"``). Returns
        ``{"ok": true, "tenant_id", "suspended_batches": [...]}``.

        Args:
            tenant_id: the tenant.
            batch_code: the batch to suspend; omit it to suspend everything.
        """
        return await suspend_batch(self.mp, tenant_id, batch_code)

    @POST
    @tenant_scoped
    async def activate_batch(self, tenant_id: str, batch_code: str | None = None) -> dict[str, Any]:
        """Resume sending one suspended batch, or everything when batch_code is left out.

        Activating one batch while everything is suspended (``"*"``) is refused with 409:
        activate everything first, then suspend what must stay suspended. Returns
        ``{"ok": true, "tenant_id", "suspended_batches": [...]}`` with what is still suspended.

        Args:
            tenant_id: the tenant.
            batch_code: the batch to resume; omit it to resume everything.
        """
        return await activate_batch(self.mp, tenant_id, batch_code)

    @tenant_scoped
    async def get_suspended_batches(self, tenant_id: str) -> dict[str, Any]:
        """The tenant's suspended batches: ``{"ok": true, "tenant_id", "suspended_batches"}``.

        Args:
            tenant_id: the tenant.
        """
        return await get_suspended_batches(self.mp, tenant_id)

    def _prepare(
        self,
        errors: FieldErrors,
        *,
        name: str | None,
        client_base_url: str | None,
        client_sync_path: str | None,
        client_attachment_path: str | None,
        client_auth: ClientAuth | None,
        rate_limits: RateLimits | None,
        large_file_config: LargeFileConfig | None,
        reporter: str | None,
        report_signing_secret: str | None,
    ) -> dict[str, Any]:
        """Validate the given (non-None) fields and turn them into stored values.

        Empty strings become NULL; secrets are encrypted; problems are added to ``errors``.
        """
        fields: dict[str, Any] = {}
        texts = {
            "name": name,
            "client_base_url": client_base_url,
            "client_sync_path": client_sync_path,
            "client_attachment_path": client_attachment_path,
        }
        for key, value in texts.items():
            if value is not None:
                fields[key] = blank_to_none(value)
        check_http_url(errors, "client_base_url", fields.get("client_base_url"))
        check_url_path(errors, "client_sync_path", fields.get("client_sync_path"))
        check_url_path(errors, "client_attachment_path", fields.get("client_attachment_path"))
        if client_auth is not None:
            fields["client_auth"] = self.mp.secrets.encrypt_fields(
                client_auth.stored(), CLIENT_AUTH_SECRETS
            )
        if rate_limits is not None:
            fields["rate_limits"] = rate_limits.stored()
        if large_file_config is not None:
            fields["large_file_config"] = large_file_config.stored()
            check_storage_url(self.mp, errors, large_file_config.storage_url)
        if reporter is not None:
            known = {DEFAULT_REPORTER, *self.mp.registry.reporters.names()}
            if reporter not in known:
                errors.add(
                    "reporter",
                    f"unknown reporter '{reporter}'; available: {', '.join(sorted(known))}",
                )
            fields["reporter"] = reporter
        if report_signing_secret is not None:
            secret = blank_to_none(report_signing_secret)
            fields["report_signing_secret"] = self.mp.secrets.encrypt(secret) if secret else None
        return fields
