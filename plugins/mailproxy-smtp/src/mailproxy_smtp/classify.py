"""What an SMTP failure means: transient or permanent, and the text an operator reads.

The transport turns every aiosmtplib failure into ``TransientSendError`` or
``PermanentSendError`` here. Texts of server replies read exactly ``<code> <text>``
(``550 5.1.1 User unknown``); the other texts name the server and the stage that failed.

Rules: 4xx replies, timeouts and connection trouble are transient; 5xx replies are
permanent; all recipients refused is permanent unless one refusal was a 4xx (greylisting answers
at RCPT); an authentication failure is permanent and tells the operator what to check.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Literal

import aiosmtplib

from mailproxy_core import ErrorClass, PermanentSendError, SendError, TransientSendError

CONNECTION_TROUBLE = (
    aiosmtplib.SMTPTimeoutError,
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPConnectError,
)
"""aiosmtplib exceptions that say nothing about the message: worth another try."""

Stage = Literal["connect", "ehlo", "starttls", "login", "noop", "mail", "rcpt", "data"]
"""The step of an SMTP session that failed, named in error texts."""


def reply_text(code: int, message: str) -> str:
    """``<code> <text>`` of a server reply, multi-line replies joined on one line."""
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    return f"{code} {text}".rstrip()


def is_transient_code(code: int) -> bool:
    """Whether a reply code asks to try again later (4xx, or not a valid SMTP code at all)."""
    return not 500 <= code <= 599


def error_for_reply(code: int, message: str, *, suffix: str = "") -> SendError:
    """A send error for a server reply: 4xx (and garbage) transient, 5xx permanent."""
    text = reply_text(code, message) + suffix
    smtp_code = code if 100 <= code <= 599 else None  # aiosmtplib uses -1 for garbled replies
    if is_transient_code(code):
        return TransientSendError(text, smtp_code=smtp_code)
    return PermanentSendError(text, smtp_code=smtp_code)


def all_refused_error(refused: Mapping[str, tuple[int, str]]) -> SendError:
    """The error for a message whose every recipient was refused at RCPT.

    Permanent when every refusal is a 5xx; transient as soon as one is a 4xx, because a retry may
    then reach that recipient. ``smtp_code`` is the first refusal of the deciding kind.
    """
    listing = "; ".join(
        f"{rcpt}: {reply_text(code, text)}" for rcpt, (code, text) in refused.items()
    )
    detail = f"all recipients refused: {listing}"
    transient = [code for code, _text in refused.values() if is_transient_code(code)]
    if transient:
        return TransientSendError(detail, smtp_code=transient[0])
    first = next(iter(refused.values()))[0]
    return PermanentSendError(detail, smtp_code=first)


def login_hint(user: str | None, server: str) -> str:
    """What an operator should check when the server refused the account's credentials."""
    return f" (SMTP login as {user!r} at {server} failed: check the account's user and password)"


def describe_tls_failure(error: ssl.SSLError, server: str) -> str:
    """Text for a failed TLS handshake, with what to do about a certificate problem."""
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = error.verify_message or error.reason or str(error)
        return (
            f"TLS certificate of {server} could not be verified ({reason}); fix the server's "
            "certificate, or trust its CA with the smtp ca_file setting"
        )
    return f"TLS handshake with {server} failed: {error.reason or error}"


def _tls_cause(error: BaseException) -> ssl.SSLError | None:
    """The ``ssl.SSLError`` behind an error, if the chain holds one."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def to_send_error(
    error: BaseException,
    *,
    server: str,
    stage: Stage,
    timeout: float,
    user: str | None = None,
) -> SendError | None:
    """Translate an aiosmtplib, TLS or socket failure into a send error; ``None`` if unknown.

    Args:
        error: what was raised.
        server: ``host:port``, named in texts that are not server replies.
        stage: the SMTP step that was running.
        timeout: the limit that applied to the step, named in timeout texts.
        user: the account's login name, for the authentication hint (never the password).
    """
    if isinstance(error, SendError):
        return error
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return all_refused_error({r.recipient: (r.code, r.message) for r in error.recipients})
    if isinstance(error, aiosmtplib.SMTPResponseException):
        suffix = login_hint(user, server) if stage == "login" and error.code >= 500 else ""
        return error_for_reply(error.code, error.message, suffix=suffix)
    tls = _tls_cause(error)
    if tls is not None:
        return TransientSendError(describe_tls_failure(tls, server))
    if isinstance(error, TimeoutError):
        return TransientSendError(
            f"timed out after {timeout:g} s waiting for {server} during {stage.upper()}"
        )
    if isinstance(error, aiosmtplib.SMTPConnectError) or (
        stage == "connect" and isinstance(error, OSError)
    ):
        message = error.message if isinstance(error, aiosmtplib.SMTPException) else str(error)
        return TransientSendError(f"cannot connect to {server}: {message}")
    if isinstance(error, (aiosmtplib.SMTPServerDisconnected, ConnectionError)):
        unconfirmed = "; the message was sent but not confirmed" if stage == "data" else ""
        return TransientSendError(
            f"connection to {server} lost during {stage.upper()}{unconfirmed}"
        )
    if isinstance(error, aiosmtplib.SMTPException):
        # SMTPNotSupported and the like: the server lacks something this message needs.
        return PermanentSendError(f"{server} cannot take this message: {error.message}")
    return None


def classify_smtp_error(error: BaseException) -> ErrorClass | None:
    """The class of a raw aiosmtplib exception; ``None`` for anything else.

    Used by the ``mailproxy_classify_error`` hook for aiosmtplib exceptions that reach the
    kernel without going through the transport (another plugin using aiosmtplib, say).
    """
    if not isinstance(error, aiosmtplib.SMTPException):
        return None
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        codes = [refusal.code for refusal in error.recipients]
        transient = not codes or any(is_transient_code(code) for code in codes)
        return ErrorClass.TRANSIENT if transient else ErrorClass.PERMANENT
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return ErrorClass.TRANSIENT if is_transient_code(error.code) else ErrorClass.PERMANENT
    if isinstance(
        error,
        (
            aiosmtplib.SMTPTimeoutError,
            aiosmtplib.SMTPServerDisconnected,
            aiosmtplib.SMTPConnectError,
        ),
    ):
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT
