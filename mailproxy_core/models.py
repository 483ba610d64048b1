"""Domain values handed between the kernel, the database layer and plugins.

Frozen, slotted dataclasses: cheap, immutable, typed. pydantic lives only at the edges (API bodies
and settings); inside the service we pass these.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

MessageStatus = Literal["pending", "deferred", "sending", "sent", "error"]

PRIORITY_LABELS: Mapping[str, int] = {"immediate": 0, "high": 1, "medium": 2, "low": 3}
"""Priority names accepted by the API (docs/api.md); 0 is the most urgent."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling the API: the instance admin, or one tenant (docs/api.md)."""

    kind: Literal["admin", "tenant"]
    tenant_id: str | None = None
    name: str = ""

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    @classmethod
    def admin(cls, name: str = "admin") -> Principal:
        return cls(kind="admin", tenant_id=None, name=name)

    @classmethod
    def tenant(cls, tenant_id: str, name: str = "") -> Principal:
        return cls(kind="tenant", tenant_id=tenant_id, name=name or tenant_id)


@dataclass(frozen=True, slots=True)
class StorageMount:
    """A tenant's storage mount with its config decrypted (``MailProxy.storage_mount``; for
    storage backends and plugins only, never for a response)."""

    tenant_id: str
    name: str
    protocol: str
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Tenant:
    """A client application served by the instance; secrets already decrypted."""

    id: str
    name: str | None = None
    client_base_url: str | None = None
    client_sync_path: str | None = None
    client_attachment_path: str | None = None
    client_auth: Mapping[str, Any] | None = None
    rate_limits: Mapping[str, Any] | None = None
    large_file_config: Mapping[str, Any] | None = None
    active: bool = True
    suspended_batches: tuple[str, ...] = ()
    reporter: str = "http"
    report_signing_secret: str | None = None
    created_at: int = 0
    updated_at: int = 0


@dataclass(frozen=True, slots=True)
class Account:
    """An outgoing account of a tenant (SMTP by default); ``password`` already decrypted."""

    pk: str
    tenant_id: str
    id: str
    host: str = ""
    port: int = 0
    user: str | None = None
    password: str | None = None
    use_tls: bool | None = True
    transport: str = "smtp"
    ttl: int = 300
    batch_size: int | None = None
    limit_per_minute: int | None = None
    limit_per_hour: int | None = None
    limit_per_day: int | None = None
    limit_behavior: Literal["defer", "reject"] = "defer"
    options: Mapping[str, Any] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    """A queued message; ``payload`` is the message exactly as the client submitted it."""

    pk: int
    tenant_id: str
    id: str
    account_id: str | None
    status: MessageStatus
    priority: int
    payload: Mapping[str, Any]
    batch_code: str | None = None
    account_pk: str | None = None
    deferred_ts: int | None = None
    next_attempt_ts: int = 0
    attempts: int = 0
    last_error: str | None = None
    smtp_ts: int | None = None
    created_at: int = 0
    updated_at: int = 0
    message_id_header: str | None = None
    """The Message-ID stored at enqueue (the client's ``message_id``, else generated); every
    attempt sends it (``MailProxy.message_id_header``)."""


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """One attachment of a message as the client described it (docs/attachments.md)."""

    filename: str
    storage_path: str
    fetch_mode: str | None = None
    mime_type: str | None = None
    content_md5: str | None = None
    auth: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Envelope:
    """SMTP envelope: the sender (Return-Path) and every recipient, Bcc included."""

    sender: str
    recipients: tuple[str, ...]
    message_id: str = ""


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a transport reports for an accepted message.

    ``refused`` maps each recipient the server refused to its ``"<code> <text>"`` reply; the
    message counts as sent as long as one recipient was accepted.
    """

    accepted: tuple[str, ...]
    refused: Mapping[str, str] = field(default_factory=dict)
    response: str = ""


class ErrorClass(enum.Enum):
    """How a failed attempt is treated (docs/dispatch.md)."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """A send guard's answer: allow, or refuse with a reason (optionally retry later).

    An allowing verdict may drop single recipients (``drop_recipients``, bare addresses, any
    case): the message is sent without them and the ``sent`` event lists them in
    ``metadata.suppressed``; a message left with no recipient ends in ``error``
    ``suppressed: <address>``.
    """

    allow: bool
    reason: str = ""
    retry_at: float | None = None
    drop_recipients: tuple[str, ...] = ()

    @classmethod
    def ok(cls) -> GuardVerdict:
        return cls(allow=True)


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """One outbox row as handed to a reporter (docs/reports.md)."""

    event_id: str
    tenant_id: str
    message_id: str
    event_type: str
    event_ts: int
    description: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReportAck:
    """A reporter's outcome for one delivery: ok marks the events reported."""

    ok: bool
    next_sync_after: float | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Receipt:
    """Something learnt about a message after it was sent (a bounce, a PEC receipt), handed to
    ``MailProxy.record_receipts`` by a receipt handler.

    ``event_type`` is an ``EventType`` value; ``dedup_key`` identifies the receipt among the
    message's events: the incoming mail's Message-ID, or ``"<mailbox>|<uidvalidity>|<uid>"``
    when it has none (one incoming mail that yields several receipts for the same message must
    give each its own key, e.g. by appending the recipient). A receipt recorded once is never
    recorded again for that message. ``event_ts`` is unix seconds (``None``: now).

    Correlation, first that matches wins: ``message_pk``; ``message_id_header`` (the Message-ID
    the service sent, with or without ``<>``); ``client_message_id`` (the client's message id,
    ``X-Genro-Mail-ID``), which counts only when exactly one candidate remains, narrowed by
    ``recipient`` to the sent messages that went to that address. ``tenant_id`` and
    ``account_id`` restrict the candidates to one tenant (and one of its accounts).
    """

    event_type: str
    dedup_key: str
    description: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    event_ts: int | None = None
    message_pk: int | None = None
    message_id_header: str | None = None
    client_message_id: str | None = None
    recipient: str | None = None
    tenant_id: str | None = None
    account_id: str | None = None


class ReceiptOutcome(enum.StrEnum):
    """What ``record_receipts`` did with one receipt."""

    RECORDED = "recorded"
    """A new event was appended to the message's history (committed)."""
    DUPLICATE = "duplicate"
    """The message already has an event with this ``dedup_key``; nothing was added."""
    UNMATCHED = "unmatched"
    """No message matches the receipt; nothing was added."""
    AMBIGUOUS = "ambiguous"
    """Several messages match and nothing tells them apart; nothing was added."""


@dataclass(frozen=True, slots=True)
class ReceiptResult:
    """The outcome of one receipt, with the message it was matched to (when it was)."""

    receipt: Receipt
    outcome: ReceiptOutcome
    message_pk: int | None = None
    tenant_id: str | None = None
    message_id: str | None = None
    """The client's id of the matched message."""


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message as ``MailProxy.find_messages`` returns it (for receipt correlation).

    ``recipients`` are the bare addresses of To, Cc and Bcc; ``sent_ts`` is when it was sent
    (``None`` until then).
    """

    pk: int
    tenant_id: str
    id: str
    account_id: str | None
    status: MessageStatus
    message_id_header: str | None
    recipients: tuple[str, ...] = ()
    sent_ts: int | None = None


@dataclass(frozen=True, slots=True)
class PoolState:
    """The connections a transport holds in *this* process for one account's server.

    ``open`` sessions exist (in use or idle), ``idle`` of them wait for the next send, ``in_use``
    sends hold a slot right now, ``waiting`` sends wait for one, ``max_connections`` is the cap
    per server (``None`` when the transport has none).
    """

    open: int = 0
    idle: int = 0
    in_use: int = 0
    waiting: int = 0
    max_connections: int | None = None


@dataclass(frozen=True, slots=True)
class RateUsage:
    """One rate-limit window now: ``used`` attempts of ``limit`` in the current ``window``
    (``"minute"``, ``"hour"`` or ``"day"``, aligned to UTC), which ends at ``resets_at``."""

    window: str
    used: int
    limit: int
    resets_at: int


@dataclass(frozen=True, slots=True)
class ReceiptHandlerStatus:
    """The state of one receipt handler as every process sees it.

    ``last_poll_ts`` is when its last successful poll ended (unix seconds), ``last_error`` the
    text of its last failure (``None`` once a poll succeeds), ``polling`` whether *this*
    process holds the handler's lease and polls it.
    """

    name: str
    last_poll_ts: float | None = None
    last_error: str | None = None
    polling: bool = False
