"""The PEC receipt parser: the shared samples, and receipts written from the published rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailproxy_core import EventType
from mailproxy_ee_pec.parser import (
    EVENT_BY_RECEIPT,
    PEC_ACCEPTANCE,
    PEC_DELIVERY,
    PEC_ERROR,
    PecKind,
    parse_pec_mail,
)
from mailproxy_ee_pec.testing import pec_receipt

DATA = Path(__file__).parent / "data"
EXPECTED: dict[str, dict[str, Any]] = json.loads((DATA / "expected.json").read_text())
MSGID = "<20251124.abc123@dispatch.acme-shop.example>"
RCPT = "mario.rossi@pec.cliente-rossi.example"


def sample(name: str, *, msgid: str = MSGID, rcpt: str = RCPT) -> bytes:
    raw = (DATA / name).read_bytes()
    return (
        raw.replace(b"{{MESSAGE_ID}}", msgid.encode())
        .replace(b"{{RCPT}}", rcpt.encode())
        .replace(b"{{MAIL_ID}}", b"invoice-147")
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_shared_sample_gives_its_expected_parse(name: str) -> None:
    expected = EXPECTED[name]
    parsed = parse_pec_mail(sample(name))
    if expected["kind"] == "pec_envelope":
        assert parsed.kind is PecKind.ENVELOPE
        assert parsed.event is None and parsed.receipt is None
        return
    assert parsed.kind is PecKind.RECEIPT
    assert parsed.receipt == expected["receipt"]
    assert parsed.event == expected["event"]
    assert parsed.source == "x-ricevuta"
    assert parsed.reference_message_id == MSGID
    assert parsed.recipient == expected["recipient"].replace("{{RCPT}}", RCPT)
    assert parsed.metadata["recipient"] == RCPT
    assert parsed.metadata["receipt"] == expected["receipt"]
    assert parsed.provider and parsed.provider.startswith("GESTORE")
    assert parsed.pec_id == "opec21120.20251124101542.04711.823.1.55@pec.gestorealfa.example"
    assert parsed.receipt_ts is not None
    if "details_contain_any" in expected:
        assert any(w.lower() in parsed.description.lower() for w in expected["details_contain_any"])
        assert parsed.metadata["reason"] == parsed.description


def test_shared_samples_details_and_times() -> None:
    acc = parse_pec_mail(sample("accettazione.eml"))
    assert acc.description == "accettazione"
    assert acc.receipt_ts == int(datetime(2025, 11, 24, 9, 15, 42, tzinfo=UTC).timestamp())
    assert "reason" not in acc.metadata
    delivery = parse_pec_mail(sample("avvenuta_consegna.eml"))
    assert delivery.description == f"avvenuta-consegna: {RCPT}"
    assert delivery.message_id == "<consegna.20251124101547.30518.1.9@pec.gestorebeta.example>"
    error = parse_pec_mail(sample("mancata_consegna.eml"))
    assert error.description == "5.1.1 casella di posta inesistente"  # X-Errore wins
    refused = parse_pec_mail(sample("non_accettazione.eml"))
    assert refused.description == "Mittente non corrispondente all'utente autenticato"
    relay = parse_pec_mail(sample("presa_in_carico.eml"))
    assert relay.event == PEC_ACCEPTANCE and relay.description == "presa-in-carico"


# ------------------------------------------------------------------ receipts from the rules

ALL_RECEIPTS = sorted(EVENT_BY_RECEIPT)


@pytest.mark.parametrize("receipt", ALL_RECEIPTS)
@pytest.mark.parametrize("mark", ["x-ricevuta", "subject", "daticert"])
def test_each_receipt_type_is_recognised_by_each_mark(receipt: str, mark: str) -> None:
    if receipt == "mancata-consegna" and mark != "x-ricevuta":
        pytest.skip("a non-standard X-Ricevuta alias: it has no subject or daticert form")
    raw = pec_receipt(
        receipt=receipt,
        msgid=MSGID,
        recipient=RCPT,
        x_ricevuta="" if mark == "x-ricevuta" else None,
        subject=None if mark != "daticert" else "Re: something else",
        tipo="" if mark == "daticert" or receipt != "mancata-consegna" else None,
        errore="no-dest" if EVENT_BY_RECEIPT[receipt] == PEC_ERROR else "nessuno",
    )
    parsed = parse_pec_mail(raw)
    assert parsed.kind is PecKind.RECEIPT
    assert parsed.source == mark
    assert parsed.receipt == receipt  # the ambiguous time-limit subject: daticert.xml decides
    assert parsed.event == EVENT_BY_RECEIPT[receipt]
    assert parsed.reference_message_id == MSGID
    assert parsed.recipient == RCPT


@pytest.mark.parametrize(
    ("subject", "receipt"),
    [
        ("ACCETTAZIONE: Fattura", "accettazione"),
        ("accettazione: Fattura", "accettazione"),
        ("AVVISO DI NON ACCETTAZIONE: Fattura", "non-accettazione"),
        ("AVVISO DI NON ACCETTAZIONE PER VIRUS: Fattura", "non-accettazione"),
        ("PRESA IN CARICO: Fattura", "presa-in-carico"),
        ("CONSEGNA: Fattura", "avvenuta-consegna"),
        ("AVVENUTA CONSEGNA: Fattura", "avvenuta-consegna"),
        ("AVVISO DI MANCATA CONSEGNA: Fattura", "errore-consegna"),
        ("AVVISO DI MANCATA CONSEGNA PER VIRUS: Fattura", "errore-consegna"),
        ("AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO: Fattura", "errore-consegna"),
        ("Avviso di mancata consegna per sup. tempo massimo : Fattura", "errore-consegna"),
        ("MANCATA CONSEGNA: Fattura", "errore-consegna"),
        ("ERRORE CONSEGNA: Fattura", "errore-consegna"),
        ("PROBLEMA DI SICUREZZA: Fattura", "rilevazione-virus"),
    ],
)
def test_official_subject_prefixes_and_their_qualifiers(subject: str, receipt: str) -> None:
    raw = pec_receipt(
        receipt=receipt, msgid=MSGID, recipient=RCPT, x_ricevuta=None, subject=subject, tipo=None
    )
    parsed = parse_pec_mail(raw)
    assert (parsed.kind, parsed.receipt, parsed.source) == (PecKind.RECEIPT, receipt, "subject")


def test_the_time_limit_warning_is_told_apart_by_daticert() -> None:
    subject = "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO: Fattura"
    warning = pec_receipt(
        receipt="preavviso-errore-consegna",
        msgid=MSGID,
        recipient=RCPT,
        x_ricevuta=None,
        subject=subject,
    )
    final = pec_receipt(
        receipt="errore-consegna", msgid=MSGID, recipient=RCPT, x_ricevuta=None, subject=subject
    )
    assert parse_pec_mail(warning).event is None
    assert parse_pec_mail(final).event == PEC_ERROR


@pytest.mark.parametrize("subject", ["CONSEGNA MERCI: ordine 12", "Re: ACCETTAZIONE: x", "Fattura"])
def test_ordinary_subjects_are_not_receipts(subject: str) -> None:
    raw = pec_receipt(
        receipt="accettazione",
        msgid=MSGID,
        recipient=RCPT,
        x_ricevuta=None,
        subject=subject,
        tipo=None,
    )
    assert parse_pec_mail(raw).kind is PecKind.NOT_PEC


@pytest.mark.parametrize(
    ("kind", "trasporto"), [("posta-certificata", "posta-certificata"), ("errore", "errore")]
)
@pytest.mark.parametrize("with_header", [True, False])
def test_transport_envelopes_are_incoming_mail_not_receipts(
    kind: str, trasporto: str, with_header: bool
) -> None:
    raw = pec_receipt(
        receipt=kind,
        msgid=MSGID,
        recipient=RCPT,
        x_ricevuta=None,
        x_trasporto=trasporto if with_header else None,
        postacert=b"From: a@b.example\r\nSubject: hi\r\n\r\nbody\r\n",
    )
    parsed = parse_pec_mail(raw)
    assert parsed.kind is PecKind.ENVELOPE and parsed.event is None


def test_an_envelope_whose_subject_looks_like_a_receipt_is_still_an_envelope() -> None:
    raw = pec_receipt(
        receipt="posta-certificata",
        msgid=MSGID,
        recipient=RCPT,
        x_ricevuta=None,
        x_trasporto="posta-certificata",
        subject="ACCETTAZIONE: forged",
        tipo="accettazione",
    )
    assert parse_pec_mail(raw).kind is PecKind.ENVELOPE


def test_the_original_inside_a_delivery_receipt_is_never_read_as_the_receipt() -> None:
    inner = pec_receipt(
        receipt="non-accettazione", msgid="<other@x.example>", recipient="x@y.example"
    )
    raw = pec_receipt(
        receipt="avvenuta-consegna",
        msgid=MSGID,
        recipient=RCPT,
        x_ricevuta=None,
        subject="x",
        postacert=inner,
        tipo=None,
    )
    assert parse_pec_mail(raw).kind is PecKind.NOT_PEC
    raw = pec_receipt(receipt="avvenuta-consegna", msgid=MSGID, recipient=RCPT, postacert=inner)
    parsed = parse_pec_mail(raw)
    assert (parsed.receipt, parsed.reference_message_id, parsed.recipient) == (
        "avvenuta-consegna",
        MSGID,
        RCPT,
    )


# ------------------------------------------------------------------ reasons


def test_error_reason_order_x_errore_then_errore_esteso_then_errore_then_body() -> None:
    def reason(**kw: Any) -> str:
        raw = pec_receipt(receipt="errore-consegna", msgid=MSGID, recipient=RCPT, **kw)
        parsed = parse_pec_mail(raw)
        assert parsed.event == PEC_ERROR
        return parsed.description

    assert reason(x_errore="5.1.1 utente sconosciuto", errore_esteso="e", errore="no-dest") == (
        "5.1.1 utente sconosciuto"
    )
    assert reason(errore_esteso="5.4.1 dominio inesistente", errore="no-dominio") == (
        "5.4.1 dominio inesistente"
    )
    assert reason(errore="no-dominio") == "no-dominio"
    assert reason(errore="nessuno", body_error_line="Errore: 5.2.2 casella piena") == (
        "5.2.2 casella piena"
    )
    assert reason(tipo=None, body_error_line="Motivo: casella disattivata") == "casella disattivata"
    assert reason(tipo=None) == "errore-consegna"  # nothing said: the receipt type


def test_a_virus_detection_is_an_error_with_the_virus_reason() -> None:
    raw = pec_receipt(
        receipt="errore-consegna",
        msgid=MSGID,
        recipient=RCPT,
        subject="AVVISO DI MANCATA CONSEGNA PER VIRUS: Fattura",
        errore="virus",
        errore_esteso="virus informatico rilevato: EICAR-Test-File",
    )
    parsed = parse_pec_mail(raw)
    assert parsed.event == PEC_ERROR
    assert parsed.reason == "virus informatico rilevato: EICAR-Test-File"


# ------------------------------------------------------------------ encodings


@pytest.mark.parametrize("daticert_encoding", ["8bit", "base64", "quoted-printable"])
@pytest.mark.parametrize("body_encoding", ["8bit", "base64", "quoted-printable"])
@pytest.mark.parametrize("charset", ["utf-8", "iso-8859-1"])
def test_transfer_encodings_and_charsets(
    daticert_encoding: str, body_encoding: str, charset: str
) -> None:
    raw = pec_receipt(
        receipt="errore-consegna",
        msgid=MSGID,
        recipient=RCPT,
        x_ricevuta=None,
        subject="Avviso di mancata consegna: Perché",
        subject_encoding="Q" if charset == "iso-8859-1" else "B",
        charset=charset,
        reference_header=False,  # only daticert.xml names the message
        errore="no-dest",
        errore_esteso="5.1.1 - casella di posta inesistente (è così)",
        daticert_encoding=daticert_encoding,
        body_encoding=body_encoding,
        html=True,
    )
    parsed = parse_pec_mail(raw)
    assert parsed.subject == "Avviso di mancata consegna: Perché"
    assert (parsed.receipt, parsed.source) == ("errore-consegna", "subject")
    assert parsed.reference_message_id == MSGID
    assert parsed.reason == "5.1.1 - casella di posta inesistente (è così)"
    assert parsed.provider == "GESTORE ALFA S.p.A."


def test_the_body_error_line_is_decoded_from_its_charset() -> None:
    raw = pec_receipt(
        receipt="errore-consegna",
        msgid=MSGID,
        recipient=RCPT,
        tipo=None,
        charset="iso-8859-1",
        body_encoding="quoted-printable",
        body_error_line="Errore: casella non più attiva",
    )
    assert parse_pec_mail(raw).reason == "casella non più attiva"


def test_the_receipt_time_falls_back_to_the_date_header() -> None:
    raw = pec_receipt(receipt="accettazione", msgid=MSGID, recipient=RCPT, tipo=None)
    expected = int(datetime(2025, 11, 24, 9, 15, 42, tzinfo=UTC).timestamp())
    assert parse_pec_mail(raw).receipt_ts == expected


def test_message_ids_are_normalised_to_angle_brackets() -> None:
    raw = pec_receipt(receipt="accettazione", msgid="abc@x.example", recipient=RCPT)
    assert parse_pec_mail(raw).reference_message_id == "<abc@x.example>"


# ------------------------------------------------------------------ hostile input

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE postacert [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<postacert tipo="accettazione" errore="nessuno"><dati><msgid>&lol3;</msgid></dati></postacert>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE postacert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<postacert tipo="accettazione" errore="nessuno"><dati><msgid>&xxe;</msgid></dati></postacert>
"""


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, EXTERNAL_ENTITY, "<postacert", "not xml at all"])
def test_hostile_or_broken_daticert_is_ignored(xml: str) -> None:
    raw = pec_receipt(
        receipt="accettazione",
        msgid=MSGID,
        recipient=RCPT,
        x_ricevuta=None,
        subject="x",
        daticert=xml,
    )
    parsed = parse_pec_mail(raw)
    assert parsed.kind is PecKind.NOT_PEC  # nothing of the hostile XML was used
    raw = pec_receipt(receipt="accettazione", msgid=MSGID, recipient=RCPT, daticert=xml)
    parsed = parse_pec_mail(raw)
    assert parsed.receipt == "accettazione" and parsed.reference_message_id == MSGID
    assert parsed.pec_id == "opec2112.20251124101542.4711.1.55@pec.gestorealfa.example"  # body


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"garbage without headers",
        b"Subject: hello\r\n\r\nplain mail\r\n",
        b"X-Ricevuta: unknown-type\r\nSubject: x\r\n\r\n",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nbroken",
    ],
)
def test_non_pec_mail_is_not_pec(raw: bytes) -> None:
    assert parse_pec_mail(raw).kind is PecKind.NOT_PEC


def test_event_values_are_the_kernel_wire_names() -> None:
    assert {e for e in EVENT_BY_RECEIPT.values() if e is not None} == {
        EventType.PEC_ACCEPTANCE,
        EventType.PEC_DELIVERY,
        EventType.PEC_ERROR,
    }
    assert (PEC_ACCEPTANCE, PEC_DELIVERY) == ("pec_acceptance", "pec_delivery")


@pytest.mark.parametrize("variant", ["completa", "breve", "sintetica"])
def test_every_delivery_receipt_variant_is_a_delivery(variant: str) -> None:
    # completa: the original attached as postacert.eml; breve: the original with its
    # attachments replaced by their hashes; sintetica: daticert.xml only.
    original = (
        f"From: a@pec.acme.example\r\nTo: {RCPT}\r\nMessage-ID: {MSGID}\r\nSubject: Fattura\r\n"
        "\r\nbody\r\n"
    ).encode()
    raw = pec_receipt(
        receipt="avvenuta-consegna",
        msgid=MSGID,
        recipient=RCPT,
        x_tipo_ricevuta=variant,
        postacert=None if variant == "sintetica" else original,
    )
    parsed = parse_pec_mail(raw)
    assert (parsed.event, parsed.recipient, parsed.reference_message_id) == (
        PEC_DELIVERY,
        RCPT,
        MSGID,
    )
