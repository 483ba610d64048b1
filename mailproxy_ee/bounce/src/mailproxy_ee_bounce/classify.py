"""Classify a message from the bounce mailbox: complaint, delivery failure, auto-reply or other.

Standard library ``email`` only. First match wins:

1. ``multipart/report; report-type=feedback-report`` (ARF, RFC 5965): a spam complaint.
2. ``multipart/report; report-type=delivery-status`` (RFC 3464): one bounce per recipient block
   whose ``Action`` is ``failed`` or ``delayed``.
3. An automatic reply (``Auto-Submitted: auto-replied``, ``X-Autoreply``, ``X-Autorespond``,
   ``Precedence: auto_reply``) not sent by MAILER-DAEMON or postmaster: not a bounce.
4. A plain-text failure notice from MAILER-DAEMON or postmaster, or with a null return path: one
   bounce per failed recipient it names with a 4xx/5xx reply.

Alongside, the correlation data: the original's Message-ID and ``X-Genro-Mail-ID`` (from the
attached ``message/rfc822`` or ``text/rfc822-headers`` part; otherwise ``In-Reply-To`` /
``References`` or a quoted ``Message-ID:`` line), and the notice's own Message-ID. Transfer
encodings, charsets and RFC 2047 words are decoded first. Nothing here raises on malformed
input: what cannot be read is treated as absent.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from enum import StrEnum
from typing import Any

HARD = "hard"
SOFT = "soft"
COMPLAINT = "complaint"


class NoticeKind(StrEnum):
    """What a mailbox message turned out to be."""

    COMPLAINT = "complaint"
    DSN = "dsn"
    HEURISTIC = "heuristic"
    AUTO_REPLY = "auto_reply"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Bounce:
    """One failed (or delayed) recipient, or one complaint.

    ``code`` is the enhanced status with its dots (``5.1.1``), else the 3-digit SMTP reply,
    ``None`` for a complaint. ``reason`` is never empty.
    """

    bounce_type: str
    code: str | None
    recipient: str | None
    reason: str
    action: str | None = None
    feedback_type: str | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """The classification of one message and its correlation data."""

    kind: NoticeKind
    bounces: tuple[Bounce, ...]
    notice_message_id: str | None
    original_message_id: str | None
    original_mail_id: str | None
    original_return_path: str | None = None
    date_ts: int | None = None
    """The notice's ``Date`` as unix seconds, when it has a readable one."""
    delivered_to: tuple[str, ...] = ()
    """Where the notice was delivered (``Delivered-To``, ``X-Original-To``, ``Envelope-To``,
    ``To``): a VERP return path shows here."""

    @property
    def is_bounce(self) -> bool:
        """The message yields at least one bounce or complaint."""
        return bool(self.bounces)


# compat32: the modern policy re-parses a header on every access (Content-Type several times per
# part), which made classification ten times slower; headers are decoded here where read.
_POLICY = email.policy.compat32
_HEADER_PARSER = HeaderParser(policy=_POLICY)

_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_REPLY = re.compile(r"(?<![\w.:/+-])([245]\d\d)(?=[ :-]|$)", re.MULTILINE)
_MSGID = re.compile(r"<[^<>\s@]+@[^<>\s]+>")
_QUOTED_MSGID = re.compile(r"^[ >\t]*Message-ID:\s*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
_QUOTED_MAIL_ID = re.compile(r"^[ >\t]*X-Genro-Mail-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_CONTINUATION = re.compile(r"\s[245]\d\d[- ](?:[245]\.\d{1,3}\.\d{1,3}\s+)?")
_TAGS = re.compile(r"<[^>]*>")
_DAEMONS = ("mailer-daemon", "postmaster")
# Where plain-text notices start quoting the returned message (Exim, Postfix, qmail, Sendmail,
# Exchange, Domino, ...): the failure text is what comes before.
_QUOTE_MARKERS = re.compile(
    r"^\s*(?:-{2,}\s*)?(?:"
    r"a copy of the (?:original )?message follows"
    r"|this is a copy of the message"
    r"|below this line is a copy of the message"
    r"|original message follows"
    r"|the original message was received"
    r"|returned message follows"
    r"|undelivered message follows"
    r"|-+ ?original message ?-+"
    r"|original message headers"
    r")",
    re.IGNORECASE | re.MULTILINE,
)
_HEADER_BLOCK_START = re.compile(r"^(?:Return-path|Received|From|Message-ID):", re.I | re.M)
_MAX_REASON = 500


def parse_message(raw: bytes) -> Message:
    """The message as the ``email`` package reads it (defects tolerated)."""
    return email.message_from_bytes(raw, policy=_POLICY)


def classify(raw: bytes | Message) -> Notice:
    """Classify a raw message from the bounce mailbox (see the module docstring)."""
    msg = parse_message(raw) if isinstance(raw, bytes) else raw
    original = _original_part(msg)
    notice_id = _first_msgid(_header(msg, "Message-ID"))
    original_id, mail_id, original_rp = _correlation(msg, original)
    report_type = ""
    if msg.get_content_type() == "multipart/report":
        report_type = _param(msg, "report-type").lower()
    date_ts = _date_ts(msg)
    delivered = tuple(
        dict.fromkeys(
            address
            for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To")
            for address in _addresses(_header(msg, name))
        )
    )

    def notice(kind: NoticeKind, bounces: list[Bounce], original: str | None = None) -> Notice:
        return Notice(
            kind,
            tuple(bounces),
            notice_id,
            original_id or original,
            mail_id,
            original_rp,
            date_ts,
            delivered,
        )

    if report_type == "feedback-report":
        return notice(NoticeKind.COMPLAINT, _complaint(msg, original))
    if report_type == "delivery-status":
        status = _find_part(msg, ("message/delivery-status", "message/global-delivery-status"))
        if status is not None:
            bounces = _dsn_bounces(msg, status)
            extra_id = next(
                (
                    found
                    for block in _field_blocks(status)
                    if (found := _first_msgid(block.get("x-original-message-id", "")))
                ),
                None,
            )
            return notice(NoticeKind.DSN, bounces, extra_id)
    daemon = _from_daemon(msg)
    if not daemon and _is_auto_reply(msg):
        return notice(NoticeKind.AUTO_REPLY, [])
    if daemon or _null_return_path(msg):
        bounces = _heuristic_bounces(msg)
        if bounces:
            return notice(NoticeKind.HEURISTIC, bounces)
    return notice(NoticeKind.OTHER, [])


# -- kinds --------------------------------------------------------------------------------


def _complaint(msg: Message, original: Message | None) -> list[Bounce]:
    report = _find_part(msg, ("message/feedback-report",))
    fields = _field_blocks(report)[0] if report is not None and _field_blocks(report) else {}
    feedback_type = (fields.get("feedback-type") or "abuse").strip().lower() or "abuse"
    recipients = _addresses(fields.get("original-rcpt-to", ""))
    if not recipients and original is not None:
        recipients = _addresses(_header(original, "To"))
    if not recipients:
        recipients = [None]  # type: ignore[list-item]
    agent = fields.get("user-agent", "").strip()
    reason = f"spam complaint (feedback type {feedback_type})"
    if agent:
        reason += f" reported by {agent}"
    return [
        Bounce(COMPLAINT, None, rcpt, reason, feedback_type=feedback_type) for rcpt in recipients
    ]


def _dsn_bounces(msg: Message, status: Message) -> list[Bounce]:
    blocks = _field_blocks(status)
    human = _human_text(msg)
    bounces: list[Bounce] = []
    for block in blocks:
        action = block.get("action", "").strip().lower().split(" ")[0]
        if action not in ("failed", "delayed"):
            continue
        recipient = _typed_address(block.get("original-recipient", "")) or _typed_address(
            block.get("final-recipient", "")
        )
        diagnostic = _strip_type(block.get("diagnostic-code", ""))
        code = _enhanced(block.get("status", "")) or _enhanced(diagnostic) or _reply(diagnostic)
        if action == "delayed":
            bounce_type = SOFT
        elif code is not None and code[0] in "45":
            bounce_type = HARD if code[0] == "5" else SOFT
        else:
            bounce_type = HARD
        reason = (
            _clean_diagnostic(diagnostic)
            or _first_lines(human)
            or (f"{action} {code or ''}".strip())
        )
        bounces.append(Bounce(bounce_type, code, recipient, _clip(reason), action=action))
    return bounces


def _heuristic_bounces(msg: Message) -> list[Bounce]:
    text = _failure_text(msg)
    if not text:
        return []
    own = {a for a in _addresses(_header(msg, "From")) + _addresses(_header(msg, "To")) if a}
    named = [a for a in _addresses(_header(msg, "X-Failed-Recipients")) if a]
    for match in _ADDRESS.finditer(text):
        address = match.group(0).lower().rstrip(".")
        if address not in own and address not in named and not _is_daemon(address):
            named.append(address)
    if not named:
        return []
    positions = []
    for address in named:
        found = text.lower().find(address)
        positions.append(found if found >= 0 else len(text))
    order = sorted(positions)
    bounces: list[Bounce] = []
    for address, start in zip(named, positions, strict=True):
        later = [p for p in order if p > start]
        window = text[start : later[0]] if later else text[start:]
        code, reason = _code_in(window)
        if code is None and len(named) == 1:
            code, reason = _code_in(text)
        if code is None:
            continue
        bounce_type = HARD if code[0] == "5" else SOFT
        bounces.append(Bounce(bounce_type, code, address, _clip(reason or code)))
    return bounces


def _code_in(text: str) -> tuple[str | None, str | None]:
    """The first 4xx/5xx reply in ``text`` (its enhanced code when present) and its line."""
    reply = _REPLY.search(text)
    enhanced = _ENHANCED.search(text)
    enhanced = enhanced if enhanced and enhanced.group(1) in "45" else None
    if reply is None and enhanced is None:
        return None, None
    anchor = reply.start() if reply is not None else enhanced.start()  # type: ignore[union-attr]
    if enhanced is not None and (reply is None or abs(enhanced.start() - reply.start()) < 40):
        code = enhanced.group(0)
    elif reply is not None:
        code = reply.group(1)
    else:  # pragma: no cover - one of them matched
        return None, None
    line_start = text.rfind("\n", 0, anchor) + 1
    line_end = text.find("\n", anchor)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    return code, " ".join(line.split())


# -- correlation --------------------------------------------------------------------------


def _original_part(msg: Message) -> Message | None:
    """The returned original: an attached message/rfc822 or text/rfc822-headers part."""
    for part in _walk(msg):
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if ctype in ("text/rfc822-headers", "message/global-headers"):
            text = _body_text(part)
            if text:
                return _HEADER_PARSER.parsestr(text.lstrip("\r\n"))
    return None


def _correlation(
    msg: Message, original: Message | None
) -> tuple[str | None, str | None, str | None]:
    message_id = mail_id = return_path = None
    if original is not None:
        message_id = _first_msgid(_header(original, "Message-ID"))
        mail_id = _header(original, "X-Genro-Mail-ID").strip() or None
        return_path = _addresses(_header(original, "Return-Path"))[:1]
    if message_id is None:
        message_id = _first_msgid(_header(msg, "In-Reply-To"))
    if message_id is None:
        references = _MSGID.findall(_header(msg, "References"))
        message_id = references[-1] if references else None
    if message_id is None or mail_id is None:
        text = _all_text(msg)
        if message_id is None:
            quoted = [m for m in _QUOTED_MSGID.findall(text)]
            notice_id = _first_msgid(_header(msg, "Message-ID"))
            quoted = [q for q in quoted if q != notice_id]
            message_id = quoted[0] if quoted else None
        if mail_id is None:
            found = _QUOTED_MAIL_ID.search(text)
            mail_id = found.group(1) if found else None
    return message_id, mail_id, (return_path[0] if return_path else None)


# -- parts and fields ---------------------------------------------------------------------


def _walk(msg: Message) -> Iterator[Message]:
    """Every part of the notice, not descending into attached messages."""
    yield msg
    if msg.get_content_maintype() == "multipart":
        payload = msg.get_payload()
        if isinstance(payload, list):
            for part in payload:
                if isinstance(part, Message):
                    yield from _walk(part)


def _find_part(msg: Message, types: tuple[str, ...]) -> Message | None:
    for part in _walk(msg):
        if part.get_content_type() in types:
            return part
    return None


def _field_blocks(part: Message) -> list[dict[str, str]]:
    """The header-like field blocks of a delivery-status or feedback-report part, with
    lower-case names and unfolded values (decoded first when the part is base64/QP)."""
    payload = part.get_payload()
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if isinstance(payload, list) and encoding not in ("base64", "quoted-printable"):
        blocks = []
        for block in payload:
            if isinstance(block, Message):
                blocks.append({k.lower(): _unfold(_safe_str(v)) for k, v in block.items()})
        return [b for b in blocks if b]
    text = _body_text(part)
    blocks = []
    for chunk in re.split(r"\r?\n[ \t]*\r?\n", text):
        if chunk.strip():
            parsed = _HEADER_PARSER.parsestr(chunk.strip("\r\n") + "\n")
            fields = {k.lower(): _unfold(_safe_str(v)) for k, v in parsed.items()}
            if fields:
                blocks.append(fields)
    return blocks


def _body_text(part: Message) -> str:
    """The decoded text of a leaf part (transfer encoding and charset undone)."""
    payload = part.get_payload()
    if isinstance(payload, list):  # message/* parsed into sub-messages: take the raw body back
        raw = part.as_bytes(policy=email.policy.compat32)
        head_end = re.search(rb"\r?\n\r?\n", raw)
        body = raw[head_end.end() :] if head_end else b""
        encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        if encoding == "base64":
            try:
                body = base64.b64decode(body, validate=False)
            except (binascii.Error, ValueError):
                return ""
        elif encoding == "quoted-printable":
            body = quopri.decodestring(body)
        return _decode(body, "utf-8")
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return _decode(data, part.get_content_charset())
    return payload if isinstance(payload, str) else ""


def _decode(data: bytes, charset: str | None) -> str:
    """Bytes in their declared charset; undeclared or wrong (8-bit in "us-ascii" is common):
    UTF-8, else Latin-1, which never fails."""
    for candidate in (charset, "utf-8"):
        if candidate:
            try:
                return data.decode(candidate)
            except (LookupError, UnicodeDecodeError):
                continue
    return data.decode("latin-1")


def _human_text(msg: Message) -> str:
    """The first human-readable part: text/plain, else text/html without tags."""
    html = None
    for part in _walk(msg):
        if part is msg and msg.get_content_maintype() == "multipart":
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain" and not _is_attachment(part):
            return _body_text(part)
        if ctype == "text/html" and html is None and not _is_attachment(part):
            html = _TAGS.sub(" ", _body_text(part))
    return html or ""


def _failure_text(msg: Message) -> str:
    """The notice's own text, up to where it starts quoting the returned message."""
    text = _human_text(msg)
    marker = _QUOTE_MARKERS.search(text)
    if marker:
        return text[: marker.start()]
    block = _HEADER_BLOCK_START.search(text)
    if block and block.start() > 0:
        return text[: block.start()]
    return text


def _all_text(msg: Message) -> str:
    texts = []
    for part in _walk(msg):
        if part.get_content_maintype() == "text":
            texts.append(_body_text(part))
    return "\n".join(texts)


def _is_attachment(part: Message) -> bool:
    return str(part.get("Content-Disposition", "")).strip().lower().startswith("attachment")


# -- headers ------------------------------------------------------------------------------


def _safe_str(value: Any) -> str:
    """A header value as text, RFC 2047 words decoded; "" when it cannot be read."""
    try:
        text = str(value)
    except (ValueError, TypeError, LookupError, IndexError):  # malformed header
        return ""
    if "=?" in text:
        try:
            return str(make_header(decode_header(text)))
        except (ValueError, TypeError, LookupError, IndexError, UnicodeError):
            return text
    return text


def _header(msg: Message, name: str) -> str:
    try:
        values = msg.get_all(name) or []
    except (ValueError, TypeError, LookupError, IndexError):
        return ""
    return " ".join(_safe_str(v) for v in values).strip()


def _param(msg: Message, name: str) -> str:
    value = msg.get_param(name)
    if isinstance(value, tuple):
        value = value[2]
    return str(value or "")


def _unfold(value: str) -> str:
    return " ".join(value.split())


def _first_msgid(value: str) -> str | None:
    found = _MSGID.search(value or "")
    return found.group(0) if found else None


def _addresses(value: str) -> list[str]:
    out = []
    for _, address in getaddresses([value]):
        address = address.strip().strip("<>").lower()
        if "@" in address:
            out.append(address)
    return out


def _typed_address(value: str) -> str | None:
    """``rfc822; User@Example.test`` → ``user@example.test``."""
    address = _strip_type(value).strip().strip("<>").strip()
    return address.lower() if "@" in address else None


def _strip_type(value: str) -> str:
    kind, sep, rest = value.partition(";")
    if sep and re.fullmatch(r"\s*[A-Za-z0-9-]+\s*", kind):
        return rest.strip()
    return value.strip()


def _enhanced(text: str) -> str | None:
    found = _ENHANCED.search(text or "")
    return found.group(0) if found else None


def _reply(text: str) -> str | None:
    found = _REPLY.search(text or "")
    return found.group(1) if found else None


def _clean_diagnostic(text: str) -> str:
    """Unfold a multi-line SMTP reply: drop the repeated ``550-5.1.1`` prefixes."""
    text = _unfold(text)
    if not text:
        return ""
    head = re.match(r"[245]\d\d[- ](?:[245]\.\d{1,3}\.\d{1,3}\s+)?", text)
    prefix = head.group(0).replace("-", " ") if head else ""
    rest = text[head.end() :] if head else text
    rest = _CONTINUATION.sub(" ", " " + rest).strip()
    return _unfold(prefix + rest)


def _first_lines(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[:6])


def _clip(text: str) -> str:
    text = _unfold(text)
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _is_daemon(address: str) -> bool:
    return address.split("@", 1)[0].lower() in _DAEMONS


def _from_daemon(msg: Message) -> bool:
    _, address = parseaddr(_header(msg, "From"))
    return bool(address) and _is_daemon(address)


def _null_return_path(msg: Message) -> bool:
    values = msg.get_all("Return-Path") or []
    return any(_safe_str(v).strip() in ("<>", "") for v in values) if values else False


def _date_ts(msg: Message) -> int | None:
    value = _header(msg, "Date")
    if not value:
        return None
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _is_auto_reply(msg: Message) -> bool:
    submitted = _header(msg, "Auto-Submitted").lower()
    submitted = re.sub(r"\([^)]*\)", "", submitted).split(";")[0].strip()
    if submitted == "auto-replied":
        return True
    if msg.get("X-Autoreply") is not None or msg.get("X-Autorespond") is not None:
        return True
    return _header(msg, "Precedence").strip().lower() == "auto_reply"


__all__ = ["COMPLAINT", "HARD", "SOFT", "Bounce", "Notice", "NoticeKind", "classify"]
