"""The ``messages`` entity: the queue (docs/api.md messages rows, §4).

Scoping: tenant keys see and change only their own tenant's messages. Reads and tenant-wide
writes are ``@tenant_scoped``; ``add``/``add_batch`` carry the tenant inside each message, and
``delete``/``count_active`` take no tenant and ``list`` may omit it (the admin's view of the
whole queue), so those scope themselves (``@any_principal``).
Another tenant's message is reported exactly like a missing one, never as forbidden, so a
tenant key cannot learn what other tenants have queued.
"""

from __future__ import annotations

from typing import Any

from ..api.endpoint import (
    POST,
    Endpoint,
    also_get,
    any_principal,
    checks_own_values,
    documented_body,
    tenant_scoped,
)
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..models import MessageStatus
from .message_queue import enqueue
from .message_schema import MessageBatch, MessageSpec
from .message_validation import (
    DEFAULT_PRIORITY,
    MAX_UNIX_SECONDS,
    is_storable,
    parse_priority,
    sendable,
    shown,
)
from .message_views import MessageObject, message_object

MAX_LIST_LIMIT = 10_000
MAX_PK = 2**63 - 1
"""The largest value a BIGINT column holds: larger pks and offsets cannot match anything."""


class MessagesEndpoint(Endpoint):
    """Messages: the queue.

    Every method checks its own input for values no column can store (``is_storable``), so that
    ``add_batch`` can reject one entry and keep the others, and look-ups of such ids answer
    "not found" like any unknown id.
    """

    @POST
    @any_principal
    @checks_own_values
    @documented_body(MessageBatch)
    async def add_batch(
        self, messages: list[Any], default_priority: int | str | None = None
    ) -> dict[str, Any]:
        """Queue up to ``max_batch_messages`` (default 1,000) messages in one call.

        Every message is validated first; the valid ones are then stored in one transaction and
        the others are listed in ``rejected`` with their reason (docs/api.md). Re-submitting the id
        of a pending or deferred message replaces it and keeps its place in the queue; an id
        being sent is rejected ``in flight``, one already sent or failed ``already sent``. When
        one batch holds the same id twice, the later entry replaces the earlier one (both count
        in ``queued``). Answers 200 whenever the body is well formed, with ``ok`` false only when
        nothing was queued; 422 when ``messages`` is not a list or holds too many entries.

        Tenant keys may omit each message's ``tenant_id``; a message for another tenant is
        rejected as ``tenant '<t>' not found``.

        Args:
            messages: the messages (objects with the fields of docs/api.md).
            default_priority: priority of messages that give none: 0..3 or immediate, high,
                medium, low (default 2).
        """
        cap = self.mp.settings.max_batch_messages
        if len(messages) > cap:
            message = f"at most {cap} messages per call, got {len(messages)}; split the batch"
            raise InvalidInput(
                f"messages: {message}",
                errors=[{"field": "messages", "message": message, "type": "too_long"}],
            )
        principal = self.require_principal()
        result = await enqueue(
            self.mp, principal, messages, default_priority=_default_priority(default_priority)
        )
        return {"ok": result.queued > 0, "queued": result.queued, "rejected": result.rejected}

    @POST
    @any_principal
    @checks_own_values
    @documented_body(MessageSpec)
    async def add(self, **message: Any) -> dict[str, Any]:
        """Queue one message; the body is the message itself (fields of docs/api.md).

        Required: ``id``, ``tenant_id`` (tenant keys may omit it), ``account_id``, ``from`` (or
        ``from_addr``, not both), ``to``, ``subject`` and ``body`` (or ``html``). Answers
        ``{"id", "pk"}``; a message that would be rejected in a batch is answered 422 with the
        reason as ``detail`` (code ``message_rejected``). A tenant key naming another tenant
        gets 403.
        """
        principal = self.require_principal()
        tenant_id = message.get("tenant_id")
        if (
            not principal.is_admin
            and isinstance(tenant_id, str)
            and tenant_id != principal.tenant_id
        ):
            raise Forbidden(
                f"tenant_id {tenant_id!r} is not yours: a tenant key may only queue "
                "messages for its own tenant"
            )
        result = await enqueue(self.mp, principal, [message], default_priority=DEFAULT_PRIORITY)
        if result.rejected:
            raise InvalidInput(result.rejected[0]["reason"], code="message_rejected")
        (_, message_id), pk = next(iter(result.pks.items()))
        return {"id": message_id, "pk": str(pk)}

    @tenant_scoped
    @checks_own_values
    async def get(
        self, message_id: str, tenant_id: str, include_history: bool = False
    ) -> MessageObject:
        """One message of a tenant, by the client's message id.

        Args:
            message_id: the client's id of the message.
            tenant_id: the tenant the message belongs to.
            include_history: add ``history``, the message's events oldest first.
        """
        row = None
        if is_storable(message_id) and is_storable(tenant_id):
            row = await self.mp.repos.messages.get(tenant_id, message_id)
        if row is None:
            raise NotFound(f"message '{message_id}' not found for tenant '{tenant_id}'")
        history = None
        if include_history:
            history = (await self.mp.repos.events.history([row["pk"]]))[row["pk"]]
        return message_object(row, history)

    @POST
    @any_principal
    @checks_own_values
    async def delete(self, message_pk: int | str) -> bool:
        """Delete one message by its ``pk``, with its events; ``false`` if there is none.

        A tenant key can only delete its own tenant's messages (another tenant's pk answers
        ``false``, like a pk that names no message). A message being sent cannot be deleted:
        409, retry once it is finished.

        Args:
            message_pk: the message's ``pk`` (from ``add``, ``get`` or ``list``), as text or
                as a number.
        """
        principal = self.require_principal()
        pk = _parse_pk(message_pk)
        if pk is None:
            return False
        scope = None if principal.is_admin else principal.tenant_id
        outcome = await self.mp.repos.messages.delete(pk, tenant_id=scope)
        if outcome == "in_flight":
            raise Conflict(
                f"message {pk} is being sent and cannot be deleted now; retry when it is finished",
                code="message_in_flight",
            )
        return outcome == "deleted"

    @POST
    @tenant_scoped
    @checks_own_values
    async def delete_batch(self, tenant_id: str, ids: list[str]) -> dict[str, Any]:
        """Delete a tenant's messages by client id, with their events, in one transaction.

        Messages being sent are kept and listed in ``in_flight``; ids that match no message
        are listed in ``not_found``.

        Args:
            tenant_id: the tenant whose messages to delete.
            ids: client message ids.
        """
        await self._require_tenant(tenant_id)
        unique = list(dict.fromkeys(ids))
        findable = [i for i in unique if is_storable(i)]
        removed, in_flight = await self.mp.repos.messages.delete_many(tenant_id, findable)
        found = {*removed, *in_flight}
        return {
            "ok": True,
            "removed": len(removed),
            "not_found": [sendable(i) for i in unique if i not in found],
            "in_flight": in_flight,
        }

    @POST
    @tenant_scoped
    @checks_own_values
    async def retry(self, tenant_id: str, ids: list[str]) -> dict[str, Any]:
        """Send failed (``error``) and ``deferred`` messages again, now, with fresh retries.

        Each one goes back to ``pending`` with its attempts reset, and its history gets a
        ``requeued`` event naming who asked. Messages that are ``pending``, ``sending`` or
        ``sent`` are left alone and listed in ``skipped`` with their status as reason; nothing
        is deleted. Ids that match no message are listed in ``not_found``.

        Args:
            tenant_id: the tenant whose messages to retry.
            ids: client message ids.
        """
        await self._require_tenant(tenant_id)
        unique = list(dict.fromkeys(ids))
        findable = [i for i in unique if is_storable(i)]
        principal = self.require_principal()
        who = "the admin" if principal.is_admin else f"tenant key {principal.name or tenant_id}"
        outcome = await self.mp.repos.messages.requeue(tenant_id, findable, requested_by=who)
        if outcome.requeued:
            self.mp.wake_dispatcher()
        known = {*outcome.requeued, *(s["id"] for s in outcome.skipped)}
        return {
            "ok": True,
            "requeued": len(outcome.requeued),
            "not_found": [sendable(i) for i in unique if i not in known],
            "skipped": outcome.skipped,
        }

    @POST
    @also_get
    @tenant_scoped
    @checks_own_values
    async def cleanup(self, tenant_id: str, older_than_seconds: int = 86400) -> dict[str, Any]:
        """Delete a tenant's finished messages whose events have all been reported.

        Finished means sent or failed (``error``) and unchanged for ``older_than_seconds``.
        Also served as ``GET`` with the same query parameters, as genro-mail-proxy clients call
        it (a token is needed all the same).

        Args:
            tenant_id: the tenant whose messages to clean up.
            older_than_seconds: minimum age in seconds since the message last changed.
        """
        _check_range("older_than_seconds", older_than_seconds, 0, MAX_UNIX_SECONDS)
        await self._require_tenant(tenant_id)
        removed = await self.mp.repos.messages.cleanup(tenant_id, older_than_seconds)
        return {"ok": True, "removed": removed}

    @any_principal
    @checks_own_values
    async def count_active(self) -> int:
        """Messages not finished yet (pending, deferred, sending).

        The admin gets the count over all tenants, a tenant key its own tenant's.
        """
        principal = self.require_principal()
        scope = None if principal.is_admin else principal.tenant_id
        return await self.mp.repos.messages.count_active(scope)

    @tenant_scoped
    @checks_own_values
    async def count_pending_for_tenant(self, tenant_id: str, batch_code: str | None = None) -> int:
        """A tenant's messages waiting to be sent (pending or deferred).

        Args:
            tenant_id: the tenant.
            batch_code: count only this batch.
        """
        await self._require_tenant(tenant_id)
        if batch_code is not None and not is_storable(batch_code):
            return 0
        return await self.mp.repos.messages.count_pending(tenant_id, batch_code)

    # Last of the routes: below it, ``list`` would name this method in annotations.
    @any_principal
    @checks_own_values
    async def list(
        self,
        tenant_id: str | None = None,
        active_only: bool = False,
        include_history: bool = False,
        status: MessageStatus | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[MessageObject]:
        """A page of messages in creation order: one tenant's, or every tenant's for the admin.

        The admin without ``tenant_id`` lists the whole queue; a tenant key always lists its
        own tenant's messages (another ``tenant_id`` → 403).

        Args:
            tenant_id: the tenant whose messages to list (the admin may leave it out).
            active_only: only messages not finished yet (pending, deferred, sending).
            include_history: add ``history`` to each message: its events, oldest first.
            status: only messages with this status.
            limit: page size, at most 10000.
            offset: messages to skip (for paging).
        """
        tenant_id = self.own_tenant_id(tenant_id)
        _check_range("limit", limit, 1, MAX_LIST_LIMIT)
        _check_range("offset", offset, 0, MAX_PK)
        if tenant_id is not None:
            await self._require_tenant(tenant_id)
        rows = await self.mp.repos.messages.list(
            tenant_id, active_only=active_only, status=status, limit=limit, offset=offset
        )
        histories = None
        if include_history:
            histories = await self.mp.repos.events.history([row["pk"] for row in rows])
        return [
            message_object(row, None if histories is None else histories[row["pk"]]) for row in rows
        ]

    @checks_own_values
    async def _require_tenant(self, tenant_id: str) -> None:
        if not is_storable(tenant_id) or not await self.mp.repos.messages.tenant_states(
            [tenant_id]
        ):
            raise NotFound(f"tenant '{tenant_id}' not found")


def _default_priority(value: int | str | None) -> int:
    """The batch's ``default_priority``; 422 when it is not a priority."""
    if value is None:
        return DEFAULT_PRIORITY
    priority = parse_priority(value)
    if priority is None:
        message = f"invalid priority '{shown(value)}'"
        raise InvalidInput(
            f"default_priority: {message}",
            errors=[{"field": "default_priority", "message": message, "type": "value_error"}],
        )
    return priority


def _parse_pk(value: int | str) -> int | None:
    """The message pk given as a number or as its text, or ``None`` when it names no message."""
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit():
            return None
        value = int(text)
    return value if 0 < value <= MAX_PK else None


def _check_range(field: str, value: int, low: int, high: int) -> None:
    """422 naming ``field`` when ``value`` is outside ``low..high``."""
    if low <= value <= high:
        return
    message = f"must be between {low} and {high}"
    raise InvalidInput(
        f"{field}: {message}",
        errors=[{"field": field, "message": message, "type": "out_of_range"}],
    )
