"""Input shapes and checks shared by the tenants, accounts and storages entities (docs/api.md).

The JSON objects a client sends (``client_auth``, ``rate_limits``, ``large_file_config``) are
pydantic models used as parameter types, so the generated route validates them (422 naming
``client_auth.bearer.token`` and the like) and OpenAPI documents them. Checks that need more
than a type (an id's characters, a URL's scheme) collect their findings in :class:`FieldErrors`,
which raises one 422 naming every bad field.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from ..api.errors import invalid_input

MAX_ID_LENGTH = 128
_ID_FORBIDDEN = re.compile(r"[\s/\\\x00-\x1f\x7f]")
_PATH_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f]")


class FieldErrors:
    """Collects ``{"field", "message", "type"}`` entries; :meth:`raise_if_any` raises one 422."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def add(self, field: str, message: str, kind: str = "value_error") -> None:
        """Record that ``field`` is invalid; ``message`` never quotes a secret value."""
        self.entries.append({"field": field, "message": message, "type": kind})

    def extend(self, entries: list[dict[str, Any]]) -> None:
        """Record entries built elsewhere (same shape as :meth:`add` makes)."""
        self.entries.extend(entries)

    def raise_if_any(self) -> None:
        """Raise ``InvalidInput`` (422) listing every recorded field, if any was recorded."""
        if self.entries:
            raise invalid_input(self.entries)


def check_identifier(errors: FieldErrors, field: str, value: str) -> None:
    """An id chosen by the client: 1-128 characters, no whitespace, ``/``, ``\\`` or controls.

    Ids travel in query strings, CLI arguments, metric labels and file names of plugins, so
    characters that break any of those are refused up front.
    """
    if not value:
        errors.add(field, "must not be empty", "string_too_short")
    elif len(value) > MAX_ID_LENGTH:
        errors.add(field, f"must be at most {MAX_ID_LENGTH} characters", "string_too_long")
    elif _ID_FORBIDDEN.search(value):
        errors.add(field, "must not contain whitespace, '/', '\\' or control characters")


def is_http_url(value: str) -> bool:
    """Whether ``value`` is an absolute ``http://`` or ``https://`` URL with a host."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def check_http_url(errors: FieldErrors, field: str, value: str | None) -> None:
    """``value`` (when set) must be an absolute http(s) URL."""
    if value is not None and not is_http_url(value):
        errors.add(field, "must be an absolute http:// or https:// URL with a host", "url_parsing")


def check_url_path(errors: FieldErrors, field: str, value: str | None) -> None:
    """``value`` (when set) must be a path starting with ``/`` (appended to the base URL)."""
    if value is not None and (not value.startswith("/") or _PATH_FORBIDDEN.search(value)):
        errors.add(field, "must be a path starting with '/', without spaces", "value_error")


def check_positive(errors: FieldErrors, field: str, value: int | None) -> None:
    """``value`` (when set) must be greater than 0.

    Endpoint parameters cannot carry ``Annotated`` constraints (the signature is read with
    ``typing.get_type_hints``, which drops them), so numeric ranges are checked here.
    """
    if value is not None and value <= 0:
        errors.add(field, "Input should be greater than 0", "greater_than")


def check_port(errors: FieldErrors, field: str, value: int | None) -> None:
    """``value`` (when set) must be a TCP port, 1-65535."""
    if value is not None and not 1 <= value <= 65535:
        errors.add(field, "must be a TCP port between 1 and 65535", "less_than_equal")


def blank_to_none(value: str | None) -> str | None:
    """``None`` for ``None`` or an empty string, else ``value``."""
    return value if value else None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BearerAuth(_Strict):
    """``Authorization: Bearer <token>`` on requests to the client application."""

    method: Literal["bearer"]
    token: str = Field(min_length=1, description="the bearer token (write-only)")


class BasicAuth(_Strict):
    """HTTP Basic authentication on requests to the client application."""

    method: Literal["basic"]
    user: str = Field(min_length=1, description="the user name")
    password: str = Field(min_length=1, description="the password (write-only)")


class NoAuth(_Strict):
    """No authentication on requests to the client application."""

    method: Literal["none"]


class ClientAuth(
    RootModel[Annotated[BearerAuth | BasicAuth | NoAuth, Field(discriminator="method")]]
):
    """``{"method": "bearer", "token"}`` | ``{"method": "basic", "user", "password"}`` |
    ``{"method": "none"}``: how the service authenticates to the client application.

    A root model rather than a bare ``Annotated`` union because endpoint signatures are read
    with ``typing.get_type_hints``, which drops ``Annotated`` metadata (the discriminator).
    """

    def stored(self) -> dict[str, Any]:
        """The plain JSON object of the chosen method (secrets still in clear)."""
        return self.root.model_dump()


PositiveInt = Annotated[int, Field(gt=0)]
"""An integer greater than 0 (inside the models above; see :func:`check_positive`)."""


class RateLimits(_Strict):
    """Sending limits across all accounts of a tenant; omitted = unlimited."""

    per_minute: PositiveInt | None = Field(None, description="messages per minute at most")
    per_hour: PositiveInt | None = Field(None, description="messages per hour at most")
    per_day: PositiveInt | None = Field(None, description="messages per day at most")

    def stored(self) -> dict[str, int] | None:
        """The JSON stored for the tenant: only the limits set, ``None`` when there are none."""
        values = self.model_dump(exclude_none=True)
        return values or None


class LargeFileConfig(_Strict):
    """What to do with attachments larger than ``max_size_mb`` (docs/attachments.md)."""

    enabled: bool = Field(description="whether the size limit applies")
    max_size_mb: Annotated[
        int | float, Field(gt=0, description="the limit per fetched attachment, in MiB")
    ]
    action: Literal["warn", "reject", "rewrite"] = Field(
        description="over the limit: `warn` (sent with the file, logged), `reject` (the message "
        "ends in error) or `rewrite` (the file is stored and replaced by a download link)"
    )
    storage_url: str | None = Field(
        None, min_length=1, description="where rewritten files are stored (needed by rewrite)"
    )
    public_base_url: str | None = Field(
        None, description="http(s) base URL of the download links of rewritten files"
    )
    file_ttl_days: PositiveInt | None = Field(
        None, description="days a rewritten file's link stays valid (default 7)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> LargeFileConfig:
        if self.action == "rewrite" and self.storage_url is None:
            raise ValueError("storage_url is required when action is 'rewrite'")
        if self.public_base_url is not None and not is_http_url(self.public_base_url):
            raise ValueError("public_base_url must be an absolute http:// or https:// URL")
        return self

    def stored(self) -> dict[str, Any]:
        """The JSON stored for the tenant (unset optional keys left out)."""
        return self.model_dump(exclude_none=True)
