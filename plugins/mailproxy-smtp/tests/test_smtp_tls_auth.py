"""TLS modes and login against real aiosmtpd servers with a self-signed certificate."""

from __future__ import annotations

import pytest

from mailproxy_core import Envelope, PermanentSendError, TransientSendError

MIME = b"Subject: secure\r\n\r\nhello\r\n"
ENVELOPE = Envelope(sender="shop@example.com", recipients=("ann@example.org",))


# -- login ------------------------------------------------------------------------------------


async def test_login_with_good_credentials(
    smtp_server, smtp_transport, make_account, authenticator
):
    server = await smtp_server(
        authenticator=authenticator("shop", "s3cret"), auth_required=True, auth_require_tls=False
    )
    account = make_account(server, user="shop", password="s3cret")

    result = await smtp_transport().send(account, ENVELOPE, MIME)

    assert result.accepted == ("ann@example.org",)
    [received] = server.handler.messages
    assert received.user == "shop"


async def test_bad_credentials_are_permanent_with_an_operator_hint(
    smtp_server, smtp_transport, make_account, authenticator
):
    server = await smtp_server(
        authenticator=authenticator("shop", "s3cret"), auth_required=True, auth_require_tls=False
    )
    account = make_account(server, user="shop", password="wrong-Pa55word")

    with pytest.raises(PermanentSendError) as caught:
        await smtp_transport().send(account, ENVELOPE, MIME)

    text = str(caught.value)
    assert text.startswith("535 5.7.8 Authentication credentials invalid")
    assert "check the account's user and password" in text
    assert "'shop'" in text
    assert "wrong-Pa55word" not in text
    assert caught.value.smtp_code == 535
    assert server.handler.calls["MAIL"] == 0


async def test_account_without_credentials_on_a_server_requiring_login(
    smtp_server, smtp_transport, make_account, authenticator
):
    server = await smtp_server(
        authenticator=authenticator("shop", "s3cret"), auth_required=True, auth_require_tls=False
    )

    with pytest.raises(PermanentSendError, match=r"^530 5\.7\.0 Authentication required"):
        await smtp_transport().send(make_account(server), ENVELOPE, MIME)


async def test_credentials_for_a_server_without_auth_are_permanent(
    smtp_server, smtp_transport, make_account
):
    server = await smtp_server()
    account = make_account(server, user="shop", password="s3cret")

    with pytest.raises(PermanentSendError, match="does not offer AUTH") as caught:
        await smtp_transport().send(account, ENVELOPE, MIME)

    assert "s3cret" not in str(caught.value)


async def test_user_without_password_does_not_log_in(smtp_server, smtp_transport, make_account):
    server = await smtp_server()

    await smtp_transport().send(make_account(server, user="shop"), ENVELOPE, MIME)

    [received] = server.handler.messages
    assert received.user is None


# -- STARTTLS ---------------------------------------------------------------------------------


async def test_starttls_required_and_offered(smtp_server, smtp_transport, make_account, tls_files):
    server = await smtp_server(tls_context=tls_files.server_context())

    await smtp_transport(verify_tls=False).send(make_account(server, use_tls=True), ENVELOPE, MIME)

    [received] = server.handler.messages
    assert received.tls is True


async def test_login_after_starttls(
    smtp_server, smtp_transport, make_account, tls_files, authenticator
):
    # aiosmtpd offers AUTH only over TLS here: login works only if EHLO is repeated after TLS.
    server = await smtp_server(
        tls_context=tls_files.server_context(),
        authenticator=authenticator("shop", "s3cret"),
        auth_required=True,
    )
    account = make_account(server, use_tls=True, user="shop", password="s3cret")

    await smtp_transport(verify_tls=False).send(account, ENVELOPE, MIME)

    [received] = server.handler.messages
    assert (received.tls, received.user) == (True, "shop")


async def test_starttls_required_but_not_offered_is_permanent(
    smtp_server, smtp_transport, make_account
):
    server = await smtp_server()

    with pytest.raises(PermanentSendError, match="does not offer STARTTLS") as caught:
        await smtp_transport(verify_tls=False).send(
            make_account(server, use_tls=True), ENVELOPE, MIME
        )

    assert "requires TLS" in str(caught.value)
    assert server.handler.calls["MAIL"] == 0


async def test_auto_tls_without_starttls_sends_in_plain_text(
    smtp_server, smtp_transport, make_account
):
    server = await smtp_server()

    await smtp_transport().send(make_account(server, use_tls=None), ENVELOPE, MIME)

    [received] = server.handler.messages
    assert received.tls is False


async def test_auto_tls_uses_starttls_when_offered(
    smtp_server, smtp_transport, make_account, tls_files
):
    server = await smtp_server(tls_context=tls_files.server_context())

    await smtp_transport(verify_tls=False).send(make_account(server, use_tls=None), ENVELOPE, MIME)

    [received] = server.handler.messages
    assert received.tls is True


async def test_plain_account_ignores_starttls(smtp_server, smtp_transport, make_account, tls_files):
    server = await smtp_server(tls_context=tls_files.server_context())

    await smtp_transport().send(make_account(server, use_tls=False), ENVELOPE, MIME)

    [received] = server.handler.messages
    assert received.tls is False


async def test_unverifiable_certificate_is_transient_with_a_hint(
    smtp_server, smtp_transport, make_account, tls_files
):
    server = await smtp_server(tls_context=tls_files.server_context())

    with pytest.raises(TransientSendError) as caught:
        await smtp_transport().send(make_account(server, use_tls=True), ENVELOPE, MIME)

    assert f"TLS certificate of 127.0.0.1:{server.port} could not be verified" in str(caught.value)
    assert "ca_file" in str(caught.value)
    assert server.handler.messages == []


async def test_certificate_verified_against_ca_file(
    smtp_server, smtp_transport, make_account, tls_files
):
    server = await smtp_server(tls_context=tls_files.server_context())

    await smtp_transport(ca_file=tls_files.cert).send(
        make_account(server, use_tls=True), ENVELOPE, MIME
    )

    [received] = server.handler.messages
    assert received.tls is True


# -- implicit TLS (SMTPS) ---------------------------------------------------------------------


@pytest.mark.parametrize("use_tls", [True, None])
async def test_implicit_tls(smtp_server, smtp_transport, make_account, tls_files, use_tls):
    server = await smtp_server(ssl_context=tls_files.server_context())
    transport = smtp_transport(implicit_tls_ports=[server.port], ca_file=tls_files.cert)

    await transport.send(make_account(server, use_tls=use_tls), ENVELOPE, MIME)

    [received] = server.handler.messages
    assert received.tls is True


async def test_implicit_tls_port_with_unverifiable_certificate(
    smtp_server, smtp_transport, make_account, tls_files
):
    server = await smtp_server(ssl_context=tls_files.server_context())
    transport = smtp_transport(implicit_tls_ports=[server.port])

    with pytest.raises(TransientSendError, match="could not be verified"):
        await transport.send(make_account(server, use_tls=True), ENVELOPE, MIME)
