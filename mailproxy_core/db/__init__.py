"""The database layer: engine, core schema, migrations and repositories.

Nothing outside this package imports ``databases`` or writes SQL; the kernel builds one
``Database`` per app, applies migrations at startup, and hands ``Repos`` to entities and the
dispatcher.
"""

from __future__ import annotations

from .engine import Database
from .migrate import MigrationState, apply_migrations, core_migrations, migration_status
from .repos import Repos

__all__ = [
    "Database",
    "MigrationState",
    "Repos",
    "apply_migrations",
    "core_migrations",
    "migration_status",
]
