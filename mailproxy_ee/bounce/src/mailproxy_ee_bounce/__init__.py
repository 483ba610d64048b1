"""mail-proxy EE plugin ``ee_bounce``: the bounce mailbox and the per-tenant suppression list.

Registers the ``[plugins.ee_bounce]`` settings, the plugin's tables, the routes
``instance/get_bounce_config``, ``instance/set_bounce_config``, ``instance/reload_bounce`` and
``suppressions/list|add|delete``, the ``ee_bounce`` receipt handler that reads the bounce mailbox
over IMAP, the suppression send guard, the return path as envelope sender, and the task that
keeps every process's copy of the return path current. The operator guide is ``docs/bounces.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailproxy_core import (
    BackgroundTaskSpec,
    EndpointSpec,
    MigrationSpec,
    ReceiptHandlerSpec,
    SendGuardSpec,
    SettingsSpec,
    hookimpl,
)

from .classify import Bounce, Notice, NoticeKind, classify
from .endpoints import BounceInstanceEndpoint, SuppressionsEndpoint
from .guard import SuppressionGuard
from .handler import HANDLER_NAME, BounceMailboxHandler
from .runtime import active_runtime, mark_started, mark_stopped, runtime_for
from .settings import SECTION, BounceSettings
from .tables import MIGRATIONS

if TYPE_CHECKING:
    from mailproxy_core import Account, MailProxy, Message

__version__ = "0.1.0"

__all__ = [
    "Bounce",
    "BounceMailboxHandler",
    "BounceSettings",
    "Notice",
    "NoticeKind",
    "SuppressionGuard",
    "classify",
]


@hookimpl
def mailproxy_register_settings() -> list[SettingsSpec]:
    """The ``[plugins.ee_bounce]`` section."""
    return [SettingsSpec(SECTION, BounceSettings)]


@hookimpl
def mailproxy_register_migrations() -> list[MigrationSpec]:
    """The tables ``ee_bounce_config`` and ``ee_bounce_suppressions``."""
    return list(MIGRATIONS)


@hookimpl
def mailproxy_register_endpoints() -> list[EndpointSpec]:
    """The bounce configuration routes and ``suppressions/*``."""
    return [
        EndpointSpec("instance", BounceInstanceEndpoint),
        EndpointSpec("suppressions", SuppressionsEndpoint),
    ]


@hookimpl
def mailproxy_register_receipt_handlers() -> list[ReceiptHandlerSpec]:
    """The ``ee_bounce`` handler: the bounce mailbox."""
    return [ReceiptHandlerSpec(HANDLER_NAME, BounceMailboxHandler.from_kernel)]


@hookimpl
def mailproxy_register_send_guards() -> list[SendGuardSpec]:
    """The suppression list, consulted before each send."""
    return [SendGuardSpec("ee_bounce_suppressions", SuppressionGuard.from_kernel)]


@hookimpl
def mailproxy_register_background_tasks() -> list[BackgroundTaskSpec]:
    """Keeps this process's return path current (also in sending workers)."""
    return [
        BackgroundTaskSpec(
            "ee_bounce_config_refresh",
            lambda mp: runtime_for(mp).run_refresh(),
            dispatch_only=True,
        )
    ]


@hookimpl
async def mailproxy_startup(mp: MailProxy) -> None:
    """Load the return path before the first message is sent."""
    runtime = runtime_for(mp)
    await runtime.refresh()
    mark_started(runtime)


@hookimpl
def mailproxy_shutdown(mp: MailProxy) -> None:
    """Forget this app's runtime."""
    mark_stopped(runtime_for(mp))


@hookimpl
def mailproxy_envelope_sender(message: Message, account: Account) -> str | None:
    """The bounce return path for a message without its own ``return_path``."""
    if message.payload.get("return_path"):
        return None
    runtime = active_runtime()
    return runtime.envelope_sender(message.pk) if runtime is not None else None


@hookimpl(optionalhook=True)
def mailproxy_dashboard_pages() -> list[Any]:
    """With the web dashboard installed: the Suppressions and Bounce mailbox pages (the
    dashboard is imported only here, so the plugin works without it)."""
    from .dashboard import pages

    return list(pages())
