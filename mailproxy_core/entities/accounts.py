"""The ``accounts`` entity (docs/api.md) and the kernel's way to read an account with its secrets.

The password and every secret-named option (``api_key``, ``token`` ... see ``secrets.py``) are
encrypted with the instance key before they are written; responses show ``has_password`` and
``secret_option_keys`` instead (``views.account_view``). :func:`load_account` decrypts them for
the dispatcher and transports only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..api.endpoint import POST, Endpoint, tenant_scoped
from ..api.errors import field_errors, invalid_input
from ..errors import NotFound
from ..records.secrets import seal, secret_value_errors
from .fields import FieldErrors, blank_to_none, check_identifier, check_port, check_positive
from .view_extensions import extend_view, extend_views
from .views import AccountObject, account_view

if TYPE_CHECKING:
    from ..kernel import MailProxy

log = logging.getLogger(__name__)

DEFAULT_TRANSPORT = "smtp"
"""The transport of an account that names none."""

TRANSPORTS_NEEDING_HOST = frozenset({"smtp"})
"""Transports for which ``host`` and ``port`` are required. Others (``file``, ``null``, plugin
transports such as an HTTP relay configured through ``options``) may go without."""


class AccountFields(BaseModel):
    """The fields of ``accounts/add`` (and of ``mp.save_account``), validated by type.

    Defaults are those of ``accounts/add``: every field is set from one call, so a field left
    out goes back to its default.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = None
    use_tls: bool | None = True
    batch_size: int | None = None
    ttl: int = 300
    limit_per_minute: int | None = None
    limit_per_hour: int | None = None
    limit_per_day: int | None = None
    limit_behavior: Literal["defer", "reject"] = "defer"
    transport: str = DEFAULT_TRANSPORT
    options: dict[str, Any] | None = None


def account_fields(tenant_id: str, values: Mapping[str, Any]) -> AccountFields:
    """``values`` (the body of ``accounts/add``; its ``tenant_id`` may be left out) checked by type.

    Raises:
        InvalidInput: a field of the wrong type, a missing ``id``, an unknown field, or a
            ``tenant_id`` other than ``tenant_id`` (422).
    """
    body = dict(values)
    other = body.pop("tenant_id", tenant_id)
    if other != tenant_id:
        raise invalid_input(
            [{"field": "tenant_id", "message": f"must be '{tenant_id}'", "type": "value_error"}]
        )
    try:
        return AccountFields.model_validate(body)
    except ValidationError as exc:
        raise invalid_input(field_errors(exc)) from None


async def store_account(
    mp: MailProxy, tenant_id: str, fields: AccountFields
) -> tuple[dict[str, Any], bool]:
    """Validate, encrypt and upsert one account: the whole of ``accounts/add``.

    Creates the account or replaces every field of the one with the same id (its pk and
    created_at stay). Runs in a transaction of its own, or as a savepoint of the caller's when
    one is open in the same task. Returns the stored row and whether it was created.

    Raises:
        InvalidInput: a field is invalid (422, naming each one).
        NotFound: the tenant does not exist.
    """
    errors = FieldErrors()
    check_identifier(errors, "id", fields.id)
    transports = sorted(mp.registry.transports.names())
    if fields.transport not in transports:
        errors.add(
            "transport",
            f"unknown transport '{fields.transport}'; available: {', '.join(transports) or 'none'}",
        )
    check_port(errors, "port", fields.port)
    positives = {
        "batch_size": fields.batch_size,
        "ttl": fields.ttl,
        "limit_per_minute": fields.limit_per_minute,
        "limit_per_hour": fields.limit_per_hour,
        "limit_per_day": fields.limit_per_day,
    }
    for field, number in positives.items():
        check_positive(errors, field, number)
    host = fields.host
    if host is not None and not host.strip():
        errors.add("host", "must not be empty", "string_too_short")
    if fields.transport in TRANSPORTS_NEEDING_HOST:
        for field, value in (("host", host), ("port", fields.port)):
            if value is None:
                errors.add(field, f"required for the {fields.transport} transport", "missing")
    options = fields.options or {}
    errors.extend(secret_value_errors(options, "options"))
    check_options = getattr(mp.transports.get(fields.transport), "check_options", None)
    if check_options is not None:
        for problem in check_options(options):
            key, _, what = problem.partition(": ")
            errors.add(f"options.{key}", what or problem)
    errors.raise_if_any()
    secret = blank_to_none(fields.password)
    row, created = await mp.repos.accounts.upsert(
        tenant_id,
        fields.id,
        transport=fields.transport,
        host=host.strip() if host else None,
        port=fields.port,
        user=blank_to_none(fields.user),
        password=mp.secrets.encrypt(secret) if secret else None,
        use_tls=fields.use_tls,
        ttl=fields.ttl,
        batch_size=fields.batch_size,
        limit_per_minute=fields.limit_per_minute,
        limit_per_hour=fields.limit_per_hour,
        limit_per_day=fields.limit_per_day,
        limit_behavior=fields.limit_behavior,
        options=seal(mp.secrets, options),
    )
    log.info(
        "account %s",
        "added" if created else "updated",
        extra={"tenant_id": tenant_id, "account_id": fields.id},
    )
    mp.directory_changed()
    return row, created


async def load_account_object(
    mp: MailProxy, tenant_id: str, account_id: str
) -> AccountObject | None:
    """The API object of one account (as ``accounts/get``), or ``None`` when it does not exist."""
    row = await mp.repos.accounts.get(tenant_id, account_id)
    return None if row is None else await extend_view(mp, "accounts", account_view(row))


def _not_found(tenant_id: str, account_id: str) -> NotFound:
    return NotFound(f"account '{account_id}' not found for tenant '{tenant_id}'")


class AccountsEndpoint(Endpoint):
    """Accounts: a tenant's outgoing (SMTP) accounts."""

    @POST
    @tenant_scoped
    async def add(
        self,
        id: str,
        tenant_id: str,
        host: str | None = None,
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
        use_tls: bool | None = True,
        batch_size: int | None = None,
        ttl: int = 300,
        limit_per_minute: int | None = None,
        limit_per_hour: int | None = None,
        limit_per_day: int | None = None,
        limit_behavior: Literal["defer", "reject"] = "defer",
        transport: str = DEFAULT_TRANSPORT,
        options: dict[str, Any] | None = None,
    ) -> AccountObject:
        """Create an account of the tenant, or replace the account with the same id.

        Like the reference, adding an existing id updates that account (its pk and
        created_at stay): every field is set from this call, so fields left out go back to
        their defaults and a password left out is removed. Returns the account object without
        the password (``has_password``) and without secret options (``secret_option_keys``).

        Args:
            id: the account id chosen by the client (no spaces, '/' or '\\').
            tenant_id: the owning tenant.
            host: the SMTP server; required for the smtp transport.
            port: the SMTP port (1-65535); required for the smtp transport.
            user: the login user.
            password: the login password (write-only, stored encrypted).
            use_tls: true = implicit TLS on port 465, STARTTLS required otherwise; false =
                plain; null = TLS on 465, STARTTLS when the server offers it.
            batch_size: messages sent per connection before it is recycled.
            ttl: seconds an idle pooled connection is kept.
            limit_per_minute: messages per minute through this account.
            limit_per_hour: messages per hour through this account.
            limit_per_day: messages per day through this account.
            limit_behavior: over a limit, "defer" to the next window or "reject" the message.
            transport: the registered transport that sends (smtp, file, null, ...).
            options: transport-specific settings, e.g. {"directory": "..."} for file; values
                under secret names (password, token, api_key ...) are stored encrypted and
                never returned.
        """
        fields = AccountFields(
            id=id,
            host=host,
            port=port,
            user=user,
            password=password,
            use_tls=use_tls,
            batch_size=batch_size,
            ttl=ttl,
            limit_per_minute=limit_per_minute,
            limit_per_hour=limit_per_hour,
            limit_per_day=limit_per_day,
            limit_behavior=limit_behavior,
            transport=transport,
            options=options,
        )
        row, _created = await store_account(self.mp, tenant_id, fields)
        return await extend_view(self.mp, "accounts", account_view(row))

    @tenant_scoped
    async def get(self, tenant_id: str, account_id: str) -> AccountObject:
        """One account of the tenant (no password, no secret options); 404 if unknown.

        Args:
            tenant_id: the owning tenant.
            account_id: the account id.
        """
        view = await load_account_object(self.mp, tenant_id, account_id)
        if view is None:
            raise _not_found(tenant_id, account_id)
        return view

    @tenant_scoped
    async def list(self, tenant_id: str) -> list[AccountObject]:
        """Every account of the tenant, ordered by id (no passwords, no secret options).

        Args:
            tenant_id: the owning tenant.
        """
        rows = await self.mp.repos.accounts.list(tenant_id)
        if not rows and not await self.mp.repos.tenants.exists(tenant_id):
            raise NotFound(f"tenant '{tenant_id}' not found")
        return await extend_views(self.mp, "accounts", [account_view(row) for row in rows])

    @POST
    @tenant_scoped
    async def delete(self, tenant_id: str, account_id: str) -> dict[str, Any]:
        """Delete an account; its messages stay (they can no longer be sent through it).

        Args:
            tenant_id: the owning tenant.
            account_id: the account id.
        """
        if not await self.mp.repos.accounts.delete(tenant_id, account_id):
            raise _not_found(tenant_id, account_id)
        log.info("account deleted", extra={"tenant_id": tenant_id, "account_id": account_id})
        self.mp.directory_changed()
        return {"ok": True}
