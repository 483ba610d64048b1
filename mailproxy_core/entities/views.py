"""The objects the API returns for tenants, accounts and storages: never a secret (docs/api.md).

Each view is built field by field from a repository row (an allow-list, not a copy with secrets
deleted), so a column added later stays private until someone decides to show it. Secrets are
replaced by booleans or key lists saying *that* something is set: ``has_credentials``,
``has_report_signing_secret``, ``has_password``, ``secret_option_keys``, ``secret_config_keys``.

``created_at`` and ``updated_at`` are stored as unix seconds but answered as UTC text
(``"2026-12-06 15:20:27"``, :func:`utc_text`), the form clients of genro-mail-proxy parse; every
field named ``*_ts`` stays an integer.

The ``TypedDict`` classes below (:class:`TenantObject`, :class:`AccountObject`,
:class:`StorageObject`) are the documented shape of each object: endpoint methods declare them as
their return type, and the OpenAPI document describes every field from them. Plugins may add
fields (``ViewExtensionSpec``), so the objects allow properties beyond those listed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypedDict

from ..records.secrets import redact
from ..records.tenants import CLIENT_AUTH_SECRETS
from .fields import LargeFileConfig, RateLimits

CREATED_AT = "when the object was created: UTC text `YYYY-MM-DD HH:MM:SS`"
UPDATED_AT = "when the object was last changed: UTC text `YYYY-MM-DD HH:MM:SS`"


class ClientAuthObject(TypedDict):
    """How the service authenticates to the client application; the token or password is
    write-only and never shown (``has_credentials`` says whether one is stored)."""

    method: Annotated[str, Field(description="`bearer`, `basic` or `none`")]
    user: NotRequired[Annotated[str, Field(description="the user name of `basic`")]]


class TenantObject(TypedDict):
    """A tenant (a client application) as the API answers it: no secret is ever included."""

    id: Annotated[str, Field(description="the tenant id chosen by the operator")]
    name: Annotated[str | None, Field(description="display name")]
    client_base_url: Annotated[
        str | None,
        Field(description="http(s) base URL of the client application; null: no reports sent"),
    ]
    client_sync_path: Annotated[
        str | None, Field(description="path under `client_base_url` receiving delivery reports")
    ]
    client_attachment_path: Annotated[
        str | None, Field(description="path under `client_base_url` serving `endpoint` attachments")
    ]
    client_auth: Annotated[
        ClientAuthObject | None,
        Field(description="the authentication method towards the client application (no secret)"),
    ]
    has_credentials: Annotated[
        bool, Field(description="whether a client_auth token or password is stored")
    ]
    rate_limits: Annotated[
        RateLimits | None, Field(description="sending limits across the tenant's accounts")
    ]
    large_file_config: Annotated[
        LargeFileConfig | None,
        Field(description="what happens to attachments over a size (warn, reject, rewrite)"),
    ]
    active: Annotated[bool, Field(description="false: none of the tenant's messages are sent")]
    suspended_batches: Annotated[
        list[str], Field(description="batch codes whose sending is suspended (`*`: all)")
    ]
    reporter: Annotated[
        str, Field(description="how delivery reports are delivered: `http`, `none`, or a plugin's")
    ]
    has_report_signing_secret: Annotated[
        bool, Field(description="whether reports are signed with a stored secret")
    ]
    created_at: Annotated[str | None, Field(description=CREATED_AT)]
    updated_at: Annotated[str | None, Field(description=UPDATED_AT)]


class AccountObject(TypedDict):
    """An account (an SMTP server or another transport) as the API answers it: the password and
    secret-named options are never included."""

    pk: Annotated[str, Field(description="internal key of the account (a UUID text)")]
    id: Annotated[str, Field(description="the account id, unique per tenant")]
    tenant_id: Annotated[str, Field(description="the owning tenant")]
    transport: Annotated[
        str, Field(description="how messages are sent: `smtp`, `file`, `null` or a plugin's")
    ]
    host: Annotated[str | None, Field(description="SMTP server host")]
    port: Annotated[int | None, Field(description="SMTP server port")]
    user: Annotated[str | None, Field(description="SMTP user name")]
    has_password: Annotated[bool, Field(description="whether a password is stored")]
    use_tls: Annotated[
        bool | None,
        Field(
            description="true: implicit TLS on 465, STARTTLS required otherwise; false: plain; "
            "null: TLS on 465, STARTTLS when offered"
        ),
    ]
    ttl: Annotated[int, Field(description="seconds a cached SMTP connection is kept open")]
    batch_size: Annotated[
        int | None, Field(description="messages sent per dispatcher pass (null: the default)")
    ]
    limit_per_minute: Annotated[int | None, Field(description="sending limit per minute")]
    limit_per_hour: Annotated[int | None, Field(description="sending limit per hour")]
    limit_per_day: Annotated[int | None, Field(description="sending limit per day")]
    limit_behavior: Annotated[
        Literal["defer", "reject"],
        Field(description="over a limit: `defer` (sent later) or `reject` (error)"),
    ]
    options: Annotated[
        dict[str, Any], Field(description="transport options, without the secret-named ones")
    ]
    secret_option_keys: Annotated[
        list[str], Field(description="names of the secret options stored (values never shown)")
    ]
    created_at: Annotated[str | None, Field(description=CREATED_AT)]
    updated_at: Annotated[str | None, Field(description=UPDATED_AT)]


class StorageObject(TypedDict):
    """A tenant's storage mount as the API answers it: secret config values are never included."""

    tenant_id: Annotated[str, Field(description="the owning tenant")]
    name: Annotated[str, Field(description="the mount name, used as `<name>:<path>`")]
    protocol: Annotated[str, Field(description="the storage backend: `local`, `s3`, ...")]
    config: Annotated[
        dict[str, Any], Field(description="the backend's configuration, without secret values")
    ]
    secret_config_keys: Annotated[
        list[str], Field(description="names of the secret config values stored (never shown)")
    ]
    created_at: Annotated[str | None, Field(description=CREATED_AT)]
    updated_at: Annotated[str | None, Field(description=UPDATED_AT)]


UTC_TEXT_FORMAT = "%Y-%m-%d %H:%M:%S"
"""How ``created_at`` and ``updated_at`` are written in answers (always UTC)."""


def utc_text(seconds: int | None) -> str | None:
    """Unix ``seconds`` as UTC text ``"YYYY-MM-DD HH:MM:SS"``; ``None`` stays ``None``."""
    if seconds is None:
        return None
    return time.strftime(UTC_TEXT_FORMAT, time.gmtime(int(seconds)))


def client_auth_view(client_auth: Mapping[str, Any] | None) -> ClientAuthObject | None:
    """``{"method", "user"?}`` of a stored ``client_auth``: the token/password never appear."""
    if not client_auth:
        return None
    view = ClientAuthObject(method=str(client_auth.get("method", "none")))
    if client_auth.get("user") is not None:
        view["user"] = client_auth["user"]
    return view


def tenant_view(row: Mapping[str, Any]) -> TenantObject:
    """The tenant object of the API from a ``TenantsRepo`` row."""
    client_auth = row.get("client_auth") or {}
    return {
        "id": row["id"],
        "name": row.get("name"),
        "client_base_url": row.get("client_base_url"),
        "client_sync_path": row.get("client_sync_path"),
        "client_attachment_path": row.get("client_attachment_path"),
        "client_auth": client_auth_view(client_auth),
        "has_credentials": any(client_auth.get(name) for name in CLIENT_AUTH_SECRETS),
        "rate_limits": row.get("rate_limits"),
        "large_file_config": row.get("large_file_config"),
        "active": bool(row["active"]),
        "suspended_batches": list(row.get("suspended_batches") or []),
        "reporter": row["reporter"],
        "has_report_signing_secret": bool(row.get("report_signing_secret")),
        "created_at": utc_text(row["created_at"]),
        "updated_at": utc_text(row["updated_at"]),
    }


def account_view(row: Mapping[str, Any]) -> AccountObject:
    """The account object of the API from an ``AccountsRepo`` row: no password, no secrets.

    ``options`` loses its secret-named entries; ``secret_option_keys`` lists where they were.
    """
    options, secret_keys = redact(row.get("options") or {})
    return {
        "pk": row["pk"],
        "id": row["id"],
        "tenant_id": row["tenant_id"],
        "transport": row["transport"],
        "host": row.get("host"),
        "port": row.get("port"),
        "user": row.get("user"),
        "has_password": bool(row.get("password")),
        "use_tls": row.get("use_tls"),
        "ttl": row["ttl"],
        "batch_size": row.get("batch_size"),
        "limit_per_minute": row.get("limit_per_minute"),
        "limit_per_hour": row.get("limit_per_hour"),
        "limit_per_day": row.get("limit_per_day"),
        "limit_behavior": row["limit_behavior"],
        "options": options,
        "secret_option_keys": secret_keys,
        "created_at": utc_text(row["created_at"]),
        "updated_at": utc_text(row["updated_at"]),
    }


def storage_view(row: Mapping[str, Any], config: Mapping[str, Any] | None) -> StorageObject:
    """The storage (mount) object of the API; ``config`` is the decrypted config of the row.

    ``config`` loses its secret-named entries; ``secret_config_keys`` lists where they were.
    """
    public, secret_keys = redact(dict(config or {}))
    return {
        "tenant_id": row["tenant_id"],
        "name": row["name"],
        "protocol": row["protocol"],
        "config": public,
        "secret_config_keys": secret_keys,
        "created_at": utc_text(row["created_at"]),
        "updated_at": utc_text(row["updated_at"]),
    }
