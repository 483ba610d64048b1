"""Database fixtures: run a test against SQLite and against a real PostgreSQL.

* ``db_url`` — parametrized ``sqlite`` (a file in ``tmp_path``) and ``postgresql``; the PostgreSQL
  URL carries ``?schema=<unique name>``, so every test gets its own schema (created on connect,
  dropped at teardown) and concurrent test runs never see each other's tables.
* ``database`` — a connected ``Database`` for ``db_url`` with the core migrations applied.
* ``pg_server_url`` — the PostgreSQL server URL itself (no schema), for tests that only make sense
  on PostgreSQL.

The server comes from ``MAILPROXY_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``). When it cannot be reached, the PostgreSQL variants
are skipped with "PostgreSQL is not reachable at <url>"; SQLite variants always run.

The async helpers (``postgres_test_schema``, ``postgres_unreachable_reason``, ``drop_schema``) are
public so that fixtures with other scopes can be built from them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import pytest_asyncio

from ..db.engine import Database
from ..db.migrate import apply_migrations, core_migrations
from ..db.url import mask_password
from ..errors import ConfigurationError

PG_URL_ENV = "MAILPROXY_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
TEST_SCHEMA_PREFIX = "mp_test_"

_reachability: dict[str, str | None] = {}


def postgres_server_url() -> str:
    """The PostgreSQL server used by tests: ``$MAILPROXY_TEST_PG_URL`` or the default."""
    return os.environ.get(PG_URL_ENV) or DEFAULT_PG_URL


def url_with_schema(url: str, schema: str) -> str:
    """``url`` with its ``schema`` query parameter set to ``schema``."""
    parts = urlsplit(url)
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    params.append(("schema", schema))
    return parts._replace(query=urlencode(params)).geturl()


async def postgres_unreachable_reason(url: str) -> str | None:
    """``None`` if PostgreSQL answers at ``url``, else the skip reason (cached per process)."""
    if url not in _reachability:
        db = Database.from_setting(url, pool_min_size=1, pool_max_size=1, connect_timeout=5.0)
        try:
            await db.connect()
        except ConfigurationError as exc:
            cause = exc.__cause__ or exc
            _reachability[url] = (
                f"PostgreSQL is not reachable at {mask_password(url)}: "
                f"{type(cause).__name__}: {cause}"
            )
        else:
            _reachability[url] = None
        finally:
            await db.disconnect()
    return _reachability[url]


async def require_postgres(url: str | None = None) -> str:
    """The server URL, or skip the calling test when PostgreSQL is not reachable there."""
    url = url or postgres_server_url()
    reason = await postgres_unreachable_reason(url)
    if reason is not None:
        pytest.skip(reason)
    return url


async def drop_schema(server_url: str, schema: str) -> None:
    """``DROP SCHEMA <schema> CASCADE`` on the server (no error if it does not exist)."""
    db = Database.from_setting(server_url, pool_min_size=1, pool_max_size=1)
    await db.connect()
    try:
        await db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await db.disconnect()


@asynccontextmanager
async def postgres_test_schema(server_url: str | None = None) -> AsyncIterator[str]:
    """A PostgreSQL URL confined to a new, uniquely named schema, dropped on exit.

    Skips the calling test when the server is not reachable.
    """
    server = await require_postgres(server_url)
    schema = TEST_SCHEMA_PREFIX + uuid.uuid4().hex[:16]
    try:
        yield url_with_schema(server, schema)
    finally:
        await drop_schema(server, schema)


@pytest_asyncio.fixture
async def pg_server_url() -> str:
    """The PostgreSQL server URL (no schema); skips the test when it is not reachable."""
    return await require_postgres()


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database URL for this test alone: a SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        yield str(tmp_path / "mailproxy.db")
        return
    async with postgres_test_schema() as url:
        yield url


@pytest_asyncio.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    """A connected ``Database`` on ``db_url`` with the core migrations applied."""
    db = Database.from_setting(db_url)
    await db.connect()
    try:
        await apply_migrations(db, core_migrations())
        yield db
    finally:
        await db.disconnect()
