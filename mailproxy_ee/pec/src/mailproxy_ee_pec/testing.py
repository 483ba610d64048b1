"""Build PEC receipts the way providers write them, for tests of this plugin and of clients.

``pec_receipt(...)`` returns the raw bytes (CRLF) of a receipt laid out as the technical rules of
DPR 68/2005 describe: a ``multipart/signed`` S/MIME wrapper around a ``multipart/mixed`` holding
the human-readable text (optionally also HTML), the optional original ``postacert.eml`` and the
``daticert.xml`` certification data, with the ``X-Ricevuta`` / ``X-Trasporto`` /
``X-Riferimento-Message-ID`` headers. Every mark can be left out or changed, and the parts can
use the transfer encodings and charsets real providers use, so a test can check each way a
receipt is recognised. The signature is dummy bytes (nothing here verifies signatures).
"""

from __future__ import annotations

import base64
import quopri
import uuid
from datetime import datetime, timedelta, timezone
from xml.sax.saxutils import escape

__all__ = ["SUBJECT_PREFIX", "daticert_xml", "pec_receipt"]

SUBJECT_PREFIX: dict[str, str] = {
    "accettazione": "ACCETTAZIONE",
    "non-accettazione": "AVVISO DI NON ACCETTAZIONE",
    "presa-in-carico": "PRESA IN CARICO",
    "avvenuta-consegna": "CONSEGNA",
    "errore-consegna": "AVVISO DI MANCATA CONSEGNA",
    "preavviso-errore-consegna": "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO",
    "rilevazione-virus": "PROBLEMA DI SICUREZZA",
    "posta-certificata": "POSTA CERTIFICATA",
    "errore": "ANOMALIA MESSAGGIO",
}
"""The official subject prefix of each receipt type (``X-Ricevuta`` / ``X-Trasporto`` value)."""

_TITLE = {
    "accettazione": "Ricevuta di accettazione",
    "non-accettazione": "Avviso di non accettazione",
    "presa-in-carico": "Ricevuta di presa in carico",
    "avvenuta-consegna": "Ricevuta di avvenuta consegna",
    "errore-consegna": "Avviso di mancata consegna",
    "preavviso-errore-consegna": "Avviso di mancata consegna per superamento tempo massimo",
    "rilevazione-virus": "Avviso di rilevazione virus informatici",
    "posta-certificata": "Messaggio di posta certificata",
    "errore": "Anomalia nel messaggio",
}


def daticert_xml(
    *,
    tipo: str,
    msgid: str,
    recipient: str,
    sender: str = "amministrazione@pec.acme-shop.example",
    errore: str = "nessuno",
    errore_esteso: str | None = None,
    provider: str = "GESTORE ALFA S.p.A.",
    identificativo: str = "opec2112.20251124101542.4711.1.55@pec.gestorealfa.example",
    when: datetime | None = None,
    zone: str = "+0100",
    consegna: bool = False,
    ricezione: bool = False,
    cdata_msgid: bool = True,
    doctype: bool = True,
) -> str:
    """A ``daticert.xml`` document (text) with the given facts."""
    when = when or datetime(2025, 11, 24, 10, 15, 42)
    msgid_xml = f"<![CDATA[{msgid}]]>" if cdata_msgid else escape(msgid)
    extra = ""
    if ricezione:
        extra += f"    <ricezione>{escape(recipient)}</ricezione>\n"
    if consegna:
        extra += f"    <consegna>{escape(recipient)}</consegna>\n"
    if errore_esteso is not None:
        extra += f"    <errore-esteso>{escape(errore_esteso)}</errore-esteso>\n"
    dtd = '<!DOCTYPE postacert SYSTEM "postacert.dtd">\n' if doctype else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"{dtd}"
        f'<postacert tipo="{escape(tipo)}" errore="{escape(errore)}">\n'
        "  <intestazione>\n"
        f"    <mittente>{escape(sender)}</mittente>\n"
        f'    <destinatari tipo="certificato">{escape(recipient)}</destinatari>\n'
        f"    <risposte>{escape(sender)}</risposte>\n"
        "    <oggetto>Fattura n. 2025/0147</oggetto>\n"
        "  </intestazione>\n"
        "  <dati>\n"
        f"    <gestore-emittente>{escape(provider)}</gestore-emittente>\n"
        f'    <data zona="{zone}">\n'
        f"      <giorno>{when:%d/%m/%Y}</giorno>\n"
        f"      <ora>{when:%H:%M:%S}</ora>\n"
        "    </data>\n"
        f"    <identificativo>{escape(identificativo)}</identificativo>\n"
        f"    <msgid>{msgid_xml}</msgid>\n"
        f"{extra}"
        "  </dati>\n"
        "</postacert>\n"
    )


def pec_receipt(
    *,
    receipt: str,
    msgid: str,
    recipient: str,
    x_ricevuta: str | None = "",
    x_trasporto: str | None = None,
    subject: str | None = None,
    subject_encoding: str | None = None,
    reference_header: bool = True,
    x_errore: str | None = None,
    errore: str = "nessuno",
    errore_esteso: str | None = None,
    body_error_line: str | None = None,
    tipo: str | None = "",
    daticert: str | None = None,
    daticert_encoding: str = "8bit",
    body_encoding: str = "8bit",
    charset: str = "utf-8",
    html: bool = False,
    postacert: bytes | None = None,
    message_id: str | None = None,
    provider: str = "GESTORE ALFA S.p.A.",
    from_address: str = "posta-certificata@pec.gestorealfa.example",
    to_address: str = "amministrazione@pec.acme-shop.example",
    date: datetime | None = None,
    x_tipo_ricevuta: str | None = None,
) -> bytes:
    """Raw bytes (CRLF) of one PEC receipt or transport envelope.

    ``receipt`` is the receipt type the message is; by default every mark says so:
    ``x_ricevuta=""`` means "the same as ``receipt``" (``None`` leaves the header out), as does
    ``tipo=""`` for ``daticert.xml`` (``None`` leaves the attachment out) and ``subject=None``
    (the official prefix + ``Fattura n. 2025/0147``). For an envelope pass
    ``receipt="posta-certificata"`` or ``"errore"``, ``x_ricevuta=None`` and ``x_trasporto``.
    ``daticert`` replaces the generated XML text. ``body_encoding`` / ``daticert_encoding`` are
    ``8bit``, ``base64`` or ``quoted-printable``; ``charset`` is the text's charset;
    ``subject_encoding`` (``"B"`` or ``"Q"``) writes the subject as an RFC 2047 encoded word.
    """
    date = date or datetime(2025, 11, 24, 10, 15, 42, tzinfo=timezone(timedelta(hours=1)))
    tag = uuid.uuid4().hex[:12]  # boundaries unique per message: a postacert.eml nests one
    message_id = message_id or f"<{receipt}.{tag}@pec.example>"
    if subject is None:
        subject = f"{SUBJECT_PREFIX.get(receipt, receipt.upper())}: Fattura n. 2025/0147"
    headers: list[tuple[str, str]] = [
        ("Return-Path", f"<{from_address}>"),
        ("Received", "from smtps.pec.gestorealfa.example by mbox07.pec.gestorealfa.example"),
    ]
    if x_ricevuta is not None:
        headers.append(("X-Ricevuta", x_ricevuta or receipt))
    if x_trasporto is not None:
        headers.append(("X-Trasporto", x_trasporto))
    if x_tipo_ricevuta is not None:
        headers.append(("X-TipoRicevuta", x_tipo_ricevuta))
    if x_errore is not None:
        headers.append(("X-Errore", x_errore))
    if reference_header:
        headers.append(("X-Riferimento-Message-ID", msgid))
    if subject_encoding and subject_encoding.upper() == "B":
        encoded = base64.b64encode(subject.encode(charset)).decode("ascii")
        subject_value = f"=?{charset}?B?{encoded}?="
    elif subject_encoding:
        subject_value = _q_word(subject, charset)
    else:
        subject_value = subject
    headers += [
        ("Date", date.strftime("%a, %d %b %Y %H:%M:%S %z")),
        ("Subject", subject_value),
        ("From", from_address),
        ("To", to_address),
        ("Message-ID", message_id),
        ("MIME-Version", "1.0"),
        (
            "Content-Type",
            'multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; '
            f'boundary="sig-{tag}"',
        ),
    ]
    text = (
        f"{_TITLE.get(receipt, receipt)}\n\n"
        f"Il giorno {date:%d/%m/%Y} alle ore {date:%H:%M:%S} ({date:%z}) il messaggio\n"
        '"Fattura n. 2025/0147" proveniente da "amministrazione@pec.acme-shop.example"\n'
        f'ed indirizzato a "{recipient}"\n'
        "è stato elaborato dal sistema. Perché è così.\n"
    )
    if body_error_line:
        text += f"{body_error_line}\n"
    text += "Identificativo messaggio: opec2112.20251124101542.4711.1.55@pec.gestorealfa.example\n"

    mixed: list[bytes] = []
    if html:
        html_text = "<html><body><p>" + escape(text).replace("\n", "<br/>") + "</p></body></html>"
        mixed.append(
            _multipart(
                "multipart/alternative",
                f"alt-{tag}",
                [
                    _part(f'text/plain; charset="{charset}"', text, body_encoding, charset),
                    _part(f'text/html; charset="{charset}"', html_text, body_encoding, charset),
                ],
            )
        )
    else:
        mixed.append(_part(f'text/plain; charset="{charset}"', text, body_encoding, charset))
    if postacert is not None:
        mixed.append(
            b'Content-Type: message/rfc822; name="postacert.eml"\r\n'
            b'Content-Disposition: inline; filename="postacert.eml"\r\n\r\n' + _crlf(postacert)
        )
    if tipo is not None:
        xml = daticert
        if xml is None:
            xml = daticert_xml(
                tipo=tipo or receipt,
                msgid=msgid,
                recipient=recipient,
                errore=errore,
                errore_esteso=errore_esteso,
                provider=provider,
                consegna=receipt in {"avvenuta-consegna", "errore-consegna"},
                ricezione=receipt == "presa-in-carico",
            )
        mixed.append(
            _part(
                'application/xml; name="daticert.xml"',
                xml,
                daticert_encoding,
                "utf-8",
                disposition='inline; filename="daticert.xml"',
            )
        )
    signed = [
        _multipart("multipart/mixed", f"mix-{tag}", mixed),
        (
            b'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
            b"Content-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\n'
            + base64.encodebytes(b"\x30\x82\x04\xac dummy signature" * 8).replace(b"\n", b"\r\n")
        ),
    ]
    head = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers)
    body = b"This is an S/MIME signed message\r\n\r\n" + _boundaries(f"sig-{tag}", signed)
    return head + b"\r\n" + body


def _q_word(text: str, charset: str) -> str:
    data = text.encode(charset)
    encoded = quopri.encodestring(data, header=True).decode("ascii").replace("\n", "")
    return f"=?{charset}?Q?{encoded.replace('?', '=3F')}?="


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _part(
    content_type: str, text: str, encoding: str, charset: str, *, disposition: str | None = None
) -> bytes:
    data = text.encode(charset)
    if encoding == "base64":
        payload = base64.encodebytes(data)
    elif encoding == "quoted-printable":
        payload = quopri.encodestring(data)
    else:
        payload = data
    head = f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: {encoding}\r\n"
    if disposition:
        head += f"Content-Disposition: {disposition}\r\n"
    return head.encode() + b"\r\n" + _crlf(payload)


def _multipart(content_type: str, boundary: str, parts: list[bytes]) -> bytes:
    head = f'Content-Type: {content_type}; boundary="{boundary}"\r\n\r\n'.encode()
    return head + _boundaries(boundary, parts)


def _boundaries(boundary: str, parts: list[bytes]) -> bytes:
    marker = f"--{boundary}".encode()
    out = b""
    for part in parts:
        out += marker + b"\r\n" + part.rstrip(b"\r\n") + b"\r\n"
    return out + marker + b"--\r\n"
