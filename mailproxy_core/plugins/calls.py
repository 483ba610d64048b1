"""The typed facade over ``pm.hook``: the only code in the kernel that calls hooks.

Keeping every call here gives each hook one place where its arguments, its result and its error
handling are decided, and gives the rest of the kernel typed methods instead of ``pm.hook.x``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import pluggy

from ..errors import MailproxyError, PluginError
from ..models import (
    Account,
    AttachmentRef,
    Envelope,
    ErrorClass,
    Message,
    Receipt,
    ReceiptResult,
    SendResult,
    Tenant,
)

if TYPE_CHECKING:
    from ..kernel import MailProxy

log = logging.getLogger(__name__)


class HookCalls:
    """Calls the hooks of one plugin manager."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = pm

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        return self._pm

    # -- registration --------------------------------------------------------------------------

    def registrations(self, hook_name: str) -> list[tuple[str, Any]]:
        """Call a registration hook implementation by implementation.

        Returns ``(plugin name, spec)`` pairs, so the registry can name the plugin behind each
        spec. A plugin whose implementation raises, or returns something that is not iterable, is
        reported as a ``PluginError`` naming it and the hook.
        """
        results: list[tuple[str, Any]] = []
        caller = getattr(self._pm.hook, hook_name)
        # pluggy lists implementations last-registered first; call in that order like pluggy.
        for impl in reversed(caller.get_hookimpls()):
            try:
                returned = impl.function()
                specs = list(returned or ())
            except Exception as err:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} failed in {hook_name}: "
                    f"{type(err).__name__}: {err}"
                ) from err
            results.extend((impl.plugin_name, spec) for spec in specs)
        return results

    # -- decisions -----------------------------------------------------------------------------

    def select_transport(self, account: Account, message: Message) -> str:
        """Name of the transport for this send (the default answers ``account.transport``)."""
        name: str | None = self._pm.hook.mailproxy_select_transport(
            account=account, message=message
        )
        return name or account.transport

    def resolve_fetcher(
        self, ref: AttachmentRef, tenant: Tenant, storage_names: frozenset[str]
    ) -> str | None:
        """Name of the fetcher for one attachment, or ``None`` when nobody could tell."""
        result: str | None = self._pm.hook.mailproxy_resolve_fetcher(
            ref=ref, tenant=tenant, storage_names=storage_names
        )
        return result

    def classify_error(self, error: BaseException) -> ErrorClass:
        """How a failure is treated; anything unclassified is permanent."""
        result: ErrorClass | None = self._pm.hook.mailproxy_classify_error(error=error)
        return result or ErrorClass.PERMANENT

    def retry_delay(
        self, retry: int, error: BaseException | None, message: Message, delays: Sequence[float]
    ) -> float:
        """Seconds to wait before retry number ``retry``."""
        result: float | None = self._pm.hook.mailproxy_retry_delay(
            retry=retry, error=error, message=message, delays=delays
        )
        if result is None:
            return float(delays[min(retry - 1, len(delays) - 1)]) if delays else 0.0
        return float(result)

    def envelope_sender(self, message: Message, account: Account) -> str | None:
        """The envelope sender a plugin chose for this send, or ``None`` for the default."""
        result: str | None = self._pm.hook.mailproxy_envelope_sender(
            message=message, account=account
        )
        return result or None

    # -- mutation ------------------------------------------------------------------------------

    def prepare_message(self, mime: EmailMessage, message: Message, account: Account) -> None:
        """Let every plugin change the outgoing MIME message in place."""
        self._pm.hook.mailproxy_prepare_message(mime=mime, message=message, account=account)

    # -- events --------------------------------------------------------------------------------

    async def _emit(self, hook_name: str, **kwargs: Any) -> None:
        """Call every implementation of an event hook, awaiting async ones one at a time.

        A failing implementation is logged with the plugin's name and does not stop the others;
        ``CancelledError`` is never swallowed.
        """
        caller = getattr(self._pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            try:
                result = impl.function(*(kwargs[arg] for arg in impl.argnames))
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("plugin %r failed in %s", impl.plugin_name, hook_name)

    async def startup(self, mp: MailProxy) -> None:
        await self._emit("mailproxy_startup", mp=mp)

    async def shutdown(self, mp: MailProxy) -> None:
        await self._emit("mailproxy_shutdown", mp=mp)

    async def message_queued(self, mp: MailProxy, message: Message) -> None:
        await self._emit("mailproxy_message_queued", mp=mp, message=message)

    async def message_sent(
        self,
        mp: MailProxy,
        message: Message,
        result: SendResult,
        duration: float | None = None,
        envelope: Envelope | None = None,
        suppressed: tuple[str, ...] = (),
    ) -> None:
        await self._emit(
            "mailproxy_message_sent",
            mp=mp,
            message=message,
            result=result,
            duration=duration,
            envelope=envelope,
            suppressed=suppressed,
        )

    async def message_failed(
        self,
        mp: MailProxy,
        message: Message,
        error: str,
        duration: float | None = None,
        suppressed: tuple[str, ...] = (),
    ) -> None:
        await self._emit(
            "mailproxy_message_failed",
            mp=mp,
            message=message,
            error=error,
            duration=duration,
            suppressed=suppressed,
        )

    async def message_deferred(
        self,
        mp: MailProxy,
        message: Message,
        reason: str,
        next_attempt_ts: int,
        duration: float | None = None,
    ) -> None:
        await self._emit(
            "mailproxy_message_deferred",
            mp=mp,
            message=message,
            reason=reason,
            next_attempt_ts=next_attempt_ts,
            duration=duration,
        )

    async def receipt_received(
        self, mp: MailProxy, receipt: Receipt, result: ReceiptResult
    ) -> None:
        await self._emit("mailproxy_receipt_received", mp=mp, receipt=receipt, result=result)

    # -- entity hooks --------------------------------------------------------------------------

    async def tenant_created(self, mp: MailProxy, tenant: Tenant) -> dict[str, Any]:
        """Call every ``mailproxy_tenant_created`` implementation; merge what they return.

        Runs inside the caller's transaction. A ``MailproxyError`` propagates unchanged (the
        client sees its status); any other exception becomes a ``PluginError`` naming the plugin.
        Either aborts the creation.
        """
        extra: dict[str, Any] = {}
        hook_name = "mailproxy_tenant_created"
        caller = getattr(self._pm.hook, hook_name)
        kwargs = {"mp": mp, "tenant": tenant}
        for impl in reversed(caller.get_hookimpls()):
            try:
                result = impl.function(*(kwargs[arg] for arg in impl.argnames))
                if inspect.isawaitable(result):
                    result = await result
            except MailproxyError:
                raise
            except Exception as err:
                log.exception("plugin %r failed in %s", impl.plugin_name, hook_name)
                raise PluginError(
                    f"plugin {impl.plugin_name!r} failed in {hook_name}: {type(err).__name__}"
                ) from err
            if result is None:
                continue
            if not isinstance(result, Mapping):
                raise PluginError(
                    f"plugin {impl.plugin_name!r} returned {type(result).__name__} from "
                    f"{hook_name}; expected a mapping or None"
                )
            extra.update(result)
        return extra

    def has_implementations(self, hook_name: str) -> bool:
        """Whether any plugin implements ``hook_name`` (lets hot paths skip empty hooks)."""
        return bool(getattr(self._pm.hook, hook_name).get_hookimpls())
