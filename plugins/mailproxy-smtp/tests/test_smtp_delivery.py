"""One message against a scripted SMTP server: what arrives, and how each failure is classified."""

from __future__ import annotations

import pytest

from mailproxy_core import Envelope, PermanentSendError, TransientSendError

MIME = (
    b"From: shop@example.com\r\n"
    b"To: ann@example.org, bob@example.org\r\n"
    b"Subject: Your order\r\n"
    b"Message-ID: <order-1@example.com>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Gr\xc3\xbc\xc3\x9fe,\r\n"
    b".a line starting with a dot survives dot-stuffing\r\n"
    b"..and so does this one\r\n"
)
ENVELOPE = Envelope(
    sender="bounces@example.com",
    recipients=("ann@example.org", "bob@example.org"),
    message_id="<order-1@example.com>",
)


async def test_accepted_message_arrives_byte_for_byte(smtp_server, smtp_transport, make_account):
    server = await smtp_server()
    transport = smtp_transport()

    result = await transport.send(make_account(server), ENVELOPE, MIME)

    assert result.accepted == ENVELOPE.recipients
    assert result.refused == {}
    assert result.response == "250 2.0.0 Ok: queued"
    [received] = server.handler.messages
    assert received.content == MIME
    assert received.mail_from == "bounces@example.com"
    assert received.rcpt_tos == ["ann@example.org", "bob@example.org"]
    assert f"SIZE={len(MIME)}" in received.mail_options
    assert "BODY=8BITMIME" in received.mail_options


async def test_bare_newlines_are_sent_as_crlf(smtp_server, smtp_transport, make_account):
    server = await smtp_server()
    mime = b"Subject: lf\n\nline one\nline two\n"

    await smtp_transport().send(make_account(server), ENVELOPE, mime)

    [received] = server.handler.messages
    assert received.content == mime.replace(b"\n", b"\r\n")
    assert f"SIZE={len(received.content)}" in received.mail_options


async def test_451_at_data_is_transient_with_the_reply_text(
    smtp_server, smtp_transport, make_account
):
    server = await smtp_server()
    server.handler.script("DATA", "451 4.7.1 Try again later")

    with pytest.raises(TransientSendError) as caught:
        await smtp_transport().send(make_account(server), ENVELOPE, MIME)

    assert str(caught.value) == "451 4.7.1 Try again later"
    assert caught.value.smtp_code == 451
    assert server.handler.messages == []


async def test_550_at_data_is_permanent(smtp_server, smtp_transport, make_account):
    server = await smtp_server()
    server.handler.script("DATA", "550 5.7.1 Message rejected as spam")

    with pytest.raises(PermanentSendError) as caught:
        await smtp_transport().send(make_account(server), ENVELOPE, MIME)

    assert str(caught.value) == "550 5.7.1 Message rejected as spam"
    assert caught.value.smtp_code == 550


async def test_sender_refused_is_permanent(smtp_server, smtp_transport, make_account):
    server = await smtp_server()
    server.handler.script("MAIL", "553 5.7.1 Sender address rejected")

    with pytest.raises(PermanentSendError) as caught:
        await smtp_transport().send(make_account(server), ENVELOPE, MIME)

    assert str(caught.value) == "553 5.7.1 Sender address rejected"
    assert server.handler.calls["RCPT"] == 0


async def test_every_recipient_refused_is_permanent_and_lists_each(
    smtp_server, smtp_transport, make_account
):
    server = await smtp_server()
    server.handler.rcpt_replies = {
        "ann@example.org": "550 5.1.1 User unknown",
        "bob@example.org": "553 5.1.2 Domain does not exist",
    }

    with pytest.raises(PermanentSendError) as caught:
        await smtp_transport().send(make_account(server), ENVELOPE, MIME)

    assert str(caught.value) == (
        "all recipients refused: ann@example.org: 550 5.1.1 User unknown; "
        "bob@example.org: 553 5.1.2 Domain does not exist"
    )
    assert caught.value.smtp_code == 550
    assert server.handler.calls["DATA"] == 0


async def test_every_recipient_greylisted_is_transient(smtp_server, smtp_transport, make_account):
    server = await smtp_server()
    server.handler.script("RCPT", "451 4.7.1 Greylisted, try again in 5 minutes")
    envelope = Envelope(sender="bounces@example.com", recipients=("ann@example.org",))

    with pytest.raises(TransientSendError) as caught:
        await smtp_transport().send(make_account(server), envelope, MIME)

    assert str(caught.value) == (
        "all recipients refused: ann@example.org: 451 4.7.1 Greylisted, try again in 5 minutes"
    )
    assert caught.value.smtp_code == 451


async def test_one_of_two_recipients_refused_is_sent_with_the_refusal(
    smtp_server, smtp_transport, make_account
):
    server = await smtp_server()
    server.handler.rcpt_replies = {"bob@example.org": "550 5.1.1 User unknown"}

    result = await smtp_transport().send(make_account(server), ENVELOPE, MIME)

    assert result.accepted == ("ann@example.org",)
    assert result.refused == {"bob@example.org": "550 5.1.1 User unknown"}
    [received] = server.handler.messages
    assert received.rcpt_tos == ["ann@example.org"]


async def test_connection_dropped_during_data_is_transient(
    smtp_server, smtp_transport, make_account
):
    server = await smtp_server()
    server.handler.script("DATA", "drop")

    with pytest.raises(TransientSendError) as caught:
        await smtp_transport().send(make_account(server), ENVELOPE, MIME)

    assert "lost during DATA" in str(caught.value)
    assert "not confirmed" in str(caught.value)
    assert caught.value.smtp_code is None


async def test_stalled_server_times_out_as_transient(smtp_server, smtp_transport, make_account):
    server = await smtp_server()
    server.handler.script("DATA", "stall")
    transport = smtp_transport(data_timeout=1.0)

    with pytest.raises(TransientSendError) as caught:
        await transport.send(make_account(server), ENVELOPE, MIME)

    assert str(caught.value) == (
        f"timed out after 1 s waiting for 127.0.0.1:{server.port} during DATA"
    )
    # The timed-out session is not reused: the next send opens a fresh connection.
    await transport.send(make_account(server), ENVELOPE, MIME)
    assert server.connections == 2


async def test_stalled_command_uses_the_command_timeout(smtp_server, smtp_transport, make_account):
    server = await smtp_server()
    server.handler.script("RCPT", "stall")

    with pytest.raises(TransientSendError, match="during RCPT"):
        await smtp_transport(command_timeout=1.0).send(make_account(server), ENVELOPE, MIME)


async def test_refused_connection_is_transient(smtp_server, smtp_transport, make_account):
    server = await smtp_server()
    account = make_account(server)
    await server.stop()

    with pytest.raises(TransientSendError, match=f"cannot connect to 127.0.0.1:{server.port}"):
        await smtp_transport().send(account, ENVELOPE, MIME)


@pytest.mark.parametrize(
    ("envelope", "problem"),
    [
        (Envelope(sender="a@example.com", recipients=()), "no recipients"),
        (
            Envelope(sender="a@example.com", recipients=("b@example.org>\r\nRCPT TO:<c@x.org",)),
            "invalid recipient address",
        ),
        (Envelope(sender="a b@example.com", recipients=("b@example.org",)), "invalid sender"),
    ],
)
async def test_unsendable_envelopes_fail_before_connecting(
    smtp_server, smtp_transport, make_account, envelope, problem
):
    server = await smtp_server()

    with pytest.raises(PermanentSendError, match=problem):
        await smtp_transport().send(make_account(server), envelope, MIME)

    assert server.connections == 0


async def test_non_ascii_address_needs_smtputf8(smtp_server, smtp_transport, make_account):
    plain = await smtp_server()
    utf8 = await smtp_server(enable_SMTPUTF8=True)
    envelope = Envelope(sender="shop@example.com", recipients=("jürgen@example.de",))
    transport = smtp_transport()

    with pytest.raises(PermanentSendError, match="SMTPUTF8"):
        await transport.send(make_account(plain), envelope, MIME)
    result = await transport.send(make_account(utf8), envelope, MIME)

    assert result.accepted == ("jürgen@example.de",)
    [received] = utf8.handler.messages
    assert received.rcpt_tos == ["jürgen@example.de"]
    assert "SMTPUTF8" in received.mail_options


async def test_account_without_host_is_permanent(smtp_transport, make_account, smtp_server):
    server = await smtp_server()

    with pytest.raises(PermanentSendError, match="has no SMTP host"):
        await smtp_transport().send(make_account(server, host=""), ENVELOPE, MIME)
