"""How a message looks at rest and in API answers.

At rest the payload is the message exactly as submitted, with one exception: the credentials an
attachment may carry for its download (``attachments[n].auth``, e.g. ``{"method": "bearer",
"token": "..."}``) are client-auth credentials, so their secret values (keys such as ``token``,
``password``: ``crypto.is_secret_key``) are encrypted like every stored secret (DESIGN.md §5).
Code that fetches the attachment reads them back with :func:`open_attachment_auth`.

In answers (API.md §3) secrets are write-only: an attachment's ``auth`` is left out of the
payload altogether (not masked), and ``has_auth: true`` says there was one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..crypto import SecretBox, is_secret_key

MESSAGE_FIELDS = (
    "pk",
    "id",
    "tenant_id",
    "account_id",
    "status",
    "priority",
    "batch_code",
    "deferred_ts",
    "next_attempt_ts",
    "attempts",
    "last_error",
    "created_at",
    "updated_at",
)
"""The message object's fields besides ``payload`` (and ``history`` when asked for)."""


def _secret_keys(auth: Mapping[str, Any]) -> list[str]:
    return [key for key in auth if isinstance(key, str) and is_secret_key(key)]


def seal_payload(box: SecretBox, payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """``payload`` with the secret values of its attachments' ``auth`` encrypted.

    Returns ``payload`` itself (no copy) when no attachment carries ``auth``, which is the
    common case and keeps enqueueing cheap.
    """
    attachments = payload.get("attachments")
    if not isinstance(attachments, list) or not any(
        isinstance(spec, dict) and isinstance(spec.get("auth"), dict) for spec in attachments
    ):
        return payload
    sealed = []
    for spec in attachments:
        auth = spec.get("auth") if isinstance(spec, dict) else None
        if isinstance(auth, dict):
            spec = {**spec, "auth": box.encrypt_fields(auth, _secret_keys(auth))}
        sealed.append(spec)
    return {**payload, "attachments": sealed}


def open_attachment_auth(box: SecretBox, auth: Mapping[str, Any]) -> dict[str, Any]:
    """An attachment's stored ``auth`` with its secret values decrypted, for fetching.

    Raises:
        ConfigurationError: a value is encrypted with another key (see ``SecretBox.decrypt``).
    """
    return box.decrypt_fields(auth, _secret_keys(auth))


def public_payload(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """``payload`` as the API shows it: attachments' ``auth`` replaced by ``has_auth: true``."""
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
) -> dict[str, Any]:
    """The message object of API.md §3 from a ``MessagesRepo`` row (``history`` if given)."""
    message = {name: row[name] for name in MESSAGE_FIELDS}
    message["priority"] = int(row["priority"])
    message["payload"] = public_payload(row["payload"])
    if history is not None:
        message["history"] = history
    return message
