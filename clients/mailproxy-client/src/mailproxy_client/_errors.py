"""The one exception type of the client."""

from __future__ import annotations

from typing import Any


class MailProxyError(Exception):
    """A request the service refused or could not answer.

    Attributes:
        status: the HTTP status (0 when the service could not be reached at all).
        code: the machine-readable error code of the answer (``not_found``, ``unauthorized``,
            ``connection_error`` ...).
        detail: the human-readable explanation.
        errors: for invalid input (422), one entry per bad field, else ``None``.
        body: the decoded error body as the service sent it.
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"HTTP {status} {code}: {detail}" if status else detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.body = body
