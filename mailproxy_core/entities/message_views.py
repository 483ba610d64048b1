"""How a message looks at rest and in API answers.

At rest the payload is the message exactly as submitted, with one exception: the credentials an
attachment may carry for its download (``attachments[n].auth``, e.g. ``{"method": "bearer",
"token": "..."}``) are client-auth credentials, so their secret values (keys such as ``token``,
``password``: ``crypto.is_secret_key``) are encrypted like every stored secret.
Code that fetches the attachment reads them back with :func:`open_attachment_auth`.

In answers (docs/api.md) secrets are write-only: an attachment's ``auth`` is left out of the
payload altogether (not masked), and ``has_auth: true`` says there was one.

The sender is stored and shown under ``from``, also when the client sent it as ``from_addr``
(the spelling of genro-mail-proxy clients, see :func:`with_sender_as_from`); messages stored
before that rule show their ``from_addr`` as ``from`` too. The message object gives ``pk`` as text
and ``created_at``/``updated_at`` as UTC text, the forms genro-mail-proxy clients read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NotRequired

from typing_extensions import TypedDict

from .views import utc_text


class HistoryEvent(TypedDict):
    """One event of a message's history, oldest first."""

    event_id: str
    event_type: str
    event_ts: int
    description: str | None
    metadata: dict[str, Any] | None
    reported_ts: int | None


class MessageObject(TypedDict):
    """A queued message as the API answers it (documented in OpenAPI from this type)."""

    pk: str
    id: str
    tenant_id: str
    account_id: str | None
    status: str
    priority: int
    batch_code: str | None
    deferred_ts: int | None
    next_attempt_ts: int
    attempts: int
    smtp_ts: int | None
    error: str | None
    last_error: str | None
    created_at: str
    updated_at: str
    payload: dict[str, Any]
    history: NotRequired[list[HistoryEvent]]


SENDER_ALIAS = "from_addr"
"""The other spelling of ``from`` accepted in a submitted message."""

MESSAGE_FIELDS = (
    "id",
    "tenant_id",
    "account_id",
    "status",
    "priority",
    "batch_code",
    "deferred_ts",
    "next_attempt_ts",
    "attempts",
    "smtp_ts",
    "last_error",
)
"""The message object's fields copied from the row as they are (see :func:`message_object`)."""


def with_sender_as_from(message: Mapping[str, Any]) -> Mapping[str, Any]:
    """``message`` with a ``from_addr`` sender moved to ``from`` (``message`` itself otherwise).

    The caller has checked that the two are not both given.
    """
    if message.get(SENDER_ALIAS) is None or message.get("from") is not None:
        return message
    moved = {key: value for key, value in message.items() if key not in (SENDER_ALIAS, "from")}
    return {"from": message[SENDER_ALIAS], **moved}


def public_payload(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """``payload`` as the API shows it: the sender under ``from``, attachments' ``auth``
    replaced by ``has_auth: true``."""
    payload = with_sender_as_from(payload)
    attachments = payload.get("attachments")
    if not isinstance(attachments, list) or not any(
        isinstance(spec, dict) and "auth" in spec for spec in attachments
    ):
        return payload
    shown = []
    for spec in attachments:
        if isinstance(spec, dict) and "auth" in spec:
            spec = {key: value for key, value in spec.items() if key != "auth"}
            spec["has_auth"] = True
        shown.append(spec)
    return {**payload, "attachments": shown}


def message_object(
    row: Mapping[str, Any], history: list[dict[str, Any]] | None = None
) -> MessageObject:
    """The message object of the API from a ``MessagesRepo`` row (``history`` if given).

    ``smtp_ts`` is when it was sent (``None`` until then); ``error`` is the reason of its final
    failure (only for status ``error``), ``last_error`` the latest failure of any attempt.
    """
    message: dict[str, Any] = {"pk": str(row["pk"])}
    message.update((name, row[name]) for name in MESSAGE_FIELDS)
    message["priority"] = int(row["priority"])
    message["error"] = row["last_error"] if row["status"] == "error" else None
    message["created_at"] = utc_text(row["created_at"])
    message["updated_at"] = utc_text(row["updated_at"])
    message["payload"] = public_payload(row["payload"])
    if history is not None:
        message["history"] = history
    return message  # type: ignore[return-value]  # built key by key above
