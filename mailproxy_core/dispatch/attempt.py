"""One delivery attempt of one message, turned into an ``Outcome`` (docs/dispatch.md).

Order: account and tenant → send guards → rate limits → attachments → compose (envelope sender
hook) → prepare hooks → transport. Guards come first so that a refused message, or one whose
every recipient a guard dropped, never uses up a rate-limit slot. The seconds ``Transport.send``
took go to the outcome hooks. Every failure becomes an outcome: transient ones are retried with
back-off until ``max_retries`` retries were made (N retries = N+1 attempts, N ``deferred``
events, then one ``error`` ``Max retries (N) exceeded: <last error>``); permanent ones end the
message at once; rate limits defer to the next window without counting as a retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..db.repos.queue import Outcome
from ..errors import AttachmentError, MailproxyError, PermanentSendError, RateLimitedError
from ..events import EventType, MetaKey
from ..models import Account, Envelope, ErrorClass, Message, SendResult
from .attachments import FetchedAttachments, fetch_attachments
from .compose import compose, envelope_recipients, serialize
from .ratelimit import RATE_LIMIT_REASON, RATE_LIMIT_REJECTED, limit_slots, next_window_start
from .wire import compose_wire

if TYPE_CHECKING:
    from ..kernel import MailProxy
    from .directory import Directory

log = logging.getLogger(__name__)

T = TypeVar("T")

COMPOSE_IN_THREAD_BYTES = 256 * 1024
"""Messages larger than this are composed in a worker thread, off the event loop."""


def failure_text(error: BaseException) -> str:
    """The human-readable failure: ``<code> <text>`` for SMTP replies, else the error's text."""
    if isinstance(error, MailproxyError):
        return error.detail
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass(slots=True)
class Attempt:
    """One attempt's result: the outcome to record, the transport's result and the envelope
    when sent, how long ``Transport.send`` took (``None`` when the attempt never reached a
    transport), and the recipients a send guard dropped (all of them when the message ended in
    error because none was left)."""

    outcome: Outcome
    result: SendResult | None = None
    duration: float | None = None
    envelope: Envelope | None = None
    suppressed: tuple[str, ...] = ()


async def attempt_delivery(mp: MailProxy, message: Message, directory: Directory) -> Attempt:
    """Make one attempt; return what to record and tell the event hooks."""
    now = int(time.time())
    account = await directory.account(message)
    if account is None:
        text = f"account '{message.account_id}' not found for tenant '{message.tenant_id}'"
        return Attempt(_error(message, now, text, attempted=False))
    tenant = await directory.tenant(message.tenant_id)

    drop: set[str] = set()
    for name, guard in mp.send_guards.items():
        verdict = await guard.check(message, account)
        if not verdict.allow:
            reason = verdict.reason or f"refused by send guard {name}"
            if verdict.retry_at is not None:
                return Attempt(_defer(message, now, reason, int(verdict.retry_at)))
            return Attempt(_error(message, now, reason, attempted=False))
        drop.update(address.strip().lower() for address in verdict.drop_recipients)
    suppressed: list[str] = []
    if drop:
        recipients = envelope_recipients(message.payload)
        suppressed = [address for address in recipients if address.lower() in drop]
        if suppressed and len(suppressed) == len(recipients):
            text = f"{MetaKey.SUPPRESSED}: {', '.join(suppressed)}"
            return Attempt(
                _error(message, now, text, attempted=False), suppressed=tuple(suppressed)
            )

    slots = limit_slots(account, tenant)
    if slots:
        exhausted = await directory.queue.reserve_rate(slots, now)
        if exhausted:
            if account.limit_behavior == "reject":
                return Attempt(_error(message, now, RATE_LIMIT_REJECTED, attempted=False))
            return Attempt(
                _defer(message, now, RATE_LIMIT_REASON, next_window_start(exhausted, now))
            )

    timer = _TransportTimer()
    try:
        result, envelope = await _deliver(
            mp, message, account, directory, timer, frozenset(drop) if suppressed else frozenset()
        )
    except asyncio.CancelledError:
        raise
    except Exception as err:
        return Attempt(_failed(mp, message, now, err), duration=timer.seconds)
    metadata: dict[str, Any] = {}
    if result.refused:
        metadata["refused"] = dict(result.refused)
    if suppressed:
        metadata[MetaKey.SUPPRESSED] = suppressed
    outcome = Outcome(
        pk=message.pk,
        tenant_id=message.tenant_id,
        status="sent",
        event_type=EventType.SENT,
        description=result.response or None,
        now=int(time.time()),
        metadata=metadata or None,
    )
    return Attempt(outcome, result, timer.seconds, envelope, tuple(suppressed))


async def _cpu(off_loop: bool, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``work(*args, **kwargs)``, in a worker thread when ``off_loop`` (a large message)."""
    if off_loop:
        return await asyncio.to_thread(work, *args, **kwargs)
    return work(*args, **kwargs)


class _TransportTimer:
    """Seconds ``Transport.send`` took, set when it returns or raises."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds: float | None = None


async def _deliver(
    mp: MailProxy,
    message: Message,
    account: Account,
    directory: Directory,
    timer: _TransportTimer,
    drop: frozenset[str],
) -> tuple[SendResult, Envelope]:
    tenant = await directory.tenant(message.tenant_id)
    attachments = FetchedAttachments()
    if message.payload.get("attachments"):
        storage_names = await directory.storage_names(message.tenant_id)
        attachments = await fetch_attachments(mp, message, tenant, storage_names)
    size = len(str(message.payload.get("body") or "")) + sum(len(a.content) for a in attachments)
    off_loop = size > COMPOSE_IN_THREAD_BYTES
    extra = attachments.extra_body
    sender: str | None = None
    if mp.hooks.has_implementations("mailproxy_envelope_sender"):
        sender = mp.hooks.envelope_sender(message, account)
    shape: dict[str, Any] = {"extra_body": extra, "envelope_sender": sender, "drop": drop}
    wire: tuple[bytes, Envelope] | None = None
    if not mp.hooks.has_implementations("mailproxy_prepare_message"):
        # The common case: the wire bytes directly, without an EmailMessage (wire.py).
        wire = await _cpu(off_loop, compose_wire, message, attachments, **shape)
    if wire is not None:
        data, envelope = wire
    else:
        mime, envelope = await _cpu(off_loop, compose, message, attachments, **shape)
        mp.hooks.prepare_message(mime, message, account)
        data = await _cpu(off_loop, serialize, mime)
    name = mp.hooks.select_transport(account, message)
    transport = mp.transports.get(name)
    if transport is None:
        available = ", ".join(sorted(mp.transports)) or "none"
        raise PermanentSendError(
            f"transport '{name}' of account '{account.id}' is not installed "
            f"(available: {available})"
        )
    started = time.perf_counter()
    try:
        return await transport.send(account, envelope, data), envelope
    finally:
        timer.seconds = time.perf_counter() - started


def _failed(mp: MailProxy, message: Message, now: int, error: BaseException) -> Outcome:
    kind = mp.hooks.classify_error(error)
    text = failure_text(error)
    if isinstance(error, AttachmentError):
        text = text if text.startswith("Attachment ") else f"Attachment fetch failed: {text}"
    if kind is ErrorClass.RATE_LIMITED:
        retry_at = getattr(error, "retry_at", None) if isinstance(error, RateLimitedError) else None
        return _defer(message, now, RATE_LIMIT_REASON, int(retry_at or now + 60))
    if kind is ErrorClass.PERMANENT:
        return _error(message, now, text, last_error=text)
    attempt = message.attempts + 1
    retries = mp.settings.max_retries
    if attempt > retries:
        return _error(message, now, f"Max retries ({retries}) exceeded: {text}", last_error=text)
    delay = mp.hooks.retry_delay(attempt, error, message, mp.settings.retry_delays)
    return Outcome(
        pk=message.pk,
        tenant_id=message.tenant_id,
        status="deferred",
        event_type=EventType.DEFERRED,
        description=text,
        now=now,
        next_attempt_ts=now + max(0, round(delay)),
        last_error=text,
    )


def _error(
    message: Message, now: int, text: str, *, attempted: bool = True, last_error: str | None = None
) -> Outcome:
    return Outcome(
        pk=message.pk,
        tenant_id=message.tenant_id,
        status="error",
        event_type=EventType.ERROR,
        description=text,
        now=now,
        attempted=attempted,
        last_error=last_error or text,
    )


def _defer(message: Message, now: int, reason: str, until: int) -> Outcome:
    return Outcome(
        pk=message.pk,
        tenant_id=message.tenant_id,
        status="deferred",
        event_type=EventType.DEFERRED,
        description=reason,
        now=now,
        next_attempt_ts=until,
        attempted=False,
    )
