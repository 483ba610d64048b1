"""``accounts/add_pec``, ``accounts/list_pec``, ``accounts/get_pec_ids`` and the ``pec`` fields
every account object carries.

A PEC account is an ordinary sending account (created exactly as ``accounts/add`` creates one,
through ``mp.save_account``) plus the IMAP settings of the mailbox its receipts arrive in. Both
are written in one transaction. ``accounts/get|list`` show the PEC fields through a view
extension (``pec: false`` on other accounts); ``accounts/delete`` and ``tenants/delete`` remove
the IMAP settings and the mailbox state with the account (foreign key, cascade).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from mailproxy_core import POST, Endpoint, InvalidInput, NotFound, tenant_scoped

from .store import PecMailbox, PecStore
from .timeouts import forget_pec_accounts

if TYPE_CHECKING:
    from mailproxy_core import MailProxy

MAX_PORT = 65535


def pec_fields(mailbox: PecMailbox | None, account: Mapping[str, Any]) -> dict[str, Any]:
    """The PEC fields of an account object (``pec: false`` alone for other accounts).

    ``account`` is the kernel's account object (for the defaults of user and password).
    Never the password: ``has_imap_password`` only.
    """
    if mailbox is None:
        return {"pec": False}
    return {
        "pec": True,
        "imap_host": mailbox.imap_host,
        "imap_port": mailbox.imap_port,
        "imap_ssl": mailbox.imap_ssl,
        "imap_user": mailbox.imap_user if mailbox.imap_user is not None else account.get("user"),
        "imap_folder": mailbox.imap_folder,
        "has_imap_password": bool(mailbox.imap_password) or bool(account.get("has_password")),
        "last_poll_ts": mailbox.last_poll_ts,
        "last_error": mailbox.last_error,
    }


async def extend_accounts(
    mp: MailProxy, views: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """View extension of ``accounts``: the PEC fields of each account object of a response."""
    found = await PecStore(mp).mailboxes_by_pk([str(v["pk"]) for v in views if v.get("pk")])
    return [pec_fields(found.get(str(view.get("pk"))), view) for view in views]


class PecAccountsEndpoint(Endpoint):
    """PEC accounts: sending accounts whose mailbox receives PEC receipts."""

    @POST
    @tenant_scoped
    async def add_pec(
        self,
        id: str,
        tenant_id: str,
        imap_host: str,
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
        transport: str = "smtp",
        options: dict[str, Any] | None = None,
        imap_port: int = 993,
        imap_ssl: bool = True,
        imap_user: str | None = None,
        imap_password: str | None = None,
        imap_folder: str = "INBOX",
    ) -> dict[str, Any]:
        """Create a PEC account of the tenant, or replace the one with the same id.

        The sending fields are those of ``accounts/add``, with the same checks and the same
        upsert; the IMAP fields say where the PEC receipts of this account arrive. Returns the
        account object with ``pec: true`` and the IMAP fields, never a password
        (``has_imap_password``). The mailbox is read from the next polling round on.

        Args:
            id: the account id chosen by the client (no spaces, '/' or '\\').
            tenant_id: the owning tenant.
            imap_host: the IMAP server of the PEC mailbox.
            host: the SMTP server of the PEC provider.
            port: the SMTP port (1-65535).
            user: the login user (also the IMAP user unless imap_user is given).
            password: the login password (write-only; also the IMAP password unless
                imap_password is given).
            use_tls: SMTP TLS: true = implicit TLS on 465, STARTTLS required otherwise; false =
                plain; null = TLS on 465, STARTTLS when offered.
            batch_size: messages sent per connection before it is recycled.
            ttl: seconds an idle pooled connection is kept.
            limit_per_minute: messages per minute through this account.
            limit_per_hour: messages per hour through this account.
            limit_per_day: messages per day through this account.
            limit_behavior: over a limit, "defer" to the next window or "reject" the message.
            transport: the registered transport that sends (smtp by default).
            options: transport-specific settings (secret-named values stored encrypted).
            imap_port: the IMAP port (1-65535), 993 by default.
            imap_ssl: true = implicit TLS; false = plain IMAP, upgraded with STARTTLS when the
                server offers it.
            imap_user: the IMAP login user; default: user.
            imap_password: the IMAP password (write-only, stored encrypted); default: password.
            imap_folder: the folder the receipts arrive in, INBOX by default.
        """
        errors: list[dict[str, Any]] = []
        host_value = (imap_host or "").strip()
        if not host_value:
            errors.append({"field": "imap_host", "message": "must not be empty", "type": "missing"})
        if not 1 <= imap_port <= MAX_PORT:
            errors.append(
                {"field": "imap_port", "message": "must be between 1 and 65535", "type": "range"}
            )
        folder = (imap_folder or "").strip()
        if not folder:
            errors.append(
                {"field": "imap_folder", "message": "must not be empty", "type": "missing"}
            )
        if not _blank_to_none(imap_user) and not _blank_to_none(user):
            errors.append(
                {
                    "field": "imap_user",
                    "message": "required when user is not given",
                    "type": "missing",
                }
            )
        if not _blank_to_none(imap_password) and not _blank_to_none(password):
            errors.append(
                {
                    "field": "imap_password",
                    "message": "required when password is not given",
                    "type": "missing",
                }
            )
        if errors:
            names = ", ".join(e["field"] for e in errors)
            raise InvalidInput(f"invalid PEC account fields: {names}", errors=errors)
        fields = {
            "id": id,
            "host": host,
            "port": port,
            "user": user,
            "password": password,
            "use_tls": use_tls,
            "batch_size": batch_size,
            "ttl": ttl,
            "limit_per_minute": limit_per_minute,
            "limit_per_hour": limit_per_hour,
            "limit_per_day": limit_per_day,
            "limit_behavior": limit_behavior,
            "transport": transport,
            "options": options,
        }
        async with self.mp.data.transaction():
            account = await self.mp.save_account(tenant_id, fields)
            await PecStore(self.mp).save_mailbox(
                account_pk=account.pk,
                tenant_id=tenant_id,
                account_id=account.id,
                imap_host=host_value,
                imap_port=imap_port,
                imap_ssl=imap_ssl,
                imap_user=_blank_to_none(imap_user),
                imap_password=_blank_to_none(imap_password),
                imap_folder=folder,
            )
        forget_pec_accounts(self.mp)
        return await self._account_object(tenant_id, account.id)

    @tenant_scoped
    async def list_pec(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """The PEC accounts, ordered by tenant then id: the admin without ``tenant_id`` gets
        every tenant's, a tenant key its own.

        Args:
            tenant_id: only this tenant's PEC accounts.
        """
        mailboxes = await PecStore(self.mp).mailboxes(tenant_id)
        return [await self._account_object(m.tenant_id, m.account_id) for m in mailboxes]

    @tenant_scoped
    async def get_pec_ids(self, tenant_id: str | None = None) -> list[str]:
        """The ids of the PEC accounts, scoped like ``list_pec``.

        Args:
            tenant_id: only this tenant's PEC accounts.
        """
        return [m.account_id for m in await PecStore(self.mp).mailboxes(tenant_id)]

    async def _account_object(self, tenant_id: str, account_id: str) -> dict[str, Any]:
        """The kernel's own account object (``accounts/get``), view extensions included."""
        view = await self.mp.account_object(tenant_id, account_id)
        if view is None:
            raise NotFound(f"account '{account_id}' not found for tenant '{tenant_id}'")
        return view


def _blank_to_none(value: str | None) -> str | None:
    return value if value and value.strip() else None
