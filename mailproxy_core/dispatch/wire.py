"""Direct composition of the common message: the wire bytes without building an ``EmailMessage``.

``compose`` + ``serialize`` (``compose.py``) go through the stdlib ``email`` package: every header
is parsed into a token tree and folded back, and every attachment is base64-encoded and written
line by line in Python; that was most of the CPU a send cost. Most mail a relay carries is
simple: ASCII addresses and headers that fit on a line, a text and/or HTML body, attachments with
plain file names. For those ``compose_wire`` writes the bytes itself, **byte for byte what
``serialize(compose(...))`` produces** (the same header order, body encodings, boundaries and
MIME layout; ``tests/dispatch/test_dispatch_wire.py`` compares the two over thousands of
generated messages). Any header that is not simple (non-ASCII, longer than a line, unusual address
syntax, a structured custom header) is still parsed and folded by the ``email`` package, one
header at a time. An attachment whose file name needs quoting, RFC 2231 encoding or folding, or
whose type is unusual, makes ``compose_wire`` return ``None``.

The dispatcher uses it when no plugin implements ``mailproxy_prepare_message`` (which needs the
``EmailMessage`` object); otherwise, or on ``None``, it composes through ``compose.py``.
"""

from __future__ import annotations

import binascii
import email.utils
import random
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email import quoprimime
from email.headerregistry import HeaderRegistry
from email.policy import SMTP
from typing import Any

from ..models import Envelope, Message
from .compose import (
    MAIL_ID_HEADER,
    POLICY,
    Attachment,
    _custom_headers,
    attachment_mime_type,
    make_envelope,
    message_id_for,
    split_addresses,
)

CRLF = "\r\n"
MAX_LINE: int = SMTP.max_line_length or 78
"""78: header lines and text body lines longer than this are folded or encoded."""

_STRUCTURED = frozenset(HeaderRegistry().registry)
"""Header names the ``email`` package parses with a structure (addresses, dates, ids ...)."""

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR = rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_SIMPLE_ADDRESS = re.compile(rf"(?:{_ATOM}(?: {_ATOM})* <{_ADDR}>|{_ADDR})")
"""``local@domain`` or ``Display Name <local@domain>`` with plain words (no quotes, comments,
encoded words or special characters): the ``email`` parser renders these unchanged."""

_SIMPLE_TEXT = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
"""Printable ASCII words separated by single spaces."""

_SIMPLE_MESSAGE_ID = re.compile(rf"<{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*>")

_LINE_BREAKS = re.compile(r"\r\n|\r|\n")

_BOUNDARY_WIDTH = len(repr(sys.maxsize - 1))


def compose_wire(
    message: Message,
    attachments: Sequence[Attachment] = (),
    *,
    extra_body: Mapping[str, str] | None = None,
    envelope_sender: str | None = None,
    drop: frozenset[str] = frozenset(),
) -> tuple[bytes, Envelope] | None:
    """The wire form and envelope of a message (see the module doc); ``None`` when an
    attachment's name or type is not simple enough to be written here (use ``compose``).
    ``envelope_sender`` and ``drop`` shape the envelope as in ``compose``."""
    heads: list[str] = []
    for attachment in attachments:
        part_head = _attachment_head(attachment)
        if part_head is None:
            return None
        heads.append(part_head)
    payload = message.payload
    extra = extra_body or {}
    sender = str(payload.get("from") or payload.get("from_addr") or "")
    to = split_addresses(payload.get("to"))
    cc = split_addresses(payload.get("cc"))
    bcc = split_addresses(payload.get("bcc"))
    reply_to = split_addresses(payload.get("reply_to"))
    message_id = message_id_for(message)

    head: list[str] = [_address_header("From", [sender] if sender else [])]
    if to:
        head.append(_address_header("To", to))
    if cc:
        head.append(_address_header("Cc", cc))
    if reply_to:
        head.append(_address_header("Reply-To", reply_to))
    head.append(_text_header("Subject", str(payload.get("subject") or "")))
    now = datetime.now(UTC).replace(microsecond=0)
    head.append(f"Date: {email.utils.format_datetime(now)}{CRLF}")
    head.append(
        f"Message-ID: {message_id}{CRLF}"
        if _SIMPLE_MESSAGE_ID.fullmatch(message_id) and len(message_id) <= MAX_LINE - 12
        else _parsed_header("Message-ID", message_id)
    )
    head.append(_text_header(MAIL_ID_HEADER, message.id))
    head.extend(
        _text_header(name, value)
        for name, value in _custom_headers(payload.get("headers"))
        # ``EmailMessage.set_content`` drops every Content-* header set before it.
        if not name.lower().startswith("content-")
    )
    content_headers, content, multipart = _content(payload, extra)
    tail: list[bytes] = []
    if not attachments:
        if multipart:
            head.append(f"MIME-Version: 1.0{CRLF}{content_headers}{CRLF}{content}")
        else:
            head.append(f"{content_headers}MIME-Version: 1.0{CRLF}{CRLF}{content}")
    else:
        # multipart/mixed: the text (or alternative) part first, then each attachment.
        first = f"{content_headers}{CRLF}{content}"
        outer = _boundary((first, *heads))
        head.append(f"MIME-Version: 1.0{CRLF}{_multipart_header('mixed', outer)}{CRLF}")
        head.append(f"--{outer}{CRLF}{first}")
        for part_head, attachment in zip(heads, attachments, strict=True):
            tail.append(f"{CRLF}--{outer}{CRLF}{part_head}".encode("ascii"))
            tail.append(_base64_lines(attachment.content))
        tail.append(f"{CRLF}--{outer}--{CRLF}".encode("ascii"))

    envelope = make_envelope(
        payload,
        sender,
        (*to, *cc, *bcc),
        message_id,
        envelope_sender=envelope_sender,
        drop=drop,
    )
    data = "".join(head).encode("ascii", "surrogateescape") + b"".join(tail)
    return data, envelope


# -- headers ------------------------------------------------------------------------------------


def _address_header(name: str, addresses: list[str]) -> str:
    value = ", ".join(addresses)
    if (
        len(name) + 2 + len(value) <= MAX_LINE
        and "=?" not in value  # an encoded word (``split_addresses`` encodes non-ASCII names)
        and all(_SIMPLE_ADDRESS.fullmatch(a) for a in addresses)
    ):
        return f"{name}: {value}{CRLF}"
    return _parsed_header(name, value)


def _text_header(name: str, value: str) -> str:
    if (name.lower() not in _STRUCTURED or name.lower() == "subject") and _simple_text(name, value):
        return f"{name}: {value}{CRLF}"
    return _parsed_header(name, value)


def _simple_text(name: str, value: str) -> bool:
    return (
        len(name) + 2 + len(value) <= MAX_LINE
        and "=?" not in value
        and _SIMPLE_TEXT.fullmatch(value) is not None
    )


def _parsed_header(name: str, value: str) -> str:
    """A header the ``email`` package parses and folds, as ``serialize`` would write it."""
    _name, parsed = POLICY.header_store_parse(name, value)
    return SMTP.fold_binary(name, parsed).decode("ascii", "surrogateescape")


# -- bodies -------------------------------------------------------------------------------------


def _content(payload: Mapping[str, Any], extra: Mapping[str, str]) -> tuple[str, str, bool]:
    """The content headers, the body and whether it is multipart, in the layout of
    ``compose._set_bodies``: one text part, or multipart/alternative plain + html."""
    body = str(payload.get("body") or "")
    html = payload.get("html")
    content_type = payload.get("content_type") or "plain"
    if not html:
        subtype = "html" if content_type == "html" else "plain"
        cte, data = _encode_text(body + extra.get(subtype, ""))
        headers = (
            f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}'
            f"Content-Transfer-Encoding: {cte}{CRLF}"
        )
        return headers, _wire_lines(data), False
    plain_cte, plain = _encode_text(body + extra.get("plain", ""))
    html_cte, html_data = _encode_text(str(html) + extra.get("html", ""))
    parts = (
        f'Content-Type: text/plain; charset="utf-8"{CRLF}'
        f"Content-Transfer-Encoding: {plain_cte}{CRLF}{CRLF}{_wire_lines(plain)}",
        f'Content-Type: text/html; charset="utf-8"{CRLF}'
        f"Content-Transfer-Encoding: {html_cte}{CRLF}"
        f"MIME-Version: 1.0{CRLF}{CRLF}{_wire_lines(html_data)}",
    )
    boundary = _boundary(parts)
    content = (
        f"--{boundary}{CRLF}{parts[0]}{CRLF}--{boundary}{CRLF}{parts[1]}{CRLF}--{boundary}--{CRLF}"
    )
    return _multipart_header("alternative", boundary), content, True


def _multipart_header(subtype: str, boundary: str) -> str:
    """The ``Content-Type`` of a multipart, folded before the boundary when too long."""
    line = f'Content-Type: multipart/{subtype}; boundary="{boundary}"'
    if len(line) <= MAX_LINE:
        return line + CRLF
    return f'Content-Type: multipart/{subtype};{CRLF} boundary="{boundary}"{CRLF}'


# -- attachments --------------------------------------------------------------------------------

_SIMPLE_FILENAME = re.compile(r"[A-Za-z0-9._()+,=@ -]+")
_TOKEN = r"[a-z0-9][a-z0-9!#$&^_.+-]*"
_SIMPLE_MIME_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}")
_BASE64_LINE = MAX_LINE // 4 * 4
"""76: characters per base64 line (57 bytes), as ``email`` writes them."""


def _attachment_head(attachment: Attachment) -> str | None:
    """The headers of an attachment part as ``EmailMessage.add_attachment`` writes them, or
    ``None`` when its file name or type needs the ``email`` package (quoting, RFC 2231, folding).
    """
    mime_type = attachment_mime_type(attachment)
    name = attachment.filename
    disposition = f'Content-Disposition: attachment; filename="{name}"'
    if (
        not _SIMPLE_MIME_TYPE.fullmatch(mime_type)
        or len(mime_type) > MAX_LINE - 14
        or not _SIMPLE_FILENAME.fullmatch(name)
        or name != name.strip()
        or "  " in name
        or len(disposition) > MAX_LINE
    ):
        return None
    return (
        f"Content-Type: {mime_type}{CRLF}"
        f"Content-Transfer-Encoding: base64{CRLF}"
        f"{disposition}{CRLF}"
        f"MIME-Version: 1.0{CRLF}{CRLF}"
    )


def _base64_lines(data: bytes) -> bytes:
    """``data`` in base64, 76 characters per CRLF-ended line."""
    encoded = binascii.b2a_base64(data, newline=False)
    return b"".join(
        encoded[i : i + _BASE64_LINE] + b"\r\n" for i in range(0, len(encoded), _BASE64_LINE)
    )


def _encode_text(text: str) -> tuple[str, str]:
    """The transfer encoding and encoded text ``EmailMessage.set_content`` chooses for a UTF-8
    text under ``email.policy.SMTP``: 7bit or 8bit when every line fits, else the shorter of
    quoted-printable and base64 on a sample of the first ten lines."""
    lines = text.encode("utf-8").splitlines()
    if max((len(line) for line in lines), default=0) <= MAX_LINE:
        joined = b"\n".join(lines) + b"\n"
        try:
            return "7bit", joined.decode("ascii")
        except UnicodeDecodeError:
            return "8bit", joined.decode("ascii", "surrogateescape")
    sniff = b"\r\n".join(lines[:10]) + b"\r\n"
    sniff_qp = quoprimime.body_encode(sniff.decode("latin-1"), MAX_LINE)
    if len(sniff_qp) <= len(binascii.b2a_base64(sniff)):
        if len(lines) <= 10:
            return "quoted-printable", sniff_qp
        normal = b"\n".join(lines) + b"\n"
        return "quoted-printable", quoprimime.body_encode(normal.decode("latin-1"), MAX_LINE)
    embedded = b"\r\n".join(lines) + b"\r\n"
    step = MAX_LINE // 4 * 3
    return "base64", "".join(
        binascii.b2a_base64(embedded[i : i + step]).decode("ascii")
        for i in range(0, len(embedded), step)
    )


def _wire_lines(data: str) -> str:
    """Line breaks as the generator writes them (CRLF)."""
    return _LINE_BREAKS.sub(CRLF, data)


def _boundary(parts: tuple[str, ...]) -> str:
    """A boundary as ``email.generator`` makes one, unique against the parts' lines (base64
    bodies are left out of the check: their alphabet has no ``-``)."""
    token = random.randrange(sys.maxsize)
    base = "=" * 15 + f"{token:0{_BOUNDARY_WIDTH}d}" + "=="
    boundary, counter = base, 0
    text = CRLF.join(parts)
    while re.search("^--" + re.escape(boundary) + "(--)?$", text, re.MULTILINE):
        boundary = f"{base}.{counter}"
        counter += 1
    return boundary
