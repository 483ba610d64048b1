"""The database layer: engine, core schema, migrations and repositories.

Nothing outside this package imports ``databases`` or writes SQL; the kernel builds one
``Database`` per app, applies migrations at startup, and hands ``Repos`` to entities and the
dispatcher.
"""

from __future__ import annotations

import logging

from .engine import Database, set_write_lane
from .migrate import MigrationState, apply_migrations, core_migrations, migration_status
from .repos import Repos

__all__ = [
    "Database",
    "MigrationState",
    "Repos",
    "apply_migrations",
    "core_migrations",
    "migration_status",
    "set_write_lane",
]


DRIVER_LOGGERS = ("databases", "aiosqlite", "asyncpg")
"""Loggers that write every statement with its bound values (passwords, tokens) at DEBUG."""

# No secret may reach a log: the drivers' statement logs stay off even when the
# service runs at DEBUG. An operator who really wants them can lower the level explicitly.
for _name in DRIVER_LOGGERS:
    logging.getLogger(_name).setLevel(logging.INFO)
