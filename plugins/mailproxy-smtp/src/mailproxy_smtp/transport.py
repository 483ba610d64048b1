"""The ``smtp`` transport: sends one message through a pooled session of the account's server.

What is retried here, transparently and once: a *reused* session that turns out to be dead
(the server dropped it, or answered 421 "closing") before DATA was sent. Nothing of the message
has reached the server then, so a fresh session repeats the transaction. Any failure after DATA
started is reported (transient, unconfirmed) and never silently resent: the server may have
taken the message. Everything else is raised as ``TransientSendError`` or ``PermanentSendError``
for the kernel's retry policy.
"""

from __future__ import annotations

import logging

import aiosmtplib

from mailproxy_core import Account, Envelope, MailProxy, PoolState, SendResult

from .classify import to_send_error
from .connect import Connector, server_name
from .pool import Lease, SessionPool
from .settings import SmtpSettings
from .transaction import SERVICE_CLOSING, Progress, check_envelope, deliver

log = logging.getLogger(__name__)


class SmtpTransport:
    """Delivers messages over SMTP with pooled sessions (see the plugin's README).

    ``send`` raises ``TransientSendError`` (4xx, timeouts, connection and TLS trouble) or
    ``PermanentSendError`` (5xx, every recipient refused, bad credentials, TLS required but not
    offered); both carry ``smtp_code`` when a server reply decided. ``aclose`` closes the pool.
    """

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.connector = Connector(settings)
        self.pool = SessionPool(settings, self.connector.open)

    @classmethod
    def from_kernel(cls, mp: MailProxy) -> SmtpTransport:
        """The factory registered with ``TransportSpec``: reads ``[plugins.smtp]``."""
        settings = mp.plugin_settings("smtp")
        assert isinstance(settings, SmtpSettings)
        return cls(settings)

    async def send(self, account: Account, envelope: Envelope, mime_bytes: bytes) -> SendResult:
        """Send ``mime_bytes`` to ``envelope.recipients`` through the account's server.

        Returns the accepted recipients and, when some (not all) were refused, each refused one
        with its ``<code> <text>`` reply; the message then counts as sent.
        """
        check_envelope(envelope)
        extra = {"message_id": envelope.message_id, "tenant_id": account.tenant_id}
        async with self.pool.lease(account) as lease:
            retried = False
            while True:
                progress = Progress()
                try:
                    result = await deliver(
                        lease.smtp, envelope, mime_bytes, self.settings, progress
                    )
                except Exception as exc:
                    if not retried and is_stale_session(exc, progress, lease):
                        log.info(
                            "pooled SMTP session to %s was closed by the server; reconnecting",
                            server_name(account),
                            extra=extra,
                        )
                        retried = True
                        await lease.reconnect()
                        continue
                    lease.reusable = await self._reset(lease)
                    error = to_send_error(
                        exc,
                        server=server_name(account),
                        stage=progress.stage,
                        timeout=self._timeout_of(progress),
                        user=account.user,
                    )
                    if error is None or error is exc:
                        raise
                    raise error from exc
                if result.refused:
                    log.info(
                        "%s refused %d of %d recipients",
                        server_name(account),
                        len(result.refused),
                        len(result.refused) + len(result.accepted),
                        extra=extra,
                    )
                return result

    def pool_state(self, account: Account) -> PoolState:
        """This process's pooled sessions for the account's server (``MailProxy.pool_state``;
        accounts sharing host, port and user share them)."""
        return self.pool.state_of(account)

    async def aclose(self) -> None:
        """Close every pooled session (awaited by the kernel at shutdown)."""
        await self.pool.aclose()

    def _timeout_of(self, progress: Progress) -> float:
        if progress.stage == "data":
            return self.settings.data_timeout
        return self.settings.command_timeout

    async def _reset(self, lease: Lease) -> bool:
        """RSET after a failed transaction; whether the session can serve another send."""
        smtp = lease.smtp
        if not smtp.is_connected:
            return False
        try:
            reply = await smtp.rset(timeout=self.settings.command_timeout)
        except (aiosmtplib.SMTPException, OSError):
            return False
        return reply.code == 250


def is_stale_session(error: Exception, progress: Progress, lease: Lease) -> bool:
    """Whether a failure means a reused session had died before any of the message was sent."""
    if not lease.reused or progress.stage not in ("mail", "rcpt"):
        return False
    if isinstance(error, (aiosmtplib.SMTPServerDisconnected, ConnectionError)):
        return True
    return isinstance(error, aiosmtplib.SMTPResponseException) and error.code == SERVICE_CLOSING
