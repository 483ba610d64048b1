"""Folder names and UID sets as they go on the wire."""

from __future__ import annotations

import pytest

from mailproxy_ee_imap import encode_mailbox_name, uid_set


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("INBOX", "INBOX"),
        ("Bounces", "Bounces"),
        ("Bounces 2024", '"Bounces 2024"'),
        ("Rückläufer", "R&APw-ckl&AOQ-ufer"),
        ("A&B", "A&-B"),
        ('say "hi"', '"say \\"hi\\""'),
        ("日本語", "&ZeVnLIqe-"),
    ],
)
def test_mailbox_names_are_modified_utf7_and_quoted_when_needed(name: str, wire: str) -> None:
    assert encode_mailbox_name(name) == wire


@pytest.mark.parametrize("bad", ["", "a\r\nb", "x\x00"])
def test_empty_or_control_character_folder_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        encode_mailbox_name(bad)


def test_uid_sets_are_compact_ranges() -> None:
    assert uid_set([3, 1, 2, 7, 9, 10, 10]) == "1:3,7,9:10"
    assert uid_set([42]) == "42"
    with pytest.raises(ValueError):
        uid_set([])
    with pytest.raises(ValueError):
        uid_set([0, 1])
