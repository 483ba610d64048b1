"""Enqueueing messages: validate a whole call, then store the valid ones atomically (docs/api.md).

``enqueue`` serves both ``messages/add_batch`` and ``messages/add``:

1. every entry is checked: identity fields, then (one query each for the whole call) the
   tenants and the accounts, then the content (``message_validation``);
2. valid entries are merged by ``(tenant_id, id)``: a later entry for the same id replaces an
   earlier one, as if they had been submitted one after the other (each counts in ``queued``;
   the message keeps the position of the first); a sender given as ``from_addr`` is stored as
   ``from``;
3. the merged rows are written in one transaction (``MessagesRepo.enqueue``); ids that exist and
   are being sent or finished are rejected ``in flight`` / ``already sent`` (every entry of that
   id, earlier ones included), the others are inserted or replace a pending/deferred message;
4. after the commit: ``mailproxy_message_queued`` per stored message (only when a plugin
   implements it), and the dispatcher is woken when a priority-0 message was queued.

Tenant callers: an entry without ``tenant_id`` is for the caller's tenant; an entry naming another
tenant is rejected ``tenant '<t>' not found`` (exactly as an unknown tenant, so a tenant key cannot
probe which tenants exist).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..db.jsontext import decode_json, encode_json
from ..db.repos.messages import EnqueueOutcome, QueuedRow
from ..message_ids import message_id_for_payload
from ..models import Message, Principal
from ..pacing import Pacer
from ..records.secrets import seal_payload
from .message_validation import CheckedMessage, MessageChecker, is_storable, sendable
from .message_views import with_sender_as_from

if TYPE_CHECKING:
    from ..kernel import MailProxy

log = logging.getLogger(__name__)

SLICE_SECONDS = 0.01
"""Longest stretch of validation work between two yields to the event loop: a large batch is
checked in slices, so other requests are served while it is (see docs/performance.md)."""


QUEUED_HOOK = "mailproxy_message_queued"
BLOCKED_REASONS = {"sending": "in flight", "sent": "already sent", "error": "already sent"}
"""Rejection reason for an id that exists with this status."""

Key = tuple[str, str]


@dataclass(slots=True)
class EnqueueResult:
    """The outcome of one call: ``queued`` entries, ``rejected`` ones in submission order, and
    the ``pk`` of each stored message by ``(tenant_id, id)``."""

    queued: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    pks: dict[Key, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Accepted:
    key: Key
    entry: Mapping[str, Any]
    checked: CheckedMessage
    account_pk: str
    payload: str


async def enqueue(
    mp: MailProxy,
    principal: Principal,
    entries: Sequence[Any],
    *,
    default_priority: int,
) -> EnqueueResult:
    """Validate ``entries`` and store the valid ones in one transaction (see module docstring).

    Raises only on database failure, in which case nothing was stored.
    """
    own_tenant = None if principal.is_admin else principal.tenant_id
    checker = MessageChecker(
        fetch_modes=mp.registry.attachment_fetchers.names(),
        default_priority=default_priority,
        max_recipients=mp.settings.max_recipients,
    )
    reasons: dict[int, str] = {}
    keyed: dict[int, tuple[str, str, str]] = {}
    slicer = Pacer(SLICE_SECONDS)
    for index, entry in enumerate(entries):
        await slicer.pause()
        if not isinstance(entry, dict):
            reasons[index] = "invalid message: not a JSON object"
            continue
        problem = checker.identity(entry, own_tenant)
        if problem is not None:
            reasons[index] = problem
            continue
        # identity() checked that tenant_id, or the caller's own tenant, is a string
        tenant_id = str(entry.get("tenant_id") or own_tenant)
        keyed[index] = (tenant_id, entry["id"], entry["account_id"])

    accepted = await _check_entries(mp, own_tenant, entries, keyed, checker, reasons, slicer)
    merged: dict[Key, _Accepted] = {}
    for item in accepted.values():
        merged[item.key] = item  # the first occurrence keeps its place, the last its content
    rows = []
    for item in merged.values():
        await slicer.pause()
        rows.append(_queued_row(item))
    outcome = await mp.repos.messages.enqueue(rows)

    result = EnqueueResult(pks=outcome.stored)
    for index, item in accepted.items():
        status = outcome.blocked.get(item.key)
        if item.key in outcome.stored:
            result.queued += 1
        else:
            reasons[index] = BLOCKED_REASONS.get(status or "", "in flight")
    result.rejected = [
        {"id": _entry_id(entries[index]), "reason": sendable(reasons[index])}
        for index in sorted(reasons)
    ]
    log.debug(
        "enqueued %d message(s), rejected %d",
        result.queued,
        len(result.rejected),
        extra={"tenant_ids": sorted({row.tenant_id for row in rows})},
    )
    await _after_commit(mp, rows, outcome)
    return result


async def _check_entries(
    mp: MailProxy,
    own_tenant: str | None,
    entries: Sequence[Any],
    keyed: dict[int, tuple[str, str, str]],
    checker: MessageChecker,
    reasons: dict[int, str],
    slicer: Pacer,
) -> dict[int, _Accepted]:
    """Tenant, account and content checks of the entries whose identity is usable."""
    tenant_ids = {tenant for tenant, _, _ in keyed.values()}
    if own_tenant is not None:
        tenant_ids &= {own_tenant}
    states = await mp.repos.messages.tenant_states(tenant_ids)
    pairs = {(tenant, account) for tenant, _, account in keyed.values() if states.get(tenant)}
    account_pks = await mp.repos.messages.account_pks(pairs)
    accepted: dict[int, _Accepted] = {}
    for index, (tenant_id, message_id, account_id) in keyed.items():
        await slicer.pause()
        active = states.get(tenant_id)
        if active is None:
            reasons[index] = f"tenant '{tenant_id}' not found"
        elif not active:
            reasons[index] = f"tenant '{tenant_id}' is inactive"
        elif (tenant_id, account_id) not in account_pks:
            reasons[index] = f"account '{account_id}' not found for tenant '{tenant_id}'"
        else:
            checked = checker.content(entries[index])
            if isinstance(checked, str):
                reasons[index] = checked
                continue
            stored = with_sender_as_from(entries[index])
            payload = encode_json(seal_payload(mp.secrets, stored)) or "{}"
            if not is_storable(payload):
                reasons[index] = "invalid message: text must not contain unpaired surrogates"
                continue
            account_pk = account_pks[(tenant_id, account_id)]
            key = (tenant_id, message_id)
            accepted[index] = _Accepted(key, entries[index], checked, account_pk, payload)
    return accepted


def _queued_row(item: _Accepted) -> QueuedRow:
    tenant_id, message_id = item.key
    return QueuedRow(
        tenant_id=tenant_id,
        id=message_id,
        account_id=item.entry["account_id"],
        account_pk=item.account_pk,
        priority=item.checked.priority,
        payload=item.payload,
        batch_code=item.checked.batch_code,
        deferred_ts=item.checked.deferred_ts,
        message_id_header=message_id_for_payload(item.entry),
    )


def _entry_id(entry: Any) -> Any:
    """The id a rejection names: the submitted one, or ``None`` when there is none."""
    if not isinstance(entry, dict):
        return None
    value = entry.get("id")
    if value == "" or isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return sendable(value) if isinstance(value, str) else value


async def _after_commit(mp: MailProxy, rows: Sequence[QueuedRow], outcome: EnqueueOutcome) -> None:
    """Wake the dispatcher for immediate messages; tell plugins what was queued."""
    stored = outcome.stored
    if any(row.priority == 0 and (row.tenant_id, row.id) in stored for row in rows):
        mp.wake_dispatcher()
    if not stored or not mp.hooks.has_implementations(QUEUED_HOOK):
        return
    for row in rows:
        key = (row.tenant_id, row.id)
        if key not in stored:
            continue
        message = Message(
            pk=stored[key],
            tenant_id=row.tenant_id,
            id=row.id,
            account_id=row.account_id,
            status="pending",
            priority=row.priority,
            payload=decode_json(row.payload, {}),
            batch_code=row.batch_code,
            account_pk=row.account_pk,
            deferred_ts=row.deferred_ts,
            next_attempt_ts=outcome.next_attempt_ts(row),
            created_at=outcome.created_at.get(key, outcome.now),
            updated_at=outcome.now,
            message_id_header=outcome.message_id_headers.get(key, row.message_id_header),
        )
        await mp.hooks.message_queued(mp, message)
