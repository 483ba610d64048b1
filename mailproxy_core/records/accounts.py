"""Accounts as ``Account`` values, secrets decrypted (for the kernel, never for a response)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..models import Account
from .secrets import unseal

if TYPE_CHECKING:
    from ..crypto import SecretBox
    from ..kernel import MailProxy


def account_from_row(box: SecretBox, row: Mapping[str, Any]) -> Account:
    """The ``Account`` model of an ``AccountsRepo`` row, secrets decrypted.

    Raises:
        ConfigurationError: a secret cannot be decrypted with the configured key.
    """
    password = row.get("password")
    return Account(
        pk=row["pk"],
        tenant_id=row["tenant_id"],
        id=row["id"],
        host=row.get("host") or "",
        port=row.get("port") or 0,
        user=row.get("user"),
        password=box.decrypt(password) if password else None,
        use_tls=row.get("use_tls"),
        transport=row["transport"],
        ttl=row["ttl"],
        batch_size=row.get("batch_size"),
        limit_per_minute=row.get("limit_per_minute"),
        limit_per_hour=row.get("limit_per_hour"),
        limit_per_day=row.get("limit_per_day"),
        limit_behavior=row["limit_behavior"],
        options=unseal(box, row.get("options") or {}),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def load_account(mp: MailProxy, tenant_id: str, account_id: str) -> Account | None:
    """The account with its secrets decrypted, or ``None``: for the kernel, never a response.

    Raises:
        ConfigurationError: a secret cannot be decrypted with the configured key.
    """
    row = await mp.repos.accounts.get(tenant_id, account_id)
    return None if row is None else account_from_row(mp.secrets, row)


async def load_account_by_pk(mp: MailProxy, pk: str) -> Account | None:
    """The account with surrogate key ``pk`` (``messages.account_pk``), secrets decrypted."""
    row = await mp.repos.accounts.get_by_pk(pk)
    return None if row is None else account_from_row(mp.secrets, row)


async def load_accounts(mp: MailProxy, tenant_id: str | None = None) -> list[Account]:
    """Every account (of ``tenant_id`` when given), secrets decrypted: never for a response."""
    if tenant_id is not None:
        rows = await mp.repos.accounts.list(tenant_id)
    else:
        rows = await mp.repos.accounts.list_all()
    return [account_from_row(mp.secrets, row) for row in rows]
