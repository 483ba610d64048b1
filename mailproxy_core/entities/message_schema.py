"""The documented shape of a submitted message and of its attachment specs.

These models describe, for the OpenAPI document, exactly the fields ``messages/add`` and
``messages/add_batch`` accept. They are not what validates a message: ``message_validation``
checks messages itself, so that a batch can reject one entry with a reason and store the others.
The field names listed here are the single source of what is accepted: a field not listed is
refused as unknown (with a did-you-mean hint), so a typo never silently drops data.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Priority = int | Literal["immediate", "high", "medium", "low"]
Addresses = str | list[str]


class AttachmentSpec(BaseModel):
    """One attachment: where its bytes come from and how it is named in the mail."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(
        description="name shown in the mail; a `{MD5:<32 hex>}` marker is a cache key and is "
        "removed from the delivered name"
    )
    storage_path: str = Field(
        description="where the bytes are: `base64:<data>`, an `http(s)://` URL, an absolute "
        "path inside the allowed roots, `<mount>:<path>` of a tenant storage, or a value the "
        "client application's attachment endpoint understands"
    )
    fetch_mode: str | None = Field(
        None,
        description="`base64`, `http_url`, `endpoint`, `filesystem` or `storage` (plugins may "
        "add more); inferred from `storage_path` when absent",
    )
    mime_type: str | None = Field(
        None, description="MIME type; default: from the filename, else application/octet-stream"
    )
    content_md5: str | None = Field(
        None, description="MD5 of the content, 32 hexadecimal digits (cache key)"
    )
    auth: dict[str, Any] | None = Field(
        None, description="credentials for this fetch, instead of the tenant's client auth"
    )


class MessageSpec(BaseModel):
    """A message as a client submits it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(description="the client's id of the message, unique per tenant")
    tenant_id: str | None = Field(
        None, description="the tenant; tenant keys may omit it (their own tenant is used)"
    )
    account_id: str = Field(description="the tenant's account that sends it")
    from_: str | None = Field(
        None,
        alias="from",
        description="sender address (`Alice <alice@example.com>` allowed); required, as "
        "`from` or `from_addr`",
    )
    from_addr: str | None = Field(
        None, description="alias of `from` sent by reference clients; stored as `from`"
    )
    to: Addresses = Field(description="recipients: a comma-separated string or a list")
    cc: Addresses | None = Field(None, description="carbon-copy recipients")
    bcc: Addresses | None = Field(None, description="blind-copy recipients (not in headers)")
    reply_to: Addresses | None = Field(None, description="Reply-To addresses")
    return_path: str | None = Field(
        None, description="envelope sender (MAIL FROM) where bounces go; default: the sender"
    )
    subject: str = Field(description="subject line, at most 998 characters, no line breaks")
    body: str | None = Field(
        None,
        description="the text (or HTML when `content_type` is `html`); required unless "
        "`html` is given",
    )
    html: str | None = Field(
        None, description="HTML version; with `body` the mail is multipart/alternative"
    )
    content_type: Literal["plain", "html"] | None = Field(
        None, description="what `body` holds: `plain` (default) or `html`"
    )
    message_id: str | None = Field(
        None, description="Message-ID header to use; generated when absent"
    )
    priority: Priority | None = Field(
        None, description="0 (most urgent) .. 3, or immediate, high, medium, low; default 2"
    )
    deferred_ts: int | None = Field(None, description="unix seconds: do not send before")
    batch_code: str | None = Field(
        None, description="groups messages for suspending and resuming sending"
    )
    attachments: list[AttachmentSpec] | None = Field(None, description="files to attach")
    headers: dict[str, str] | None = Field(
        None, description="extra headers: name to single-line value"
    )


class MessageBatch(BaseModel):
    """Messages queued in one call."""

    model_config = ConfigDict(extra="forbid")

    messages: list[MessageSpec] = Field(description="the messages (at most 1,000 by default)")
    default_priority: Priority | None = Field(
        None, description="priority of messages that give none (default 2)"
    )


def _names(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(field.alias or name for name, field in model.model_fields.items())


MESSAGE_FIELDS = _names(MessageSpec)
"""Every top-level field a message may carry."""

ATTACHMENT_FIELDS = _names(AttachmentSpec)
"""Every field an attachment spec may carry."""


def unknown_field(given: Iterable[str], allowed: frozenset[str]) -> str | None:
    """``unknown field '<f>'`` (with a did-you-mean hint when one is close), or ``None``."""
    for name in given:
        if name not in allowed:
            guess = difflib.get_close_matches(str(name), sorted(allowed), n=1, cutoff=0.75)
            hint = f" (did you mean '{guess[0]}'?)" if guess else ""
            return f"unknown field '{name}'{hint}"
    return None
