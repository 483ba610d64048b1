"""VERP return paths: built per message, recognised where the report was delivered."""

from __future__ import annotations

from pathlib import Path

from mailproxy_ee_bounce.classify import classify
from mailproxy_ee_bounce.verp import verp_address, verp_message_pk

DATA = Path(__file__).parent / "data"


def test_verp_address_round_trip() -> None:
    address = verp_address("bounces@mail.example.com", 4711)
    assert address == "bounces+m4711@mail.example.com"
    assert verp_message_pk([address], "bounces@mail.example.com") == 4711
    assert verp_message_pk([f"<{address.upper()}>"], "Bounces@Mail.Example.com") == 4711


def test_other_addresses_are_not_verp() -> None:
    rp = "bounces@mail.example.com"
    for address in (
        "bounces@mail.example.com",
        "bounces+x12@mail.example.com",
        "bounces+m12@other.example.com",
        "other+m12@mail.example.com",
        "bounces+m12@mail.example.com.evil.example",
    ):
        assert verp_message_pk([address], rp) is None, address
    assert verp_message_pk(["bounces+m1@mail.example.com"], None) is None


def test_the_notice_tells_where_it_was_delivered() -> None:
    raw = (DATA / "bounces/postfix_550_511_user_unknown.eml").read_bytes()
    notice = classify(raw.replace(b"Delivered-To: bounces@", b"Delivered-To: bounces+m42@"))
    assert notice.delivered_to[0] == "bounces+m42@mail.acme-shop.example"
    assert verp_message_pk(notice.delivered_to, "bounces@mail.acme-shop.example") == 42
