"""mail-proxy EE plugin ``ee_pec``: Italian certified mail (PEC) accounts and receipts.

Registers the ``[plugins.ee_pec]`` settings, the plugin's tables, the routes
``accounts/add_pec``, ``accounts/list_pec`` and ``accounts/get_pec_ids``, the ``pec`` fields of
account objects, the ``pec`` receipt handler that reads every PEC account's mailbox over IMAP,
and the background task that records ``pec_timeout``. The operator guide is ``docs/pec.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailproxy_core import (
    BackgroundTaskSpec,
    EndpointSpec,
    MigrationSpec,
    ReceiptHandlerSpec,
    SettingsSpec,
    ViewExtensionSpec,
    hookimpl,
)

from .endpoints import PecAccountsEndpoint, extend_accounts
from .handler import HANDLER_NAME, PecReceiptHandler
from .idle import run_idle_watchers
from .parser import ParsedPecMail, PecKind, parse_pec_mail
from .settings import PecSettings
from .tables import MIGRATIONS
from .timeouts import record_timeouts, remember_sent, run_timeouts

if TYPE_CHECKING:
    from mailproxy_core import MailProxy, Message

__version__ = "0.1.0"

__all__ = [
    "ParsedPecMail",
    "PecAccountsEndpoint",
    "PecKind",
    "PecReceiptHandler",
    "PecSettings",
    "parse_pec_mail",
    "record_timeouts",
]


@hookimpl
def mailproxy_register_settings() -> list[SettingsSpec]:
    """The ``[plugins.ee_pec]`` section."""
    return [SettingsSpec("ee_pec", PecSettings)]


@hookimpl
def mailproxy_register_migrations() -> list[MigrationSpec]:
    """The tables ``ee_pec_accounts`` and ``ee_pec_messages``."""
    return list(MIGRATIONS)


@hookimpl
def mailproxy_register_endpoints() -> list[EndpointSpec]:
    """``accounts/add_pec``, ``accounts/list_pec`` and ``accounts/get_pec_ids``."""
    return [EndpointSpec("accounts", PecAccountsEndpoint)]


@hookimpl
def mailproxy_register_view_extensions() -> list[ViewExtensionSpec]:
    """``pec`` (and the IMAP fields of PEC accounts) on every account object."""
    return [ViewExtensionSpec("ee_pec", "accounts", extend_accounts)]


@hookimpl
def mailproxy_register_receipt_handlers() -> list[ReceiptHandlerSpec]:
    """The ``pec`` handler: every PEC account's mailbox, each round."""
    return [ReceiptHandlerSpec(HANDLER_NAME, PecReceiptHandler.from_kernel)]


@hookimpl
def mailproxy_register_background_tasks() -> list[BackgroundTaskSpec]:
    """The ``pec_timeout`` check, and the IMAP IDLE watchers of the PEC mailboxes."""
    return [
        BackgroundTaskSpec("ee_pec_timeouts", run_timeouts),
        BackgroundTaskSpec("ee_pec_idle", run_idle_watchers),
    ]


@hookimpl
async def mailproxy_message_sent(mp: MailProxy, message: Message) -> None:
    """A message sent through a PEC account starts waiting for its acceptance."""
    await remember_sent(mp, message)


@hookimpl(optionalhook=True)
def mailproxy_dashboard_pages() -> list[Any]:
    """With the web dashboard installed: the PEC accounts page (the dashboard is imported only
    here, so the plugin works without it)."""
    from .dashboard import pages

    return list(pages())
