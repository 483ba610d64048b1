"""Message validation without a database: addresses, priorities, deferred_ts, attachments."""

from __future__ import annotations

import random
from email.headerregistry import HeaderRegistry
from typing import Any

import pytest

from mailproxy_core.crypto import SecretBox, decode_key, generate_key
from mailproxy_core.entities import message_validation as mv
from mailproxy_core.entities.message_views import public_payload
from mailproxy_core.records.secrets import open_attachment_auth, seal_payload

VALID = [
    "alice@example.com",
    "Alice <alice@example.com>",
    "Alice Smith <alice.smith+tag@mail.example.co.uk>",
    '"Doe, Jane" <jane@example.org>',
    "=?utf-8?q?J=C3=B6rg?= <j@example.com>",
    "o'brien@example.ie",
    "x@[10.0.0.1]",
    "  padded@example.com  ",
]
INVALID = [
    "",
    "alice",
    "alice@localhost",
    "@example.com",
    "alice@",
    "a@@example.com",
    "a b@example.com",
    "a..b@example.com",
    "alice@example.com.",
    "Alice alice@example.com",
    "a@example.com, b@example.com",
    "a@example.com;b@example.com",
    "undisclosed-recipients:;",
    "Team: a@example.com;",
    "<>",
    "jörg@example.de",
    "a@example.com\r\nBcc: evil@example.com",
    "a@example.com\n",
]


def reference_verdict(text: str) -> bool:
    """API.md §4 spelled out with the standard library parser only."""
    if any(c in text for c in "\r\n\x00"):
        return False
    try:
        header = HeaderRegistry()("to", text.strip())
    except Exception:  # the parser raises on some malformed input
        return False
    if header.defects or len(header.addresses) != 1 or len(header.groups) != 1:
        return False
    if header.groups[0].display_name is not None:
        return False
    address = header.addresses[0]
    return bool(address.username) and "." in address.domain


@pytest.mark.parametrize("text", VALID)
def test_valid_addresses(text: str) -> None:
    assert mv.is_valid_address(text.strip())
    assert reference_verdict(text)


@pytest.mark.parametrize("text", INVALID)
def test_invalid_addresses(text: str) -> None:
    assert not mv.is_valid_address(text)


def test_the_fast_path_agrees_with_the_parser() -> None:
    samples = [
        *VALID,
        *INVALID,
        "a.b-c_d@x-y.example",
        "A1 B2 <a@b.cd>",
        "first.last@sub.domain.tld",
        "{weird}|chars~@example.com",
        "name <a@b.c>",
        "two  spaces <a@b.cd>",
        "Dotted J. Name <a@b.cd>",
    ]
    for text in samples:
        text = text.strip()
        assert mv.is_valid_address(text) == reference_verdict(text), text


def test_the_fast_path_agrees_with_the_parser_on_random_input() -> None:
    rng = random.Random(20240601)
    alphabet = "abcXY09.-_+'@<> \"(),:;[]=?"
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 16))).strip()
        assert mv.is_valid_address(text) == reference_verdict(text), text


def test_split_addresses() -> None:
    assert mv.split_addresses('"Doe, Jane" <j@x.org>, b@y.org') == [
        '"Doe, Jane" <j@x.org>',
        "b@y.org",
    ]
    assert mv.split_addresses("a@x.org, ") == ["a@x.org"]
    assert mv.split_addresses("a (c, d) <a@x.org>,b@y.org") == ["a (c, d) <a@x.org>", "b@y.org"]
    assert mv.split_addresses('"a \\" ,b" <a@x.org>') == ['"a \\" ,b" <a@x.org>']
    assert mv.split_addresses(" , ") == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (3, 3),
        ("immediate", 0),
        ("HIGH", 1),
        ("medium", 2),
        ("low", 3),
        ("2", 2),
        (4, None),
        (-1, None),
        (True, None),
        (1.0, None),
        ("urgent", None),
        (None, None),
    ],
)
def test_parse_priority(value: Any, expected: int | None) -> None:
    assert mv.parse_priority(value) == expected


def test_parse_deferred_ts() -> None:
    assert mv.parse_deferred_ts(10) == 10
    assert mv.parse_deferred_ts(10.9) == 10
    assert mv.parse_deferred_ts(" 42 ") == 42
    for bad in (-1, True, float("nan"), float("inf"), "soon", "1.5", [], {}):
        with pytest.raises(ValueError):
            mv.parse_deferred_ts(bad)


def test_address_verdicts_are_cached_per_checker(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = mv.is_valid_address

    def counting(text: str) -> bool:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(mv, "is_valid_address", counting)
    checker = mv.MessageChecker()
    message = {
        "from": "s@x.org",
        "to": ["a@x.org", "a@x.org"],
        "cc": "a@x.org",
        "subject": "",
        "body": "",
    }
    for _ in range(3):
        assert isinstance(checker.content(message), mv.CheckedMessage)
    assert sorted(calls) == ["a@x.org", "s@x.org"]


def test_registered_fetch_modes_are_accepted() -> None:
    spec = {"filename": "a", "storage_path": "bucket/key", "fetch_mode": "s3"}
    assert mv.check_attachments([spec], mv.BUILTIN_FETCH_MODES) is not None
    checker = mv.MessageChecker(fetch_modes=["s3"])
    message = {"from": "s@x.org", "to": "a@x.org", "subject": "", "body": "", "attachments": [spec]}
    assert isinstance(checker.content(message), mv.CheckedMessage)


def test_attachment_auth_sealing_round_trip() -> None:
    box = SecretBox(decode_key(generate_key()))
    payload = {
        "id": "m",
        "attachments": [
            {"filename": "a", "storage_path": "x"},
            {
                "filename": "b",
                "storage_path": "y",
                "auth": {"method": "basic", "user": "u", "password": "p"},
            },
        ],
    }
    plain = {"id": "n", "attachments": [{"filename": "a", "storage_path": "x"}]}
    assert seal_payload(box, plain) is plain
    sealed = seal_payload(box, payload)
    auth = sealed["attachments"][1]["auth"]
    assert auth["user"] == "u" and auth["password"].startswith("ENC:")
    assert payload["attachments"][1]["auth"]["password"] == "p"  # the input is not modified
    assert open_attachment_auth(box, auth) == {"method": "basic", "user": "u", "password": "p"}
    shown = public_payload(sealed)
    assert shown["attachments"][1] == {"filename": "b", "storage_path": "y", "has_auth": True}
    assert public_payload(plain) is plain
