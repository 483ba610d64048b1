"""Turn an RFC 5322 file (``.eml``) into a mail-proxy message."""

from __future__ import annotations

import base64
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

# Headers that become message fields; every other header is kept under ``headers``.
_FIELDS = {
    "from": "from",
    "to": "to",
    "cc": "cc",
    "bcc": "bcc",
    "subject": "subject",
    "reply-to": "reply_to",
    "return-path": "return_path",
    "message-id": "message_id",
}
_SKIPPED = {"mime-version", "content-type", "content-transfer-encoding", "date"}


def _addresses(value: str) -> list[str]:
    from email.utils import getaddresses

    return [f"{name} <{addr}>" if name else addr for name, addr in getaddresses([value]) if addr]


def message_from_eml(data: bytes) -> dict[str, Any]:
    """The message fields of an ``.eml`` file: addresses, subject, text and HTML bodies,
    attachments (base64) and the remaining headers.

    Raises:
        ValueError: the file has no ``From`` or no recipient.
    """
    parsed = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(parsed, EmailMessage)
    message: dict[str, Any] = {}
    headers: dict[str, str] = {}
    for key, value in parsed.items():
        lower = key.lower()
        if lower in _FIELDS:
            field = _FIELDS[lower]
            text = str(value)
            if field in ("to", "cc", "bcc"):
                message[field] = _addresses(text)
            elif field == "reply_to":
                message[field] = text
            elif field == "return_path":
                message[field] = text.strip("<>")
            else:
                message[field] = text
        elif lower not in _SKIPPED:
            headers[key] = str(value)
    if "from" not in message:
        raise ValueError("the file has no From header")
    if not any(message.get(field) for field in ("to", "cc", "bcc")):
        raise ValueError("the file has no To, Cc or Bcc recipient")
    text_part = parsed.get_body(preferencelist=("plain",))
    html_part = parsed.get_body(preferencelist=("html",))
    if text_part is not None:
        message["body"] = text_part.get_content()
        if html_part is not None:
            message["html"] = html_part.get_content()
    elif html_part is not None:
        message["body"] = html_part.get_content()
        message["content_type"] = "html"
    else:
        message["body"] = ""
    attachments = []
    for part in parsed.iter_attachments():
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            payload = b""
        attachments.append(
            {
                "filename": part.get_filename() or "attachment.bin",
                "storage_path": "base64:" + base64.b64encode(payload).decode("ascii"),
                "mime_type": part.get_content_type(),
            }
        )
    if attachments:
        message["attachments"] = attachments
    if headers:
        message["headers"] = headers
    return message
