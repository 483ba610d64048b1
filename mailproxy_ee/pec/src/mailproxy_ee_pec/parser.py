"""Recognise PEC receipts (Italian certified mail) in raw RFC 5322 messages.

A PEC provider answers every certified message with receipts delivered into the sender's
mailbox. The technical rules of DPR 68/2005 (DM 2 November 2005, summarised by RFC 6109) give
each one three marks, tried here in this order:

1. the ``X-Ricevuta`` header (``accettazione``, ``non-accettazione``, ``presa-in-carico``,
   ``avvenuta-consegna``, ``errore-consegna``, ``preavviso-errore-consegna``,
   ``rilevazione-virus``; ``mancata-consegna`` is a non-standard alias some gateways use);
2. the official prefix of the decoded ``Subject`` (``ACCETTAZIONE:``, ``CONSEGNA:``, ``AVVISO DI
   MANCATA CONSEGNA PER VIRUS:`` ...), case-insensitive, qualifiers before the colon allowed;
3. the ``tipo`` attribute of the ``postacert`` root of the attached ``daticert.xml``.

Transport envelopes (``X-Trasporto`` without ``X-Ricevuta``: ``POSTA CERTIFICATA:`` and
``ANOMALIA MESSAGGIO:``) carry *incoming* certified mail, not receipts, and give no event.

``daticert.xml`` comes from whoever can put a message into the mailbox, so it is untrusted input:
it is parsed with ``defusedxml`` (the standard library's parser with entity declarations and
external references refused), and only up to ``MAX_DATICERT_BYTES``.

The parser is pure: bytes in, a ``ParsedPecMail`` out, no I/O. Event types and metadata keys
are the kernel's constants (``EventType``, ``MetaKey``).
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from enum import StrEnum
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from mailproxy_core import EventType, MetaKey

__all__ = [
    "EVENT_BY_RECEIPT",
    "MAX_DATICERT_BYTES",
    "PEC_ACCEPTANCE",
    "PEC_DELIVERY",
    "PEC_ERROR",
    "PEC_TIMEOUT",
    "ParsedPecMail",
    "PecKind",
    "parse_pec_mail",
]

PEC_ACCEPTANCE = EventType.PEC_ACCEPTANCE.value
PEC_DELIVERY = EventType.PEC_DELIVERY.value
PEC_ERROR = EventType.PEC_ERROR.value
PEC_TIMEOUT = EventType.PEC_TIMEOUT.value

EVENT_BY_RECEIPT: dict[str, str | None] = {
    "accettazione": PEC_ACCEPTANCE,
    "presa-in-carico": PEC_ACCEPTANCE,
    "avvenuta-consegna": PEC_DELIVERY,
    "non-accettazione": PEC_ERROR,
    "errore-consegna": PEC_ERROR,
    "mancata-consegna": PEC_ERROR,
    "rilevazione-virus": PEC_ERROR,
    # The 12-hour warning: the final receipt (delivery or error) follows within 24 hours.
    "preavviso-errore-consegna": None,
}
"""Receipt type (the ``X-Ricevuta`` value) → event type; ``None`` = no event."""

ENVELOPE_TYPES = frozenset({"posta-certificata", "errore"})
"""``X-Trasporto`` values and ``daticert.xml`` ``tipo`` of transport envelopes."""

MAX_DATICERT_BYTES = 1 << 20
"""A ``daticert.xml`` larger than this is not parsed (real ones are about 1 KiB)."""

# Official subject prefixes, longest alternatives first so that "AVVISO DI NON ACCETTAZIONE"
# is not read as "ACCETTAZIONE". A qualifier ("PER VIRUS", "PER SUP. TEMPO MASSIMO") may stand
# before the colon.
_SUBJECT_PREFIXES: tuple[tuple[str, str], ...] = (
    ("AVVISO DI NON ACCETTAZIONE", "non-accettazione"),
    ("AVVISO DI MANCATA CONSEGNA", "errore-consegna"),
    ("AVVENUTA CONSEGNA", "avvenuta-consegna"),
    ("MANCATA CONSEGNA", "errore-consegna"),
    ("ERRORE CONSEGNA", "errore-consegna"),
    ("PRESA IN CARICO", "presa-in-carico"),
    ("PROBLEMA DI SICUREZZA", "rilevazione-virus"),
    ("ACCETTAZIONE", "accettazione"),
    ("CONSEGNA", "avvenuta-consegna"),
)
_ENVELOPE_PREFIXES = ("POSTA CERTIFICATA", "ANOMALIA MESSAGGIO")
_SUBJECT_RE = re.compile(
    r"^\s*(?P<prefix>"
    + "|".join(re.escape(p) for p, _ in _SUBJECT_PREFIXES)
    + "|"
    + "|".join(re.escape(p) for p in _ENVELOPE_PREFIXES)
    + r")(?P<qualifier>\s+PER\s+[^:]{1,60})?\s*:",
    re.IGNORECASE,
)
_REASON_LINE_RE = re.compile(r"^\s*(?:errore|motivo)\s*:\s*(?P<reason>\S.*?)\s*$", re.I | re.M)
_PEC_ID_LINE_RE = re.compile(r"^\s*identificativo messaggio\s*:\s*(?P<id>\S+)\s*$", re.I | re.M)
_ZONE_RE = re.compile(r"^(?P<sign>[+-])(?P<hh>\d{2}):?(?P<mm>\d{2})$")


class PecKind(StrEnum):
    """What a mailbox message is, for the receipt handler."""

    RECEIPT = "receipt"
    """A PEC receipt of a known type (its ``event`` may still be ``None``)."""
    ENVELOPE = "envelope"
    """A transport envelope: incoming certified mail, never an event."""
    NOT_PEC = "not_pec"
    """No PEC mark at all, or an unknown receipt type."""


@dataclass(frozen=True, slots=True)
class ParsedPecMail:
    """The facts of one mailbox message that the receipt handler needs.

    ``reference_message_id`` is the Message-ID of the message the receipt concerns (the
    ``X-Riferimento-Message-ID`` header, else ``daticert.xml`` ``dati/msgid``), always in angle
    brackets. ``message_id`` is the receipt's own Message-ID (used to de-duplicate).
    ``receipt_ts`` is when the provider issued it (``daticert.xml`` date, else ``Date``).
    """

    kind: PecKind
    receipt: str | None = None
    event: str | None = None
    source: str | None = None
    reference_message_id: str | None = None
    message_id: str | None = None
    recipient: str | None = None
    provider: str | None = None
    pec_id: str | None = None
    receipt_ts: int | None = None
    reason: str | None = None
    subject: str = ""

    @property
    def description(self) -> str:
        """The event's ``description`` (the report's ``pec_details``).

        For an error the provider's reason; otherwise the receipt type, plus the recipient for
        a delivery (``avvenuta-consegna: rossi@pec.example``).
        """
        receipt = self.receipt or ""
        if self.event == PEC_ERROR:
            return self.reason or receipt
        if self.event == PEC_DELIVERY and self.recipient:
            return f"{receipt}: {self.recipient}"
        return receipt

    @property
    def metadata(self) -> dict[str, Any]:
        """The event's ``metadata``: receipt, recipient, provider, pec_id, receipt_ts?, reason?."""
        meta: dict[str, Any] = {
            MetaKey.RECEIPT.value: self.receipt,
            MetaKey.RECIPIENT.value: self.recipient,
            MetaKey.PROVIDER.value: self.provider,
            MetaKey.PEC_ID.value: self.pec_id,
        }
        if self.receipt_ts is not None:
            meta[MetaKey.RECEIPT_TS.value] = self.receipt_ts
        if self.reason:
            meta[MetaKey.REASON.value] = self.reason
        return meta


@dataclass(frozen=True, slots=True)
class _Daticert:
    tipo: str | None = None
    errore: str | None = None
    errore_esteso: str | None = None
    msgid: str | None = None
    identificativo: str | None = None
    provider: str | None = None
    consegna: tuple[str, ...] = ()
    ricezione: tuple[str, ...] = ()
    destinatari: tuple[str, ...] = ()
    ts: int | None = None


def parse_pec_mail(raw: bytes) -> ParsedPecMail:
    """Classify one raw message and extract what a PEC receipt says.

    Never raises on malformed input: what cannot be read is left ``None``; a message with no
    recognisable PEC mark is ``PecKind.NOT_PEC``.
    """
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    subject = _header(msg, "Subject") or ""
    x_ricevuta = (_header(msg, "X-Ricevuta") or "").strip().lower()
    x_trasporto = (_header(msg, "X-Trasporto") or "").strip().lower()
    message_id = _angle(_header(msg, "Message-ID"))
    daticert = _daticert(msg)

    receipt: str | None = None
    source: str | None = None
    if x_ricevuta in EVENT_BY_RECEIPT:
        receipt, source = x_ricevuta, "x-ricevuta"
    elif not x_ricevuta and x_trasporto:
        return ParsedPecMail(kind=PecKind.ENVELOPE, subject=subject, message_id=message_id)
    else:
        by_subject = _receipt_from_subject(subject)
        if by_subject == "envelope":
            return ParsedPecMail(kind=PecKind.ENVELOPE, subject=subject, message_id=message_id)
        if by_subject is not None:
            receipt, source = by_subject, "subject"
            # "PER SUP. TEMPO MASSIMO" is both the 12-hour warning and the final 24-hour error;
            # only daticert.xml tells them apart.
            if daticert.tipo == "preavviso-errore-consegna" and receipt == "errore-consegna":
                receipt = daticert.tipo
        elif daticert.tipo in EVENT_BY_RECEIPT:
            receipt, source = daticert.tipo, "daticert"
        elif daticert.tipo in ENVELOPE_TYPES:
            return ParsedPecMail(kind=PecKind.ENVELOPE, subject=subject, message_id=message_id)
    if receipt is None:
        return ParsedPecMail(kind=PecKind.NOT_PEC, subject=subject, message_id=message_id)

    event = EVENT_BY_RECEIPT[receipt]
    body = _first_text(msg)
    reference = _angle(_header(msg, "X-Riferimento-Message-ID")) or _angle(daticert.msgid)
    return ParsedPecMail(
        kind=PecKind.RECEIPT,
        receipt=receipt,
        event=event,
        source=source,
        reference_message_id=reference,
        message_id=message_id,
        recipient=_recipient(receipt, daticert, body),
        provider=daticert.provider or _sender_domain(msg),
        pec_id=daticert.identificativo or _body_pec_id(body),
        receipt_ts=daticert.ts if daticert.ts is not None else _date_ts(msg),
        reason=_reason(msg, daticert, body) if event == PEC_ERROR else None,
        subject=subject,
    )


# ----------------------------------------------------------------------------- headers


def _header(msg: Message, name: str) -> str | None:
    """A header's decoded (RFC 2047) value, unfolded; ``None`` when absent."""
    try:
        value = msg.get(name)
    except (ValueError, IndexError, TypeError, AttributeError):
        # A header the policy cannot model: fall back to its raw text.
        wanted = name.lower()
        value = next((v for k, v in msg.raw_items() if k.lower() == wanted), None)
    if value is None:
        return None
    return " ".join(str(value).split())


def _angle(value: str | None) -> str | None:
    """A Message-ID in angle brackets, or ``None`` when empty."""
    if not value:
        return None
    value = value.strip().strip("<>").strip()
    return f"<{value}>" if value else None


def _receipt_from_subject(subject: str) -> str | None:
    """The receipt type an official subject prefix names, ``"envelope"``, or ``None``."""
    match = _SUBJECT_RE.match(subject)
    if not match:
        return None
    prefix = " ".join(match["prefix"].upper().split())
    if prefix in _ENVELOPE_PREFIXES:
        return "envelope"
    qualifier = (match["qualifier"] or "").upper()
    for official, receipt in _SUBJECT_PREFIXES:
        if prefix == official:
            if receipt == "non-accettazione" or "VIRUS" not in qualifier:
                return receipt
            return "errore-consegna"  # "AVVISO DI MANCATA CONSEGNA PER VIRUS"
    return None


def _sender_domain(msg: Message) -> str | None:
    addresses = getaddresses([_header(msg, "From") or ""])
    for _, address in addresses:
        if "@" in address:
            return address.rsplit("@", 1)[1].lower()
    return None


def _date_ts(msg: Message) -> int | None:
    value = _header(msg, "Date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


# ----------------------------------------------------------------------------- parts


def _parts(msg: Message) -> Iterator[Message]:
    """Every leaf part of the receipt itself, never descending into attached messages.

    ``postacert.eml`` (the original, attached to complete delivery receipts and envelopes) may
    itself contain a ``daticert.xml`` or receipt text that must not be mistaken for this one's.
    """
    if msg.get_content_maintype() == "multipart" and msg.is_multipart():
        payload = msg.get_payload()
        if isinstance(payload, list):
            for part in payload:
                if isinstance(part, Message):
                    yield from _parts(part)
        return
    yield msg


def _payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except (ValueError, TypeError):
        return b""
    return data if isinstance(data, bytes) else b""


def _text(part: Message) -> str:
    data = _payload_bytes(part)
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return data.decode("latin-1")


def _first_text(msg: Message) -> str:
    for part in _parts(msg):
        if part.get_content_type() == "text/plain" and not _is_attachment_named(part):
            return _text(part)
    return ""


def _is_attachment_named(part: Message) -> bool:
    return part.get_content_disposition() == "attachment" and bool(part.get_filename())


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or part.get_param("name") or ""
    except (ValueError, TypeError):
        return ""
    return str(name).strip().lower()


# ----------------------------------------------------------------------------- daticert.xml


def _daticert(msg: Message) -> _Daticert:
    for part in _parts(msg):
        if _filename(part) == "daticert.xml":
            data = _payload_bytes(part)
            if 0 < len(data) <= MAX_DATICERT_BYTES:
                return _parse_daticert(data)
            return _Daticert()
    return _Daticert()


def _parse_daticert(data: bytes) -> _Daticert:
    """The fields of a ``daticert.xml``; empty when it is not well-formed or is hostile."""
    try:
        root = SafeET.fromstring(data)
    except (SafeET.ParseError, DefusedXmlException, ValueError):
        return _Daticert()
    if _local(root.tag) != "postacert":
        return _Daticert()
    header = _child(root, "intestazione")
    dati = _child(root, "dati")
    errore = (root.get("errore") or "").strip().lower() or None
    return _Daticert(
        tipo=(root.get("tipo") or "").strip().lower() or None,
        errore=errore,
        errore_esteso=_child_text(dati, "errore-esteso"),
        msgid=_child_text(dati, "msgid"),
        identificativo=_child_text(dati, "identificativo"),
        provider=_child_text(dati, "gestore-emittente"),
        consegna=_children_text(dati, "consegna"),
        ricezione=_children_text(dati, "ricezione"),
        destinatari=_children_text(header, "destinatari"),
        ts=_daticert_ts(_child(dati, "data")),
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(parent: Element | None, name: str) -> Element | None:
    if parent is None:
        return None
    for child in parent:
        if _local(child.tag) == name:
            return child
    return None


def _child_text(parent: Element | None, name: str) -> str | None:
    child = _child(parent, name)
    if child is None:
        return None
    text = " ".join("".join(child.itertext()).split())
    return text or None


def _children_text(parent: Element | None, name: str) -> tuple[str, ...]:
    if parent is None:
        return ()
    values = (" ".join("".join(c.itertext()).split()) for c in parent if _local(c.tag) == name)
    return tuple(v for v in values if v)


def _daticert_ts(data: Element | None) -> int | None:
    """``<data zona="+0100"><giorno>24/11/2025</giorno><ora>10:15:42</ora></data>`` → unix."""
    day = _child_text(data, "giorno")
    hour = _child_text(data, "ora")
    if data is None or not day or not hour:
        return None
    try:
        local = datetime.strptime(f"{day} {hour}", "%d/%m/%Y %H:%M:%S")
    except ValueError:
        return None
    zone = _ZONE_RE.match((data.get("zona") or "+0000").strip())
    offset = timedelta()
    if zone:
        offset = timedelta(hours=int(zone["hh"]), minutes=int(zone["mm"]))
        if zone["sign"] == "-":
            offset = -offset
    return int(local.replace(tzinfo=timezone(offset)).timestamp())


# ----------------------------------------------------------------------------- facts


def _recipient(receipt: str, daticert: _Daticert, body: str) -> str | None:
    """The recipient a receipt concerns.

    A delivery or delivery error names exactly one (``consegna``); a presa in carico names
    those its provider received (``ricezione``); an acceptance concerns every recipient.
    """
    if daticert.consegna:
        return ", ".join(daticert.consegna)
    if receipt == "presa-in-carico" and daticert.ricezione:
        return ", ".join(daticert.ricezione)
    if daticert.destinatari:
        return ", ".join(daticert.destinatari)
    quoted = re.search(
        r"(?:indirizzato a|destinato all'utente)\s*:?\s*\"?([^\s\"(]+@[^\s\"()]+)", body, re.I
    )
    return quoted[1] if quoted else None


def _reason(msg: Message, daticert: _Daticert, body: str) -> str | None:
    """The provider's failure reason: X-Errore, errore-esteso, errore, else a body line."""
    header = _header(msg, "X-Errore")
    if header:
        return header
    if daticert.errore_esteso:
        return daticert.errore_esteso
    if daticert.errore and daticert.errore != "nessuno":
        return daticert.errore
    line = _REASON_LINE_RE.search(body)
    return line["reason"] if line else None


def _body_pec_id(body: str) -> str | None:
    match = _PEC_ID_LINE_RE.search(body)
    return match["id"] if match else None
