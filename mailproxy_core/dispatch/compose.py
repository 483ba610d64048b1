"""MIME composition: a stored message payload → an ``EmailMessage`` and its SMTP envelope.

The payload is the message exactly as the client submitted it (docs/api.md). Composition is pure
CPU; the dispatcher runs it in a worker thread when the message is large, so a 20 MB attachment
never stalls the event loop.

Every outgoing mail carries ``Date``, a ``Message-ID`` that is the same on every attempt (the
one stored when the message was queued: the client's own ``message_id``, else generated) and
``X-Genro-Mail-ID: <client id>`` for bounce correlation (docs/dispatch.md).
"""

from __future__ import annotations

import email.utils
import mimetypes
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from ..message_ids import message_id_of
from ..models import Envelope, Message

MAIL_ID_HEADER = "X-Genro-Mail-ID"
"""Carries the client's message id on every outgoing mail (the reference's header name)."""

# Headers the composer owns: a client's ``headers`` object cannot replace or duplicate them.
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "From",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Reply-To",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        MAIL_ID_HEADER,
        "Return-Path",
    )
)


class RepeatedHeaderCache(HeaderRegistry):
    """The stdlib header registry, remembering parsed headers whose values repeat.

    Parsing a header (``email.headerregistry``) is most of the cost of composing a message, and
    ``From``, ``Reply-To``, ``Date`` (per second) and the ``Content-*`` headers of a bulk send are
    the same message after message. Parsed headers are immutable, so one parsed object can serve
    every message; the output is byte for byte what the uncached registry produces.
    """

    CACHED = frozenset(
        {"from", "reply-to", "date", "mime-version", "content-type", "content-transfer-encoding"}
    )
    MAX_ENTRIES = 1024

    def __init__(self) -> None:
        super().__init__()
        self._parsed: dict[tuple[str, str], BaseHeader] = {}

    def __call__(self, name: str, value: str) -> BaseHeader:
        if name.lower() not in self.CACHED:
            return super().__call__(name, value)
        key = (name, str(value))
        header = self._parsed.get(key)
        if header is None:
            if len(self._parsed) >= self.MAX_ENTRIES:
                self._parsed.clear()
            header = self._parsed[key] = super().__call__(name, value)
        return header


POLICY = SMTP.clone(header_factory=RepeatedHeaderCache())
"""``email.policy.SMTP`` with cached parsing of repeated headers (CRLF line endings)."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """One fetched attachment, ready to be added to the MIME message."""

    filename: str
    content: bytes
    mime_type: str | None = None


def split_addresses(value: Any) -> list[str]:
    """``"a@x, B <b@y>"`` or ``["a@x", ...]`` → individual address strings (display names kept)."""
    if value is None or value == "":
        return []
    items = [value] if isinstance(value, str) else list(value)
    pairs = email.utils.getaddresses([str(item) for item in items])
    return [email.utils.formataddr(pair) if pair[0] else pair[1] for pair in pairs if pair[1]]


def addr_spec(address: str) -> str:
    """The bare ``local@domain`` of an address that may carry a display name."""
    return email.utils.parseaddr(address)[1]


def message_id_for(message: Message) -> str:
    """The ``Message-ID`` of ``message``: the one stored when it was queued."""
    return message_id_of(message)


def envelope_recipients(payload: Mapping[str, Any]) -> tuple[str, ...]:
    """Every bare recipient address of a payload (To, Cc, Bcc), duplicates removed, in order."""
    addresses = (
        *split_addresses(payload.get("to")),
        *split_addresses(payload.get("cc")),
        *split_addresses(payload.get("bcc")),
    )
    return tuple(dict.fromkeys(addr_spec(a) for a in addresses))


def make_envelope(
    payload: Mapping[str, Any],
    sender: str,
    recipients: Iterable[str],
    message_id: str,
    *,
    envelope_sender: str | None = None,
    drop: frozenset[str] = frozenset(),
) -> Envelope:
    """The SMTP envelope of a composed message (both composers).

    ``envelope_sender`` (a plugin's ``mailproxy_envelope_sender`` answer) wins over the
    payload's ``return_path``, which wins over the ``From`` address. Recipients whose lower-cased
    address is in ``drop`` (dropped by a send guard) are left out; headers are not changed.
    """
    if envelope_sender:
        mail_from = addr_spec(envelope_sender) or envelope_sender
    else:
        return_path = payload.get("return_path")
        mail_from = addr_spec(str(return_path)) if return_path else addr_spec(sender)
    unique = dict.fromkeys(addr_spec(a) for a in recipients)
    kept = tuple(a for a in unique if a.lower() not in drop) if drop else tuple(unique)
    return Envelope(sender=mail_from, recipients=kept, message_id=message_id)


def compose(
    message: Message,
    attachments: Sequence[Attachment] = (),
    *,
    extra_body: Mapping[str, str] | None = None,
    envelope_sender: str | None = None,
    drop: frozenset[str] = frozenset(),
) -> tuple[EmailMessage, Envelope]:
    """Build the MIME message and the envelope of one queued message.

    ``extra_body`` optionally appends text to the bodies (``{"plain": ..., "html": ...}``), used
    for download links of attachments replaced by links. ``envelope_sender`` and ``drop``
    shape the envelope only (see :func:`make_envelope`).
    """
    payload = message.payload
    sender = str(payload.get("from") or payload.get("from_addr") or "")
    to = split_addresses(payload.get("to"))
    cc = split_addresses(payload.get("cc"))
    bcc = split_addresses(payload.get("bcc"))

    mime = EmailMessage(policy=POLICY)
    mime["From"] = sender
    if to:
        mime["To"] = ", ".join(to)
    if cc:
        mime["Cc"] = ", ".join(cc)
    reply_to = split_addresses(payload.get("reply_to"))
    if reply_to:
        mime["Reply-To"] = ", ".join(reply_to)
    mime["Subject"] = str(payload.get("subject") or "")
    mime["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    message_id = message_id_for(message)
    mime["Message-ID"] = message_id
    mime[MAIL_ID_HEADER] = message.id
    for name, value in _custom_headers(payload.get("headers")):
        mime[name] = value

    _set_bodies(mime, payload, extra_body or {})
    for attachment in attachments:
        _attach(mime, attachment)

    envelope = make_envelope(
        payload,
        sender,
        (*to, *cc, *bcc),
        message_id,
        envelope_sender=envelope_sender,
        drop=drop,
    )
    return mime, envelope


def serialize(mime: EmailMessage) -> bytes:
    """The wire form (CRLF line endings)."""
    return mime.as_bytes(policy=SMTP)


def _custom_headers(headers: Any) -> Iterable[tuple[str, str]]:
    if not isinstance(headers, Mapping):
        return ()
    return (
        (str(name), str(value))
        for name, value in headers.items()
        if str(name).lower() not in RESERVED_HEADERS
    )


def _set_bodies(mime: EmailMessage, payload: Mapping[str, Any], extra: Mapping[str, str]) -> None:
    body = str(payload.get("body") or "")
    html = payload.get("html")
    content_type = payload.get("content_type") or "plain"
    if html:
        # body (plain) + html → multipart/alternative, plain first as RFC 2046 asks.
        mime.set_content(body + extra.get("plain", ""))
        mime.add_alternative(str(html) + extra.get("html", ""), subtype="html")
    elif content_type == "html":
        mime.set_content(body + extra.get("html", ""), subtype="html")
    else:
        mime.set_content(body + extra.get("plain", ""))


def attachment_mime_type(attachment: Attachment) -> str:
    """``maintype/subtype`` of an attachment part: its own, else guessed from the file name,
    else ``application/octet-stream`` (``text`` without a subtype is ``text/plain``)."""
    mime_type = (
        attachment.mime_type
        or mimetypes.guess_type(attachment.filename)[0]
        or "application/octet-stream"
    )
    maintype, _, subtype = mime_type.partition("/")
    if maintype == "text":
        return f"text/{subtype or 'plain'}"
    return f"{maintype or 'application'}/{subtype or 'octet-stream'}"


def _attach(mime: EmailMessage, attachment: Attachment) -> None:
    # Text attachments are added as bytes of their text type, so they stay byte-exact.
    maintype, _, subtype = attachment_mime_type(attachment).partition("/")
    mime.add_attachment(
        attachment.content, maintype=maintype, subtype=subtype, filename=attachment.filename
    )
