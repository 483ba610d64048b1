"""The Message-ID of each message: chosen once at enqueue, stored, sent on every attempt.

A message's Message-ID is the client's ``message_id`` when it gave one, else a generated
``<mp.<32 hex>@<sender domain>>``. It is stored in ``messages.message_id_header`` when the
message is queued, so every attempt sends the same id (receivers can de-duplicate an
at-least-once redelivery) and receipts (bounces, PEC receipts) can be matched to the message by
the id they quote. Generated ids are random, so two tenants using the same client id never share
one.

This module depends on nothing but the standard library: the enqueue path, the composers, the
receipt path and the core migration all use it.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Message

__all__ = [
    "GENERATED_PREFIX",
    "client_message_id",
    "derived_message_id",
    "generated_message_id",
    "message_id_for_payload",
    "message_id_of",
    "normalize_message_id",
    "recipients_of",
]

GENERATED_PREFIX = "<mp."
"""How every Message-ID this service generates begins."""

FALLBACK_DOMAIN = "mail-proxy.invalid"
"""The domain of a generated id when the sender has none."""

_MESSAGE_ID = re.compile(r"^<[^<>\s@]+@[^<>\s@]+>$")


def normalize_message_id(value: str) -> str:
    """``value`` as a Message-ID header value: stripped, in angle brackets (``a@b`` → ``<a@b>``).

    An empty value stays empty.
    """
    value = value.strip()
    if not value or _MESSAGE_ID.match(value):
        return value
    return f"<{value.strip('<>')}>"


def _sender_domain(payload: Mapping[str, Any]) -> str:
    sender = str(payload.get("from") or payload.get("from_addr") or "")
    return email.utils.parseaddr(sender)[1].rpartition("@")[2] or FALLBACK_DOMAIN


def client_message_id(payload: Mapping[str, Any]) -> str | None:
    """The client's own ``message_id`` of a payload, normalized; ``None`` when it gave none."""
    own = payload.get("message_id")
    if isinstance(own, str) and own.strip():
        return normalize_message_id(own)
    return None


def generated_message_id(payload: Mapping[str, Any]) -> str:
    """A new random Message-ID in the sender's domain."""
    return f"{GENERATED_PREFIX}{uuid.uuid4().hex}@{_sender_domain(payload)}>"


def message_id_for_payload(payload: Mapping[str, Any]) -> str:
    """The Message-ID to store for a message being queued: the client's, else a new one."""
    return client_message_id(payload) or generated_message_id(payload)


def derived_message_id(pk: int, tenant_id: str, message_id: str, payload: Mapping[str, Any]) -> str:
    """The Message-ID earlier versions derived at send time from the queue row.

    Used to fill ``message_id_header`` of messages queued before it was stored (the core
    migration), so that their retries keep the id their earlier attempts carried.
    """
    own = client_message_id(payload)
    if own is not None:
        return own
    digest = hashlib.sha256(f"{tenant_id}\0{message_id}\0{pk}".encode()).hexdigest()
    return f"<mp.{pk}.{digest[:20]}@{_sender_domain(payload)}>"


def message_id_of(message: Message) -> str:
    """The Message-ID ``message`` is sent with: the one stored when it was queued.

    A ``Message`` built without it (by a test or an embedder) gets the id earlier versions
    derived from the queue row, which is just as stable across retries.
    """
    if message.message_id_header:
        return message.message_id_header
    return derived_message_id(message.pk, message.tenant_id, message.id, message.payload)


def recipients_of(payload: Mapping[str, Any]) -> tuple[str, ...]:
    """The bare addresses (To, Cc, Bcc) a message payload is sent to, in order, once each."""
    found: list[str] = []
    for field_name in ("to", "cc", "bcc"):
        value = payload.get(field_name)
        if not value:
            continue
        items = [value] if isinstance(value, str) else list(value)
        for _name, address in email.utils.getaddresses([str(item) for item in items]):
            if address and address not in found:
                found.append(address)
    return tuple(found)
