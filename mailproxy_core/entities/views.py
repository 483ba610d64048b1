"""The objects the API returns for tenants, accounts and storages: never a secret (docs/api.md).

Each view is built field by field from a repository row (an allow-list, not a copy with secrets
deleted), so a column added later stays private until someone decides to show it. Secrets are
replaced by booleans or key lists saying *that* something is set: ``has_credentials``,
``has_report_signing_secret``, ``has_password``, ``secret_option_keys``, ``secret_config_keys``.

``created_at`` and ``updated_at`` are stored as unix seconds but answered as UTC text
(``"2026-12-06 15:20:27"``, :func:`utc_text`), the form clients of genro-mail-proxy parse; every
field named ``*_ts`` stays an integer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..records.secrets import redact
from ..records.tenants import CLIENT_AUTH_SECRETS

UTC_TEXT_FORMAT = "%Y-%m-%d %H:%M:%S"
"""How ``created_at`` and ``updated_at`` are written in answers (always UTC)."""


def utc_text(seconds: int | None) -> str | None:
    """Unix ``seconds`` as UTC text ``"YYYY-MM-DD HH:MM:SS"``; ``None`` stays ``None``."""
    if seconds is None:
        return None
    return time.strftime(UTC_TEXT_FORMAT, time.gmtime(int(seconds)))


def client_auth_view(client_auth: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``{"method", "user"?}`` of a stored ``client_auth``: the token/password never appear."""
    if not client_auth:
        return None
    view: dict[str, Any] = {"method": client_auth.get("method")}
    if client_auth.get("user") is not None:
        view["user"] = client_auth["user"]
    return view


def tenant_view(row: Mapping[str, Any]) -> dict[str, Any]:
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


def account_view(row: Mapping[str, Any]) -> dict[str, Any]:
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


def storage_view(row: Mapping[str, Any], config: Mapping[str, Any] | None) -> dict[str, Any]:
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
