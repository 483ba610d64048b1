"""Event types and event-metadata keys shared by the kernel, reporters and receipt handlers.

Every event in a message's history (``message_events.event_type``) and every key a receipt
event carries in its ``metadata`` is named here once, so producers (the dispatcher, bounce and
PEC handlers) and consumers (reporters, the history API) cannot drift apart. Both enums are
``StrEnum``: a member *is* its wire string (``EventType.SENT == "sent"``), so values read back
from the database compare equal to the members.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["EventType", "MetaKey"]


class EventType(StrEnum):
    """The ``event_type`` of a history event; the value is the string stored and reported."""

    SENT = "sent"
    """The message was accepted by the server (refused recipients in ``metadata.refused``)."""
    ERROR = "error"
    """The message failed for good; the description is the reason."""
    DEFERRED = "deferred"
    """A transient failure or a rate limit; the message is tried again later."""
    REQUEUED = "requeued"
    """``messages/retry`` put the message back in the queue."""
    BOUNCE = "bounce"
    """A non-delivery report or a spam complaint arrived for the message."""
    PEC_ACCEPTANCE = "pec_acceptance"
    """The PEC provider accepted the message (``accettazione``, ``presa-in-carico``)."""
    PEC_DELIVERY = "pec_delivery"
    """The PEC provider delivered the message to one recipient (``avvenuta-consegna``)."""
    PEC_ERROR = "pec_error"
    """The PEC provider refused or could not deliver the message."""
    PEC_TIMEOUT = "pec_timeout"
    """No PEC acceptance arrived within the configured time."""


class MetaKey(StrEnum):
    """Keys of an event's ``metadata`` object, shared by receipt producers and reporters."""

    BOUNCE_TYPE = "bounce_type"
    """``hard``, ``soft`` or ``complaint``."""
    BOUNCE_CODE = "bounce_code"
    """Enhanced status code (``5.1.1``), else the 3-digit reply code; ``None`` for complaints."""
    RECIPIENT = "recipient"
    """The recipient the receipt is about (bare address)."""
    RECEIPT = "receipt"
    """The PEC receipt type (``accettazione``, ``avvenuta-consegna`` ...)."""
    ACTION = "action"
    """The DSN ``Action`` of the recipient block (``failed``, ``delayed``)."""
    FEEDBACK_TYPE = "feedback_type"
    """The ARF ``Feedback-Type`` of a complaint (``abuse`` ...)."""
    SOURCE_MESSAGE_ID = "source_message_id"
    """The Message-ID of the incoming report/receipt mail."""
    RECEIPT_TS = "receipt_ts"
    """When the report/receipt says the event happened (unix seconds)."""
    PROVIDER = "provider"
    """The PEC provider that issued the receipt."""
    PEC_ID = "pec_id"
    """The PEC provider's identifier of the receipt."""
    REASON = "reason"
    """The provider's failure reason, when it gives one apart from the description."""
    SUPPRESSED = "suppressed"
    """Recipients left out of a send because they are suppressed (``sent`` events)."""
