"""``compose_wire`` writes exactly the bytes of ``serialize(compose(...))``.

The direct composer is only an optimisation: for every message it accepts, the bytes must be the
ones the ``email`` package produces. Compared here over hand-picked edge cases and a few thousand
generated payloads mixing simple and awkward headers and bodies (same random seed for the MIME
boundary on both sides; the Date header is compared apart, as the two calls may straddle a
second).
"""

from __future__ import annotations

import random
import re
from email import message_from_bytes
from email.policy import SMTP
from typing import Any

import pytest

from mailproxy_core.dispatch.compose import Attachment, compose, serialize
from mailproxy_core.dispatch.wire import compose_wire
from mailproxy_core.models import Message

DATE = re.compile(rb"^Date: ([^\r]*)\r\n", re.MULTILINE)

# fmt: off
EDGE_CASES: list[dict[str, Any]] = [
    {"from": "Shop <shop@acme.example>", "to": "bob@example.com", "subject": "Hi", "body": "x"},
    {"from": "a@b.example", "to": "c@d.example", "subject": "", "body": ""},
    {"from": "a@b.example", "to": "c@d.example", "subject": "long", "body": "z" * 2000},
    {"from": "a@b.example", "to": "c@d.example", "subject": "s", "body": "é" * 30},
    {"from": "a@b.example", "to": "c@d.example", "subject": "s", "body": "é" * 300},
    {"from": "a@b.example", "to": "c@d.example", "subject": "s", "body": "line\r\nother\rthird"},
    {"from": "a@b.example", "to": "c@d.example", "subject": "s", "body": "x" * 79 + "\n" * 12},
    {
        "from": "Négoce Café <cafe@acme.example>",
        "to": ["Zoë <zoe@example.com>", "al@example.com"],
        "cc": "Ünal <u@example.com>",
        "bcc": "hidden@example.com",
        "reply_to": "help@acme.example",
        "subject": "Votre commande — numéro 42 " * 4,
        "body": "Grazie mille è così\n" * 3,
        "html": "<p>Grazie</p>",
        "headers": {"X-Order": "42", "X-Long": "y" * 120, "Sender": "s@acme.example"},
    },
    {
        "from": "a@b.example",
        "to": [f"Customer {n} <customer{n}@mail.example.org>" for n in range(8)],
        "subject": "many recipients fold the To header",
        "body": "hello",
    },
    {
        "from": '"Doe, John" <john@x.example>',
        "to": "plain@x.example (comment)",
        "subject": "=?utf-8?q?encoded?=",
        "body": "b",
        "headers": {"X-Spaces": "two  spaces", "X-Trail": "trailing ", "Content-Disposition": "x"},
    },
    {
        "from": "a@b.example",
        "to": "c@d.example",
        "subject": "html",
        "body": "<b>x</b>",
        "content_type": "html",
    },
    {
        "from": "a@b.example",
        "to": "c@d.example",
        "subject": "alt",
        "body": "p" * 100,
        "html": "<p>" + "h" * 200 + "</p>",
        "message_id": "own-id@client.example",
    },
    {
        "from": "a@b.example",
        "to": "c@d.example",
        "subject": "s",
        "body": "x",
        "message_id": "<weird id with spaces@client.example>",
    },
]

WORDS = ["order", "Ünal", "café", "x" * 90, "a=?b", "(c)", "re:", "big deal", "", "Zoë", "ok!"]
NAMES = ["", "Ann", "Ann Lee", "Lee, Ann", "Zoë", "O'Hara", "A.B", "x" * 70]


def _address(rng: random.Random, n: int) -> str:
    name = rng.choice(NAMES)
    local = rng.choice(["bob", "a.b", "x+tag", "u_1", "first.last"])
    address = f"{local}{n}@{rng.choice(['example.com', 'mail.example.org', 'x.example'])}"
    return f"{name} <{address}>" if name else address


def _text(rng: random.Random, lines: int) -> str:
    out = []
    for _ in range(lines):
        out.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 14))))
    return rng.choice(["\n", "\r\n"]).join(out)


def _generated(count: int) -> list[dict[str, Any]]:
    rng = random.Random(20261124)
    payloads = []
    for n in range(count):
        payload: dict[str, Any] = {
            "from": _address(rng, n),
            "to": [_address(rng, n + i) for i in range(rng.randint(1, 4))],
            "subject": _text(rng, 1)[: rng.choice([10, 60, 200])],
            "body": _text(rng, rng.randint(0, 15)),
        }
        if rng.random() < 0.3:
            payload["cc"] = _address(rng, n + 7)
        if rng.random() < 0.2:
            payload["reply_to"] = _address(rng, n + 9)
        if rng.random() < 0.4:
            payload["html"] = "<p>" + _text(rng, rng.randint(1, 12)) + "</p>"
        elif rng.random() < 0.2:
            payload["content_type"] = "html"
        if rng.random() < 0.5:
            payload["headers"] = {"X-Order": str(n), "X-Note": _text(rng, 1)[:100]}
        payloads.append(payload)
    return payloads


def _message(n: int, payload: dict[str, Any]) -> Message:
    return Message(
        pk=n + 1, tenant_id="t", id=f"m-{n}", account_id="a", status="sending", priority=2,
        payload=payload,
    )  # fmt: skip


def _both(
    message: Message, extra: dict[str, str] | None = None, attachments: tuple[Attachment, ...] = ()
) -> tuple[bytes, bytes]:
    random.seed(message.pk)
    mime, slow_envelope = compose(message, attachments, extra_body=extra)
    slow = serialize(mime)
    random.seed(message.pk)
    wire = compose_wire(message, attachments, extra_body=extra)
    assert wire is not None
    fast, fast_envelope = wire
    assert fast_envelope == slow_envelope
    return slow, fast


ATTACHMENTS = [
    Attachment("invoice.pdf", b"%PDF-1.4 " + bytes(range(256)) * 40),
    Attachment("notes.txt", "héllo\nworld\n".encode()),
    Attachment("empty.bin", b""),
    Attachment("data", b"\x00" * 57, "application/octet-stream"),
    Attachment("report 2026 (final).csv", b"a,b\r\n1,2\r\n" * 100),
    Attachment("photo.JPG", bytes(range(256)) * 3),
    Attachment("typed.x", b"<x/>", "text"),
]


def _without_date(data: bytes) -> bytes:
    found = DATE.search(data)
    assert found is not None, data[:300]
    return DATE.sub(b"", data, count=1)


@pytest.mark.parametrize("n", range(len(EDGE_CASES)))
def test_edge_cases_compose_the_same_bytes(n: int) -> None:
    slow, fast = _both(_message(n, EDGE_CASES[n]))
    assert _without_date(fast) == _without_date(slow)


def test_download_link_text_is_appended_the_same_way() -> None:
    extra = {"plain": "\n\nDownload: https://x.example/d/abc", "html": "<p>link</p>"}
    for n, payload in enumerate(EDGE_CASES[:3]):
        slow, fast = _both(_message(n, {**payload, "html": "<p>h</p>"}), extra)
        assert _without_date(fast) == _without_date(slow)


def test_generated_messages_compose_the_same_bytes() -> None:
    mismatches = []
    rng = random.Random(7)
    for n, payload in enumerate(_generated(3000)):
        attachments = tuple(rng.sample(ATTACHMENTS, rng.randint(1, 3))) if n % 3 == 0 else ()
        slow, fast = _both(_message(n, payload), attachments=attachments)
        if _without_date(fast) != _without_date(slow):
            mismatches.append((payload, slow, fast))
    assert not mismatches, mismatches[0]


def test_the_date_header_is_the_same_value() -> None:
    slow, fast = _both(_message(1, EDGE_CASES[0]))
    slow_date = message_from_bytes(slow, policy=SMTP)["Date"].datetime
    fast_date = message_from_bytes(fast, policy=SMTP)["Date"].datetime
    assert abs((fast_date - slow_date).total_seconds()) <= 1
    assert DATE.search(fast).group(1).endswith(b" +0000")


@pytest.mark.parametrize("n", range(len(EDGE_CASES)))
def test_messages_with_attachments_compose_the_same_bytes(n: int) -> None:
    rng = random.Random(n)
    attachments = tuple(rng.sample(ATTACHMENTS, rng.randint(1, 4)))
    slow, fast = _both(_message(n, EDGE_CASES[n]), attachments=attachments)
    assert _without_date(fast) == _without_date(slow)


@pytest.mark.parametrize(
    "attachment",
    [
        Attachment("Rëport €.pdf", b"x"),  # RFC 2231 file name
        Attachment('say "hi".txt', b"x"),  # quoted
        Attachment("n" * 80 + ".pdf", b"x"),  # folded
        Attachment("a.bin", b"x", "Application/PDF"),  # not lower case
        Attachment(" padded.pdf", b"x"),
    ],
)
def test_attachments_the_wire_path_does_not_write_are_left_to_email(attachment) -> None:
    message = _message(1, EDGE_CASES[0])
    assert compose_wire(message, (ATTACHMENTS[0], attachment)) is None
