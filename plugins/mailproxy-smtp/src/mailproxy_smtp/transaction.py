"""One SMTP mail transaction on a ready session: MAIL FROM, RCPT TO for each recipient, DATA.

The transaction is driven command by command (not with ``SMTP.sendmail``) so that the transport
knows which step failed (only a failure before DATA may be retried on a fresh session), applies
``data_timeout`` to DATA alone, and reports each refused recipient with its own reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiosmtplib

from mailproxy_core import Envelope, PermanentSendError, SendResult

from .classify import Stage, all_refused_error, reply_text
from .settings import SmtpSettings

_QUOTED_LOCAL_PART = re.compile(r'^"(?:[^"\\\r\n]|\\.)*"')
_UNSAFE_IN_ADDRESS = re.compile(r'[\s<>"\x00-\x1f\x7f]')

SERVICE_CLOSING = 421
"""Reply code of a server closing the session: about the session, not about the recipient."""


@dataclass(slots=True)
class Progress:
    """How far a transaction got; read by the transport when it fails."""

    stage: Stage = "mail"


def check_envelope(envelope: Envelope) -> None:
    """Refuse an envelope that cannot be put on an SMTP command line, before connecting.

    Raises:
        PermanentSendError: no recipients, or an address with spaces, angle brackets, quotes
            (outside a quoted local part) or control characters, which could smuggle commands.
    """
    if not envelope.recipients:
        raise PermanentSendError("the message has no recipients; add at least one to, cc or bcc")
    if not all(envelope.recipients):
        raise PermanentSendError("an empty recipient address cannot be sent; remove it")
    addresses = [("sender", envelope.sender)] + [("recipient", r) for r in envelope.recipients]
    for role, address in addresses:
        if _UNSAFE_IN_ADDRESS.search(_QUOTED_LOCAL_PART.sub("", address, count=1)):
            raise PermanentSendError(
                f"invalid {role} address {address!r}: it contains spaces, angle brackets, "
                "quotes or control characters; give the bare address (user@example.com)"
            )


def mail_parameters(
    smtp: aiosmtplib.SMTP, envelope: Envelope, mime_bytes: bytes
) -> tuple[list[str], str]:
    """ESMTP parameters of MAIL FROM and the encoding of the addresses.

    Adds ``SIZE`` when the server announces it (so it can refuse an oversized message before the
    upload), ``BODY=8BITMIME`` for 8-bit content when offered, and ``SMTPUTF8`` for addresses that
    are not ASCII.

    Raises:
        PermanentSendError: an address is not ASCII and the server does not offer SMTPUTF8.
    """
    options: list[str] = []
    encoding = "ascii"
    addresses = (envelope.sender, *envelope.recipients)
    if not all(address.isascii() for address in addresses):
        if not smtp.supports_extension("smtputf8"):
            raise PermanentSendError(
                "the envelope has non-ASCII addresses and the server does not offer SMTPUTF8; "
                "use ASCII (punycode) addresses or a server with SMTPUTF8"
            )
        options.append("SMTPUTF8")
        encoding = "utf-8"
    if not mime_bytes.isascii() and smtp.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")
    if smtp.supports_extension("size"):
        # RFC 1870 counts the message as transmitted: bare LFs become CRLF.
        size = len(mime_bytes) + mime_bytes.count(b"\n") - mime_bytes.count(b"\r\n")
        options.append(f"SIZE={size}")
    return options, encoding


async def deliver(
    smtp: aiosmtplib.SMTP,
    envelope: Envelope,
    mime_bytes: bytes,
    settings: SmtpSettings,
    progress: Progress,
) -> SendResult:
    """Run one transaction; ``progress.stage`` names the step running when it raises.

    Returns the accepted recipients, each refused one with its ``<code> <text>`` reply, and the
    server's final reply. Raises the aiosmtplib exception of a failed step unchanged, or a send
    error when every recipient was refused.
    """
    options, encoding = mail_parameters(smtp, envelope, mime_bytes)
    progress.stage = "mail"
    await smtp.mail(
        envelope.sender, options=options, encoding=encoding, timeout=settings.command_timeout
    )
    progress.stage = "rcpt"
    accepted: list[str] = []
    refused: dict[str, tuple[int, str]] = {}
    for rcpt in dict.fromkeys(envelope.recipients):
        try:
            await smtp.rcpt(rcpt, encoding=encoding, timeout=settings.command_timeout)
        except aiosmtplib.SMTPRecipientRefused as exc:
            if exc.code == SERVICE_CLOSING:
                raise
            refused[rcpt] = (exc.code, exc.message)
        else:
            accepted.append(rcpt)
    if not accepted:
        raise all_refused_error(refused)
    progress.stage = "data"
    reply = await smtp.data(mime_bytes, timeout=settings.data_timeout)
    return SendResult(
        accepted=tuple(accepted),
        refused={rcpt: reply_text(code, text) for rcpt, (code, text) in refused.items()},
        response=reply_text(reply.code, reply.message),
    )
