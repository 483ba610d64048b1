"""Parsing the MAILPROXY_DB setting into driver URLs."""

from __future__ import annotations

import os

import pytest

from mailproxy_core.db.engine import Database
from mailproxy_core.db.url import mask_password, parse_database_setting
from mailproxy_core.errors import ConfigurationError


@pytest.mark.parametrize(
    ("setting", "path"),
    [
        ("/var/lib/mp/queue.db", "/var/lib/mp/queue.db"),
        ("sqlite:////var/lib/mp/queue.db", "/var/lib/mp/queue.db"),
        ("sqlite+aiosqlite:////var/lib/mp/queue.db", "/var/lib/mp/queue.db"),
        ("/srv/with space/q.db", "/srv/with space/q.db"),
    ],
)
def test_sqlite_settings_become_absolute_aiosqlite_urls(setting: str, path: str) -> None:
    target = parse_database_setting(setting)
    assert target.dialect == "sqlite"
    assert target.path == path
    assert target.url.startswith("sqlite+aiosqlite:////")
    assert target.display_url == target.url


@pytest.mark.parametrize("setting", ["./mailproxy.db", "mailproxy.db", "sqlite:///mailproxy.db"])
def test_relative_sqlite_paths_resolve_against_the_working_directory(setting: str) -> None:
    target = parse_database_setting(setting)
    assert target.path == os.path.join(os.getcwd(), "mailproxy.db")


@pytest.mark.parametrize(
    "setting",
    [
        "postgresql://mp:s3cret@db.example:5433/mail",
        "postgres://mp:s3cret@db.example:5433/mail",
        "postgresql+asyncpg://mp:s3cret@db.example:5433/mail",
    ],
)
def test_postgres_settings_become_asyncpg_urls(setting: str) -> None:
    target = parse_database_setting(setting)
    assert target.dialect == "postgresql"
    assert target.url == "postgresql+asyncpg://mp:s3cret@db.example:5433/mail"
    assert target.display_url == "postgresql://mp:***@db.example:5433/mail"
    assert target.schema is None


def test_postgres_parameters_are_taken_out_of_the_driver_url() -> None:
    target = parse_database_setting(
        "postgresql://mp:pw@h/mail?schema=tenant_a&min_size=2&max_size=4&sslmode=require"
    )
    assert target.url == "postgresql+asyncpg://mp:pw@h/mail"
    assert target.display_url == "postgresql://mp:***@h/mail?schema=tenant_a"
    assert (target.schema, target.pool_min_size, target.pool_max_size) == ("tenant_a", 2, 4)
    assert target.ssl == "require"


def test_database_exposes_dialect_and_masked_url() -> None:
    db = Database.from_setting("postgres://mp:pw@h/mail?schema=s1")
    assert db.dialect == "postgresql"
    assert db.schema == "s1"
    assert "pw" not in db.display_url and "pw" not in repr(db)
    assert db.url == "postgresql+asyncpg://mp:pw@h/mail"


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (":memory:", "in-memory"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite:///q.db?mode=ro", "no query parameters"),
        ("sqlite://host/q.db", "no host"),
        ("mysql://u:pw@h/db", "unsupported database scheme"),
        ("postgresql://u:pw@h/db?sslmod=require", "unsupported parameter(s) sslmod"),
        ("postgresql://u:pw@h/db?schema=bad-name", "invalid schema name"),
        ("postgresql://u:pw@h/db?schema=pg_catalog", "invalid schema name"),
        ("postgresql://u:pw@h/db?ssl=maybe", "invalid ssl mode"),
        ("postgresql://u:pw@h/db?max_size=many", "max_size must be an integer"),
        ("postgresql://u:pw@h/db?max_size=0", "at least 1"),
        ("postgresql://u:pw@h/db?min_size=5&max_size=2", "larger than max_size"),
    ],
)
def test_bad_settings_are_configuration_errors(setting: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Database.from_setting(setting)
    assert fragment in str(caught.value)
    assert "pw@" not in str(caught.value)


def test_mask_password_leaves_urls_without_password_alone() -> None:
    assert mask_password("postgresql://u@h/db") == "postgresql://u@h/db"
    assert mask_password("postgresql://u:p%40ss@h:1/db") == "postgresql://u:***@h:1/db"
