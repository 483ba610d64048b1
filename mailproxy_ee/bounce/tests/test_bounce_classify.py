"""The classifier on every sample notice: the project's shared samples and notices of our own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailproxy_ee_bounce.classify import NoticeKind, classify

DATA = Path(__file__).parent / "data"
RCPT = "jane.doe@example.test"
RCPT2 = "sam.lee@example.test"
MESSAGE_ID = "<20251117.abc123@mp.acme-shop.example>"
MAIL_ID = "order-10482-shipped"
SHARED = json.loads((DATA / "expected.json").read_text())
OWN = json.loads((DATA / "own" / "expected.json").read_text())


def sample(path: Path) -> bytes:
    """A sample notice with its placeholders filled in."""
    return (
        path.read_bytes()
        .replace(b"{{RCPT}}", RCPT.encode())
        .replace(b"{{RCPT2}}", RCPT2.encode())
        .replace(b"{{MESSAGE_ID}}", MESSAGE_ID.encode())
        .replace(b"{{MAIL_ID}}", MAIL_ID.encode())
    )


def fill(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("{{RCPT}}", RCPT).replace("{{RCPT2}}", RCPT2)
    return value


@pytest.mark.parametrize("name", sorted(SHARED))
def test_shared_sample_gives_its_expected_parse(name: str) -> None:
    expected = SHARED[name]
    notice = classify(sample(DATA / name))
    if expected["kind"] == "not_bounce":
        assert notice.kind is NoticeKind.AUTO_REPLY
        assert notice.bounces == ()
        return
    [bounce] = notice.bounces
    assert bounce.bounce_type == expected["bounce_type"]
    assert bounce.recipient == fill(expected["recipient"])
    assert bounce.reason
    if expected["kind"] == "complaint":
        assert notice.kind is NoticeKind.COMPLAINT
        assert bounce.code is None
        assert bounce.feedback_type == expected["feedback_type"]
    else:
        assert notice.kind.value == expected["format"]
        assert bounce.code in expected["codes_accepted"]
        if expected["format"] == "dsn":
            assert bounce.code == expected["bounce_code"]  # the Status field, with its dots
    assert notice.original_message_id == MESSAGE_ID
    assert notice.original_mail_id == MAIL_ID
    assert notice.notice_message_id and notice.notice_message_id != MESSAGE_ID


def test_delayed_dsn_is_soft_and_keeps_its_action() -> None:
    [bounce] = classify(sample(DATA / "bounces/postfix_delayed_447.eml")).bounces
    assert (bounce.bounce_type, bounce.action) == ("soft", "delayed")


def test_failed_with_a_temporary_status_is_soft() -> None:
    [bounce] = classify(sample(DATA / "bounces/exim_452_422_mailbox_full.eml")).bounces
    assert (bounce.bounce_type, bounce.action, bounce.code) == ("soft", "failed", "4.2.2")


def test_multi_line_diagnostic_is_unfolded_into_one_readable_reason() -> None:
    [bounce] = classify(sample(DATA / "bounces/gmail_550_511_with_original.eml")).bounces
    assert bounce.reason.startswith("550 5.1.1 The account you tried to reach does not exist.")
    assert "550-5.1.1" not in bounce.reason
    assert "Please check the address" in bounce.reason


@pytest.mark.parametrize("name", sorted(OWN))
def test_own_notice_gives_its_expected_parse(name: str) -> None:
    expected = OWN[name]
    notice = classify(sample(DATA / "own" / name))
    assert notice.kind.value == expected["kind"]
    assert len(notice.bounces) == len(expected["bounces"])
    for bounce, want in zip(notice.bounces, expected["bounces"], strict=True):
        assert bounce.bounce_type == want["bounce_type"]
        assert bounce.code == want["code"]
        assert bounce.recipient == fill(want["recipient"])
        assert bounce.reason
        if "action" in want:
            assert bounce.action == want["action"]
        if "feedback_type" in want:
            assert bounce.feedback_type == want["feedback_type"]
        if "reason_contains" in want:
            assert want["reason_contains"] in bounce.reason
    assert (notice.original_message_id == MESSAGE_ID) is expected["original_message_id"]
    if "original_mail_id" in expected:
        assert (notice.original_mail_id == MAIL_ID) is expected["original_mail_id"]
    if expected.get("notice_message_id") is False:
        assert notice.notice_message_id is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"garbage without headers",
        b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\nno parts",
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=x\r\n\r\n--x\r\n",
        b"From: MAILER-DAEMON@x.example\r\nMessage-ID: <<<bad\r\n\r\n550 5.1.1 <>",
        b"Content-Type: text/plain; charset=no-such-charset\r\nReturn-Path: <>\r\n\r\n\xff\xfe",
    ],
)
def test_malformed_input_never_raises(raw: bytes) -> None:
    notice = classify(raw)
    assert isinstance(notice.kind, NoticeKind)
