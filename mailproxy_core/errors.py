"""The one error hierarchy of mail-proxy.

Every error a user can cause maps to an HTTP status and a machine code (docs/api.md): the API error
handler reads ``status`` and ``code`` from the exception, so raising the right class is all an
endpoint has to do. Messages say what was wrong and what to do about it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class MailproxyError(Exception):
    """Base class of every error mail-proxy raises on purpose."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body of docs/api.md."""
        return {"detail": self.detail, "code": self.code}


class ConfigurationError(MailproxyError):
    """Bad settings: startup stops with a message naming the setting and the accepted values."""

    code = "configuration_error"


class PluginError(MailproxyError):
    """A plugin is broken: bad hook implementation, duplicate registered name, failed import."""

    code = "plugin_error"


class SendError(MailproxyError):
    """A message could not be handed to the transport."""

    code = "send_error"

    def __init__(
        self,
        detail: str,
        *,
        smtp_code: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(detail, code=code)
        self.smtp_code = smtp_code


class TransientSendError(SendError):
    """A failure worth retrying later (4xx, timeouts, connection problems)."""

    code = "transient_send_error"


class PermanentSendError(SendError):
    """A failure that will not go away by retrying (5xx, refused recipients, bad credentials)."""

    code = "permanent_send_error"


class RateLimitedError(SendError):
    """The transport or the remote side asks us to slow down; not counted as a retry."""

    code = "rate_limited"

    def __init__(self, detail: str, *, retry_at: float | None = None) -> None:
        super().__init__(detail)
        self.retry_at = retry_at


class AttachmentError(MailproxyError):
    """An attachment could not be fetched; ``transient`` decides between retry and failure."""

    code = "attachment_error"

    def __init__(self, detail: str, *, transient: bool = False) -> None:
        super().__init__(detail)
        self.transient = transient


class AuthError(MailproxyError):
    """Missing or invalid credentials (HTTP 401)."""

    status = 401
    code = "unauthorized"


class Forbidden(AuthError):
    """Valid credentials without the right to do this (HTTP 403)."""

    status = 403
    code = "forbidden"


class NotFound(MailproxyError):
    """An unknown route or object id (HTTP 404); the message names the entity and the id."""

    status = 404
    code = "not_found"


class Conflict(MailproxyError):
    """The request conflicts with the current state (HTTP 409)."""

    status = 409
    code = "conflict"


class InvalidInput(MailproxyError):
    """A client sent something invalid (HTTP 422); ``errors`` lists each bad field."""

    status = 422
    code = "invalid_input"

    def __init__(
        self, detail: str, *, errors: Sequence[dict[str, Any]] = (), code: str | None = None
    ) -> None:
        super().__init__(detail, code=code)
        self.errors = list(errors)

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        if self.errors:
            body["errors"] = self.errors
        return body
