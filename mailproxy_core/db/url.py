"""Turning the ``MAILPROXY_DB`` setting into something the drivers can open.

Accepted forms (docs/configuration.md):

- a plain SQLite path: ``./mailproxy.db``, ``/var/lib/mail-proxy/queue.db``;
- ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or the same with ``sqlite+aiosqlite``;
- ``postgresql://user:pass@host:5432/dbname`` (also ``postgres://`` and
  ``postgresql+asyncpg://``), with optional query parameters:

  ``schema``    a PostgreSQL schema that holds every table of this instance (created on connect);
  ``min_size``  / ``max_size``: connection pool bounds;
  ``ssl``       (or libpq's ``sslmode``): ``disable``, ``prefer``, ``require``, ``verify-ca``,
                ``verify-full``, ``true`` or ``false``.

Anything else is refused rather than silently ignored: an unknown parameter such as a misspelt
``sslmode`` would otherwise leave a connection unencrypted without anybody noticing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from ..errors import ConfigurationError

Dialect = Literal["sqlite", "postgresql"]

SQLITE_SCHEMES = frozenset({"sqlite", "sqlite+aiosqlite"})
POSTGRES_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+asyncpg"})
POSTGRES_PARAMETERS = ("schema", "min_size", "max_size", "ssl", "sslmode")
SSL_MODES = frozenset(
    {"disable", "allow", "prefer", "require", "verify-ca", "verify-full", "true", "false"}
)

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_ACCEPTED = (
    "a SQLite file path (./mailproxy.db), sqlite:///path.db, or "
    "postgresql://user:password@host:port/database[?schema=name]"
)


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """A parsed database setting.

    ``url`` is the driver URL handed to ``databases`` (password included, mail-proxy's own
    parameters removed); ``display_url`` is safe to log (password masked). ``path`` is the SQLite
    file; ``schema`` and the pool bounds apply to PostgreSQL only.
    """

    dialect: Dialect
    url: str
    display_url: str
    path: str | None = None
    schema: str | None = None
    ssl: str | None = None
    pool_min_size: int | None = None
    pool_max_size: int | None = None


def parse_database_setting(value: str) -> DatabaseTarget:
    """Parse the ``MAILPROXY_DB`` setting.

    Raises ``ConfigurationError`` naming the (masked) value and the accepted forms when the
    value is empty, uses an unknown scheme, names in-memory SQLite, or carries a bad parameter.
    """
    value = value.strip()
    if not value:
        raise ConfigurationError(f"MAILPROXY_DB is empty; use {_ACCEPTED}")
    if "://" not in value:
        return _sqlite_target(value, original=value)
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme in SQLITE_SCHEMES:
        if parts.netloc:
            raise ConfigurationError(
                f"MAILPROXY_DB {value!r}: a SQLite URL has no host; write sqlite:///relative.db "
                "or sqlite:////absolute/path.db"
            )
        if parts.query:
            raise ConfigurationError(
                f"MAILPROXY_DB {value!r}: SQLite URLs take no query parameters"
            )
        return _sqlite_target(parts.path[1:] if parts.path.startswith("/") else parts.path, value)
    if scheme in POSTGRES_SCHEMES:
        return _postgres_target(value)
    raise ConfigurationError(
        f"MAILPROXY_DB {mask_password(value)!r}: unsupported database scheme {parts.scheme!r}; "
        f"use {_ACCEPTED}"
    )


def mask_password(url: str) -> str:
    """``url`` with the password (if any) replaced by ``***``, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{hostinfo}").geturl()


def _sqlite_target(path: str, original: str) -> DatabaseTarget:
    path = unquote(path)
    if not path or path == ":memory:" or path.startswith("file:"):
        raise ConfigurationError(
            f"MAILPROXY_DB {original!r}: in-memory or URI-style SQLite databases are not "
            "supported (every connection would see its own database); give a file path"
        )
    absolute = os.path.abspath(os.path.expanduser(path))
    url = "sqlite+aiosqlite:///" + quote(absolute)
    return DatabaseTarget(dialect="sqlite", url=url, display_url=url, path=absolute)


def _postgres_target(value: str) -> DatabaseTarget:
    display = mask_password(value)
    parts = urlsplit(value)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(params) - set(POSTGRES_PARAMETERS))
    if unknown:
        raise ConfigurationError(
            f"MAILPROXY_DB {display!r}: unsupported parameter(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(POSTGRES_PARAMETERS)}"
        )
    schema = params.pop("schema", None)
    if schema is not None and (not _SCHEMA_NAME.match(schema) or schema.lower().startswith("pg_")):
        raise ConfigurationError(
            f"MAILPROXY_DB {display!r}: invalid schema name {schema!r}; use letters, digits and "
            "underscores (at most 63, not starting with a digit or 'pg_')"
        )
    ssl = params.pop("ssl", None)
    sslmode = params.pop("sslmode", None)
    if ssl is not None and sslmode is not None and ssl != sslmode:
        raise ConfigurationError(f"MAILPROXY_DB {display!r}: give either ssl or sslmode, not both")
    ssl = ssl if ssl is not None else sslmode
    if ssl is not None and ssl.lower() not in SSL_MODES:
        raise ConfigurationError(
            f"MAILPROXY_DB {display!r}: invalid ssl mode {ssl!r}; accepted: "
            f"{', '.join(sorted(SSL_MODES))}"
        )
    min_size = _pool_bound(params, "min_size", display)
    max_size = _pool_bound(params, "max_size", display)
    if max_size is not None and max_size < 1:
        raise ConfigurationError(f"MAILPROXY_DB {display!r}: max_size must be at least 1")
    if min_size is not None and max_size is not None and min_size > max_size:
        raise ConfigurationError(f"MAILPROXY_DB {display!r}: min_size is larger than max_size")
    url = parts._replace(scheme="postgresql+asyncpg", query="", fragment="").geturl()
    display_query = urlencode({"schema": schema}) if schema else ""
    display_url = mask_password(
        parts._replace(scheme="postgresql", query=display_query, fragment="").geturl()
    )
    return DatabaseTarget(
        dialect="postgresql",
        url=url,
        display_url=display_url,
        schema=schema,
        ssl=ssl.lower() if ssl is not None else None,
        pool_min_size=min_size,
        pool_max_size=max_size,
    )


def _pool_bound(params: dict[str, str], name: str, display: str) -> int | None:
    raw = params.pop(name, None)
    if raw is None:
        return None
    try:
        number = int(raw)
    except ValueError:
        raise ConfigurationError(
            f"MAILPROXY_DB {display!r}: {name} must be an integer, got {raw!r}"
        ) from None
    if number < 0:
        raise ConfigurationError(f"MAILPROXY_DB {display!r}: {name} must not be negative")
    return number
