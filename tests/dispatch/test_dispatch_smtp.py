"""The dispatcher end to end: REST enqueue → claim → SMTP (aiosmtpd, scripted) → status + events."""

from __future__ import annotations

import asyncio
import email
import time

import pytest

from mailproxy_core.testing.dispatch import dispatch_now
from tests.dispatch.support import enqueue, history, message, status_of

pytestmark = pytest.mark.requires_plugins("smtp", "auth_token")


async def test_sent_message_content_and_envelope(relay, server, mp_kernel):
    await enqueue(
        relay,
        message(
            "m1",
            cc=["carol@example.com"],
            bcc="dave@example.com",
            reply_to="help@acme.example",
            return_path="bounces@acme.example",
            headers={"X-Order": "42"},
            html="<p>Thanks</p>",
        ),
    )
    await dispatch_now(mp_kernel)
    assert await status_of(relay, "m1") == "sent"
    assert [kind for kind, _ in await history(relay, "m1")] == ["sent"]
    (received,) = server.handler.messages
    assert received.mail_from == "bounces@acme.example"
    assert sorted(received.rcpt_tos) == ["bob@example.com", "carol@example.com", "dave@example.com"]
    mime = email.message_from_bytes(received.content)
    assert mime["X-Genro-Mail-ID"] == "m1"
    assert mime["Bcc"] is None
    assert mime["Reply-To"] == "help@acme.example"
    assert mime["X-Order"] == "42"
    assert mime["Date"] and mime["Message-ID"]
    assert mime.get_content_type() == "multipart/alternative"


async def test_451_once_then_sent_with_the_same_message_id(relay, server, mp_kernel):
    server.handler.script("DATA", "451 4.7.1 Try again later")
    await enqueue(relay, message("m1"))
    await dispatch_now(mp_kernel)
    events = await history(relay, "m1")
    assert [kind for kind, _ in events] == ["deferred", "sent"]
    assert events[0][1] == "451 4.7.1 Try again later"
    first, second = (email.message_from_bytes(raw) for raw in server.handler.data_seen)
    assert first["Message-ID"] == second["Message-ID"]


async def test_persistent_451_ends_after_max_retries(relay, server, mp_kernel):
    server.handler.script("DATA", *["451 4.7.1 Try again later"] * 5)
    await enqueue(relay, message("m1"))
    await dispatch_now(mp_kernel)
    assert await status_of(relay, "m1") == "error"
    assert await history(relay, "m1") == [
        ("deferred", "451 4.7.1 Try again later"),
        ("deferred", "451 4.7.1 Try again later"),
        ("error", "Max retries (2) exceeded: 451 4.7.1 Try again later"),
    ]
    assert server.handler.calls["DATA"] == 3  # 2 retries = 3 attempts


async def test_all_recipients_refused_is_one_error_without_retry(relay, server, mp_kernel):
    server.handler.rcpt_replies["bob@example.com"] = "550 5.1.1 User unknown"
    await enqueue(relay, message("m1"))
    await dispatch_now(mp_kernel)
    events = await history(relay, "m1")
    assert [kind for kind, _ in events] == ["error"]
    assert "550 5.1.1 User unknown" in (events[0][1] or "")
    assert server.handler.calls["DATA"] == 0


async def test_one_refused_recipient_of_two_is_sent_and_recorded(relay, server, mp_kernel):
    server.handler.rcpt_replies["ghost@example.com"] = "550 5.1.1 User unknown"
    await enqueue(relay, message("m1", to=["bob@example.com", "ghost@example.com"]))
    await dispatch_now(mp_kernel)
    got = await relay.get("/messages/get", message_id="m1", tenant_id="acme", include_history=True)
    (event,) = got.json["history"]
    assert event["event_type"] == "sent"
    assert event["metadata"]["refused"] == {"ghost@example.com": "550 5.1.1 User unknown"}


async def test_550_at_data_is_permanent(relay, server, mp_kernel):
    server.handler.script("DATA", "550 5.7.1 Message rejected as spam")
    await enqueue(relay, message("m1"))
    await dispatch_now(mp_kernel)
    assert await history(relay, "m1") == [("error", "550 5.7.1 Message rejected as spam")]


async def test_connection_dropped_mid_data_is_retried(relay, server, mp_kernel):
    server.handler.script("DATA", "drop")
    await enqueue(relay, message("m1"))
    await dispatch_now(mp_kernel)
    kinds = [kind for kind, _ in await history(relay, "m1")]
    assert kinds == ["deferred", "sent"]


async def test_slow_server_times_out_and_is_retried(relay, server, mp_kernel):
    server.handler.script("DATA", "stall")
    await enqueue(relay, message("m1"))
    await dispatch_now(mp_kernel)
    kinds = [kind for kind, _ in await history(relay, "m1")]
    assert kinds == ["deferred", "sent"]


@pytest.fixture
def dispatch_settings():
    return {"max_retries": 2, "retry_delays": (0.001,), "max_concurrency": 1, "max_per_account": 1}


async def test_priority_order_and_fifo(relay, server, mp_kernel):
    await enqueue(
        relay,
        message("bulk-1", priority="low"),
        message("bulk-2", priority=3),
        message("normal", priority=2),
        message("urgent", priority="immediate"),
        message("high", priority=1),
    )
    await dispatch_now(mp_kernel)
    received = server.handler.messages
    order = [email.message_from_bytes(m.content)["X-Genro-Mail-ID"] for m in received]
    assert order == ["urgent", "high", "normal", "bulk-1", "bulk-2"]


async def test_scheduled_message_waits_for_its_time(relay, server, mp_kernel):
    later = int(time.time()) + 3600
    await enqueue(relay, message("later", deferred_ts=later), message("now"))
    await dispatch_now(mp_kernel)
    assert await status_of(relay, "now") == "sent"
    assert await status_of(relay, "later") == "pending"


async def test_suspended_batch_and_inactive_tenant_are_held(relay, server, mp_kernel):
    await enqueue(relay, message("b1", batch_code="promo"), message("plain"))
    await relay.post("/tenants/suspend_batch", tenant_id="acme", batch_code="promo")
    await dispatch_now(mp_kernel)
    assert await status_of(relay, "plain") == "sent"
    assert await status_of(relay, "b1") == "pending"
    resumed = await relay.post("/tenants/activate_batch", tenant_id="acme", batch_code="promo")
    assert resumed.json["suspended_batches"] == [], resumed.json
    assert (await relay.post("/tenants/update", tenant_id="acme", active=False)).status == 200
    await dispatch_now(mp_kernel)
    assert await status_of(relay, "b1") == "pending"
    await relay.post("/tenants/update", tenant_id="acme", active=True)
    await dispatch_now(mp_kernel)
    assert await status_of(relay, "b1") == "sent"


async def test_inline_attachment_is_delivered(relay, server, mp_kernel):
    attachment = {
        "filename": "report_{MD5:0123456789abcdef0123456789abcdef}.txt",
        "storage_path": "base64:aGVsbG8gd29ybGQ=",
    }
    await enqueue(relay, message("m1", attachments=[attachment]))
    await dispatch_now(mp_kernel)
    (received,) = server.handler.messages
    parts = [p for p in email.message_from_bytes(received.content).walk() if p.get_filename()]
    assert [p.get_filename() for p in parts] == ["report.txt"]
    assert parts[0].get_payload(decode=True) == b"hello world"


async def test_invalid_inline_attachment_is_refused_before_queueing(relay, server, mp_kernel):
    attachment = {"filename": "a.pdf", "storage_path": "base64:@@not base64@@"}
    answer = await relay.post(
        "/messages/add_batch", messages=[message("m1", attachments=[attachment])]
    )
    assert answer.json["rejected"] == [
        {"id": "m1", "reason": "invalid attachment: #1 storage_path is not valid base64"}
    ]
    await dispatch_now(mp_kernel)
    assert server.handler.messages == []


async def _latin1_server(reply: bytes) -> asyncio.Server:
    """A minimal SMTP server on loopback that answers DATA with ``reply`` (raw bytes)."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 raw.test ESMTP\r\n")
        in_data = False
        while line := await reader.readline():
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    writer.write(reply + b"\r\n")
            elif line.upper().startswith((b"EHLO", b"HELO")):
                writer.write(b"250 raw.test\r\n")
            elif line.upper().startswith(b"DATA"):
                in_data = True
                writer.write(b"354 go ahead\r\n")
            elif line.upper().startswith(b"QUIT"):
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    return await asyncio.start_server(session, "127.0.0.1", 0)


async def test_a_reply_that_is_not_utf8_is_recorded_readably(relay, mp_kernel):
    """aiosmtplib keeps undecodable reply bytes as lone surrogates, which no database column
    can store: the outcome must still be written (a failing write would hold every outcome of
    the cycle back, forever), with the bad bytes replaced."""
    raw = await _latin1_server(b"550 5.7.1 Nachricht abgelehnt: ung\xfcltig")
    port = raw.sockets[0].getsockname()[1]
    async with raw:
        account = {"id": "raw", "tenant_id": "acme", "host": "127.0.0.1", "port": port}
        assert (await relay.post("/accounts/add", **account, use_tls=False)).status == 200
        await enqueue(relay, message("m1", account_id="raw"), message("m2"))
        await dispatch_now(mp_kernel)
    assert await history(relay, "m1") == [("error", "550 5.7.1 Nachricht abgelehnt: ung\ufffdltig")]
    assert await status_of(relay, "m1") == "error"
    assert await status_of(relay, "m2") == "sent"
