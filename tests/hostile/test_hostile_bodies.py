"""Hostile request bodies against a running mail-proxy over loopback HTTP (issue 16, 1-3, 8).

Each test sends what a careless or malicious client could send and checks the contract: a client
error with ``{detail, code}`` naming the problem (never a 500, never an unhandled-error log), and
for what is accepted, nothing illegal on the SMTP wire of a real sink.
"""

from __future__ import annotations

import base64
import email
import email.policy
import logging
import time
import uuid
from typing import Any

import pytest

from tests.hostile.conftest import Service

pytestmark = pytest.mark.requires_plugins("smtp", "auth_token")

DEPTH = 100_000
"""Nesting of the deep bodies: far beyond any recursion limit."""


def nested(depth: int = DEPTH) -> str:
    """A JSON value nested ``depth`` levels deep (objects and arrays alternating)."""
    return '{"a":[' * (depth // 2) + "1" + "]}" * (depth // 2)


def message(tenant_id: str, account_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"m-{uuid.uuid4().hex[:10]}",
        "tenant_id": tenant_id,
        "account_id": account_id,
        "from": "shop@acme.example.com",
        "to": "rcpt@example.com",
        "subject": f"s-{uuid.uuid4().hex[:8]}",
        "body": "hello",
        **extra,
    }


def assert_client_error(response: Any, code: str, *words: str) -> dict[str, Any]:
    assert response.status_code in (400, 422), response.text[:500]
    body = response.json()
    assert isinstance(body["detail"], str) and body["code"] == code, body
    for word in words:
        assert word in body["detail"], body
    return dict(body)


def no_errors_logged(records: list[logging.LogRecord]) -> None:
    assert not records, [record.getMessage() for record in records]


# --- point 2: deeply nested JSON ----------------------------------------------------------------


def test_body_nested_100000_levels_is_refused_before_parsing(
    service: Service, error_log: list[logging.LogRecord]
) -> None:
    for path in ("/tenants/add", "/messages/add", "/messages/add_batch"):
        response = service.post(path, content=nested().encode())
        assert_client_error(response, "json_too_deep", "nested deeper than 32 levels")
        response = service.post(path, content=("[" * DEPTH + "]" * DEPTH).encode())
        assert_client_error(response, "json_too_deep")
    no_errors_logged(error_log)


def test_nesting_inside_a_message_and_inside_headers_is_refused(
    service: Service, error_log: list[logging.LogRecord]
) -> None:
    tenant_id, account_id = service.tenant_with_account()
    plain = message(tenant_id, account_id)
    head = (
        f'{{"id":"{plain["id"]}","tenant_id":"{tenant_id}","account_id":"{account_id}",'
        '"from":"a@b.co","to":"c@d.co",'
    )
    bodies = {
        "inside a message": head + '"subject":"s","body":' + nested() + "}",
        "inside headers": head + '"subject":"s","body":"b","headers":{"X-A":' + nested() + "}}",
        "inside attachment auth": head
        + '"subject":"s","body":"b","attachments":[{"filename":"a","storage_path":"x",'
        + '"auth":'
        + nested()
        + "}]}",
    }
    for where, text in bodies.items():
        response = service.post("/messages/add", content=text.encode())
        assert_client_error(response, "json_too_deep"), where
        batch = '{"messages":[' + text + "]}"
        response = service.post("/messages/add_batch", content=batch.encode())
        assert_client_error(response, "json_too_deep"), where
    no_errors_logged(error_log)


def test_nesting_within_the_limit_is_served(service: Service) -> None:
    config = nested(30)
    response = service.post(
        "/instance/update", content=('{"config":{"k":' + config + "}}").encode()
    )
    assert response.status_code == 200, response.text


# --- point 1: recipients and request caps --------------------------------------------------------


def addresses(count: int, domain: str = "example.com") -> list[str]:
    return [f"r{n}@{domain}" for n in range(count)]


def test_recipients_over_the_cap_are_rejected_naming_the_cap(service: Service) -> None:
    tenant_id, account_id = service.tenant_with_account()
    over = message(tenant_id, account_id, to=addresses(600), cc=addresses(300), bcc=addresses(101))
    response = service.post("/messages/add", over)
    assert_client_error(response, "message_rejected", "too many recipients: 1001", "1000")
    at_cap = message(
        tenant_id, account_id, to=addresses(600), cc=addresses(300), bcc=addresses(100)
    )
    assert service.post("/messages/add", at_cap).status_code == 200


def test_a_hundred_thousand_recipients_are_refused_without_parsing_them(service: Service) -> None:
    # the probe that once held the server for minutes: one message, 100,000 recipients as one
    # comma-separated string (2.4 MB)
    tenant_id, account_id = service.tenant_with_account()
    huge = message(tenant_id, account_id, to=", ".join(addresses(100_000)))
    response = service.post("/messages/add", huge)
    assert_client_error(response, "message_rejected", "too many recipients: 100000")
    batch = {"messages": [huge, message(tenant_id, account_id)]}
    answer = service.post("/messages/add_batch", batch).json()
    assert answer["queued"] == 1
    assert answer["rejected"][0]["reason"].startswith("too many recipients: 100000")


def test_too_many_entries_are_refused_before_any_entry_is_checked(service: Service) -> None:
    # 1,001 entries, each one invalid: the count is refused first, no entry is looked at
    batch = {"messages": [{"id": f"x{n}"} for n in range(1001)]}
    response = service.post("/messages/add_batch", batch)
    body = assert_client_error(response, "invalid_input", "at most 1000 messages per call")
    assert body["errors"][0]["field"] == "messages"


def test_a_body_over_the_size_cap_is_refused_unread(service: Service) -> None:
    blob = b'{"messages":[' + b" " * (33 * 1024 * 1024) + b"]}"
    response = service.post("/messages/add_batch", content=blob)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


# --- point 3 and 8: control characters -----------------------------------------------------------

REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("NUL in body", {"body": "a\x00b"}, "invalid 'body' field: must not contain NUL"),
    ("NUL in html", {"html": "<p>a\x00b</p>"}, "invalid 'html' field: must not contain NUL"),
    ("NUL in subject", {"subject": "a\x00b"}, "invalid 'subject' field"),
    (
        "escape in subject",
        {"subject": "a\x1b[31mred"},
        "invalid 'subject' field: must not contain control",
    ),
    ("bell in header", {"headers": {"X-A": "a\x07b"}}, "invalid 'headers' field"),
    (
        "NUL in filename",
        {"attachments": [{"filename": "a\x00.txt", "storage_path": "base64:aGk="}]},
        "'filename' must not contain control characters",
    ),
    (
        "CR LF in filename",
        {
            "attachments": [
                {"filename": "a.txt\r\nBcc: x@evil.example", "storage_path": "base64:aGk="}
            ]
        },
        "'filename' must not contain control characters",
    ),
    (
        "LF in mime_type",
        {
            "attachments": [
                {
                    "filename": "a.txt",
                    "storage_path": "base64:aGk=",
                    "mime_type": "text/plain\nX: y",
                }
            ]
        },
        "invalid 'mime_type'",
    ),
    (
        "CR in mime_type",
        {
            "attachments": [
                {"filename": "a.txt", "storage_path": "base64:aGk=", "mime_type": "text/plain\r"}
            ]
        },
        "invalid 'mime_type'",
    ),
]


@pytest.mark.parametrize(("case", "fields", "reason"), REFUSED, ids=[c for c, _, _ in REFUSED])
def test_control_characters_that_cannot_be_carried_are_refused_naming_the_field(
    service: Service,
    error_log: list[logging.LogRecord],
    case: str,
    fields: dict[str, Any],
    reason: str,
) -> None:
    tenant_id, account_id = service.tenant_with_account()
    entry = message(tenant_id, account_id, **fields)
    response = service.post("/messages/add", entry)
    assert_client_error(response, "message_rejected", reason)
    answer = service.post("/messages/add_batch", {"messages": [entry]}).json()
    assert answer["queued"] == 0 and reason in answer["rejected"][0]["reason"], answer
    # nothing was queued, so nothing can reach the wire
    assert service.get("/messages/list", tenant_id=tenant_id).json() == []
    no_errors_logged(error_log)


def wait_for_mail(service: Service, subject: str, within: float = 30.0) -> bytes:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for content in (message.content for message in service.sink.messages()):
            if f"Subject: {subject}".encode() in content:
                return content
        time.sleep(0.05)
    raise AssertionError(f"no mail with subject {subject!r} arrived")


def test_control_characters_that_can_be_carried_reach_the_wire_encoded(service: Service) -> None:
    tenant_id, account_id = service.tenant_with_account()
    binary = b"\x00\x01bin\x00ary\r\x00\n\x7f"
    body = "line one\rline two\nline three\r\nform\x0cfeed, bell\x07, tab\t."
    entry = message(
        tenant_id,
        account_id,
        body=body,
        attachments=[
            {
                "filename": "data.txt",
                "mime_type": "text/plain",
                "storage_path": "base64:" + base64.b64encode(binary).decode(),
            }
        ],
    )
    assert service.post("/messages/add", entry).status_code == 200
    assert service.post("/instance/run_now", {}).status_code == 200
    wire = wait_for_mail(service, entry["subject"])

    assert b"\x00" not in wire
    # every line ends with CRLF: no bare CR, no bare LF reaches the wire
    assert wire.count(b"\r") == wire.count(b"\n") == wire.count(b"\r\n")
    mail = email.message_from_bytes(wire, policy=email.policy.default)
    text, attachment = list(mail.iter_parts())
    assert (
        text.get_content().replace("\r\n", "\n")
        == "line one\nline two\nline three\nform\x0cfeed, bell\x07, tab\t.\n"
    )
    assert attachment.get_filename() == "data.txt"
    assert attachment["Content-Transfer-Encoding"] == "base64"
    assert attachment.get_payload(decode=True) == binary
