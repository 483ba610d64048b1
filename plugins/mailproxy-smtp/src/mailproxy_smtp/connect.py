"""Opening an SMTP session for an account: TCP, TLS mode, EHLO and login.

TLS modes come from ``account.use_tls``:

- ``True``: implicit TLS (SMTPS) on the ports of ``implicit_tls_ports`` (465), otherwise STARTTLS,
  which is then required: a server that does not offer it is a permanent failure, so that a
  message is never sent in clear text when the account asked for TLS.
- ``False``: plain text, STARTTLS is never attempted.
- ``None`` (auto): implicit TLS on the implicit-TLS ports, otherwise STARTTLS when offered.

Every step has a timeout: ``connect_timeout`` for TCP, TLS handshake and greeting,
``command_timeout`` for EHLO, STARTTLS and AUTH.
"""

from __future__ import annotations

import asyncio
import enum
import socket
import ssl
from pathlib import Path

import aiosmtplib

from mailproxy_core import Account, PermanentSendError

from .classify import Stage, to_send_error
from .settings import SmtpSettings

DEFAULT_PORTS = {True: 587, None: 587, False: 25}
"""Port used when an account leaves ``port`` at 0: submission, or 25 for plain accounts."""


class TlsMode(enum.Enum):
    """How a session is protected."""

    IMPLICIT = "implicit"
    STARTTLS_REQUIRED = "starttls"
    STARTTLS_IF_OFFERED = "starttls-if-offered"
    PLAIN = "plain"


def account_port(account: Account) -> int:
    """The account's port, or the default for its TLS setting when it has none."""
    return account.port or DEFAULT_PORTS[account.use_tls]


def server_name(account: Account) -> str:
    """``host:port`` of an account's server, as named in error texts and logs."""
    return f"{account.host}:{account_port(account)}"


def tls_mode(account: Account, implicit_tls_ports: list[int]) -> TlsMode:
    """The TLS mode an account asks for (see the module docstring)."""
    if account.use_tls is False:
        return TlsMode.PLAIN
    if account_port(account) in implicit_tls_ports:
        return TlsMode.IMPLICIT
    if account.use_tls is True:
        return TlsMode.STARTTLS_REQUIRED
    return TlsMode.STARTTLS_IF_OFFERED


def build_tls_context(verify: bool, ca_file: Path | None) -> ssl.SSLContext:
    """A client TLS context: system CAs plus ``ca_file``; no verification when ``verify`` is off.

    Reads certificate files: call it off the event loop.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Connector:
    """Opens authenticated sessions; one per transport, sharing its TLS context and EHLO name."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._tls_context: ssl.SSLContext | None = None
        self._local_hostname: str | None = settings.local_hostname

    async def tls_context(self) -> ssl.SSLContext:
        """The shared client TLS context, built on first use in a worker thread."""
        if self._tls_context is None:
            self._tls_context = await asyncio.to_thread(
                build_tls_context, self.settings.verify_tls, self.settings.ca_file
            )
        return self._tls_context

    async def local_hostname(self) -> str:
        """The EHLO name: the setting, else this machine's FQDN (looked up once, off the loop)."""
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        return self._local_hostname

    async def open(self, account: Account) -> aiosmtplib.SMTP:
        """Connect, negotiate TLS, EHLO and log in; the session is ready for MAIL FROM.

        Raises:
            TransientSendError: connection refused or lost, timeouts, TLS handshake failures,
                4xx replies.
            PermanentSendError: 5xx replies, STARTTLS required but not offered, credentials
                refused (the text names the user, never the password).
        """
        if not account.host:
            raise PermanentSendError(
                f"account {account.id!r} has no SMTP host; set its host and port"
            )
        mode = tls_mode(account, self.settings.implicit_tls_ports)
        context = await self.tls_context() if mode is not TlsMode.PLAIN else None
        smtp = aiosmtplib.SMTP(
            hostname=account.host,
            port=account_port(account),
            local_hostname=await self.local_hostname(),
            timeout=self.settings.command_timeout,
            use_tls=mode is TlsMode.IMPLICIT,
            start_tls=False,
            tls_context=context,
        )
        stage: Stage = "connect"
        try:
            await smtp.connect(timeout=self.settings.connect_timeout)
            stage = "ehlo"
            await self._greet(smtp)
            if mode in (TlsMode.STARTTLS_REQUIRED, TlsMode.STARTTLS_IF_OFFERED):
                stage = "starttls"
                await self._starttls(smtp, account, required=mode is TlsMode.STARTTLS_REQUIRED)
            if account.user and account.password:
                stage = "login"
                await self._login(smtp, account)
        except BaseException as exc:
            smtp.close()
            error = to_send_error(
                exc,
                server=server_name(account),
                stage=stage,
                timeout=self._timeout_of(stage),
                user=account.user,
            )
            if error is None or error is exc:
                raise
            raise error from exc
        return smtp

    def _timeout_of(self, stage: Stage) -> float:
        return (
            self.settings.connect_timeout if stage == "connect" else self.settings.command_timeout
        )

    async def _greet(self, smtp: aiosmtplib.SMTP) -> None:
        """EHLO, falling back to HELO for servers that refuse ESMTP."""
        try:
            await smtp.ehlo(timeout=self.settings.command_timeout)
        except aiosmtplib.SMTPHeloError:
            if not smtp.is_connected:
                raise
            await smtp.helo(timeout=self.settings.command_timeout)

    async def _starttls(self, smtp: aiosmtplib.SMTP, account: Account, *, required: bool) -> None:
        if not smtp.supports_extension("starttls"):
            if required:
                raise PermanentSendError(
                    f"{server_name(account)} does not offer STARTTLS, but account "
                    f"{account.id!r} requires TLS (use_tls true); use the server's TLS port, or "
                    "set use_tls to null (TLS when offered) or false"
                )
            return
        await smtp.starttls(timeout=self.settings.command_timeout)
        # RFC 3207: what the server said before TLS is forgotten; ask again over TLS.
        await self._greet(smtp)

    async def _login(self, smtp: aiosmtplib.SMTP, account: Account) -> None:
        assert account.user is not None and account.password is not None
        if not smtp.supports_extension("auth"):
            raise PermanentSendError(
                f"{server_name(account)} does not offer AUTH, but account {account.id!r} has "
                "a user and password; check the account's host, port and use_tls, or remove "
                "its credentials if the server relays without login"
            )
        await smtp.login(account.user, account.password, timeout=self.settings.command_timeout)
