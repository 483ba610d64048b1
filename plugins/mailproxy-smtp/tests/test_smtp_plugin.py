"""The installed ``smtp`` plugin inside the kernel: discovery, settings, hooks, lifecycle."""

from __future__ import annotations

from pathlib import Path

import aiosmtplib
import pytest

import mailproxy_smtp
from mailproxy_core import ConfigurationError, Envelope, ErrorClass, Settings
from mailproxy_core.app import create_app, kernel_of
from mailproxy_core.kernel import build_kernel
from mailproxy_core.settings import load_settings
from mailproxy_smtp import SmtpSettings, SmtpTransport

MIME = b"Subject: kernel\r\n\r\nhello\r\n"
ENVELOPE = Envelope(sender="shop@example.com", recipients=("ann@example.org",))


def test_smtp_is_installed(tmp_path: Path) -> None:
    mp = build_kernel(Settings.from_values(db=str(tmp_path / "x.db")))
    info = {p.name: p for p in mp.plugins}["smtp"]
    assert info.status == "loaded"
    assert info.distribution == "mailproxy-smtp"
    assert "smtp" in mp.registry.transports
    assert "smtp" in mp.registry.settings.names()


@pytest.fixture
def mp_settings(tmp_path: Path) -> Settings:
    """The test instance with an ``[plugins.smtp]`` section."""
    return Settings.from_values(
        db=str(tmp_path / "mailproxy.db"),
        api_token="test-admin-token",
        test_mode=True,
        plugin_sections={"smtp": {"max_connections": 2, "local_hostname": "client.test"}},
    )


async def test_kernel_builds_the_transport_from_its_settings(
    mp_kernel, smtp_server, make_account
) -> None:
    server = await smtp_server()
    transport = mp_kernel.transports["smtp"]
    assert isinstance(transport, SmtpTransport)
    assert transport.settings.max_connections == 2

    result = await transport.send(make_account(server), ENVELOPE, MIME)

    assert result.accepted == ("ann@example.org",)
    assert server.handler.messages[0].content == MIME


async def test_kernel_shutdown_closes_pooled_connections(
    tmp_path, smtp_server, make_account, wait_until
) -> None:
    server = await smtp_server()
    settings = Settings.from_values(db=str(tmp_path / "mp.db"), api_token="t", test_mode=True)
    app = create_app(settings)
    async with app.test_app():
        await kernel_of(app).transports["smtp"].send(make_account(server), ENVELOPE, MIME)
        assert len(server.open) == 1

    await wait_until(lambda: not server.open)


def test_settings_from_the_environment() -> None:
    environ = {
        "MAILPROXY_SMTP__MAX_CONNECTIONS": "5",
        "MAILPROXY_SMTP__VERIFY_TLS": "false",
        "MAILPROXY_SMTP__IMPLICIT_TLS_PORTS": "465,2465",
        "MAILPROXY_SMTP__DATA_TIMEOUT": "300",
    }
    smtp = load_settings(environ=environ).plugin_settings("smtp", SmtpSettings)

    assert smtp.max_connections == 5
    assert smtp.verify_tls is False
    assert smtp.implicit_tls_ports == [465, 2465]
    assert smtp.data_timeout == 300
    assert smtp.command_timeout == 30  # defaults stay
    assert load_settings(environ={}).plugin_settings("smtp", SmtpSettings) == SmtpSettings()


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"max_connections": 0}, "max_connections"),
        ({"connect_timeout": -1}, "connect_timeout"),
        ({"ca_file": "/nonexistent/ca.pem"}, "ca_file"),
        ({"pool_sise": 3}, "pool_sise"),
    ],
)
def test_invalid_settings_stop_startup(section: dict[str, object], named: str) -> None:
    settings = Settings.from_values(plugin_sections={"smtp": section})
    with pytest.raises(ConfigurationError, match=named):
        settings.plugin_settings("smtp", SmtpSettings)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (aiosmtplib.SMTPResponseException(451, "4.7.1 Try again later"), ErrorClass.TRANSIENT),
        (aiosmtplib.SMTPDataError(554, "5.7.1 Rejected"), ErrorClass.PERMANENT),
        (aiosmtplib.SMTPSenderRefused(421, "4.4.2 closing", "a@b.c"), ErrorClass.TRANSIENT),
        (aiosmtplib.SMTPAuthenticationError(535, "5.7.8 bad credentials"), ErrorClass.PERMANENT),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(550, "5.1.1 unknown", "a@b.c")]
            ),
            ErrorClass.PERMANENT,
        ),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [
                    aiosmtplib.SMTPRecipientRefused(550, "5.1.1 unknown", "a@b.c"),
                    aiosmtplib.SMTPRecipientRefused(450, "4.2.1 mailbox busy", "d@b.c"),
                ]
            ),
            ErrorClass.TRANSIENT,
        ),
        (aiosmtplib.SMTPServerDisconnected("Connection lost"), ErrorClass.TRANSIENT),
        (aiosmtplib.SMTPConnectError("refused"), ErrorClass.TRANSIENT),
        (aiosmtplib.SMTPReadTimeoutError("timed out"), ErrorClass.TRANSIENT),
        (aiosmtplib.SMTPNotSupported("SMTPUTF8 not supported"), ErrorClass.PERMANENT),
    ],
)
def test_classify_error_for_raw_aiosmtplib_exceptions(
    tmp_path: Path, error: BaseException, expected: ErrorClass
) -> None:
    mp = build_kernel(Settings.from_values(db=str(tmp_path / "x.db")))
    assert mp.hooks.classify_error(error) is expected


def test_classify_error_declines_other_exceptions() -> None:
    assert mailproxy_smtp.mailproxy_classify_error(error=ValueError("not smtp")) is None
    assert mailproxy_smtp.mailproxy_classify_error(error=TimeoutError()) is None
