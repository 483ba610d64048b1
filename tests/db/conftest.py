"""Database fixtures for the db tests (the same ones ``mailproxy_core.testing`` offers)."""

from __future__ import annotations

from mailproxy_core.testing.db import database, db_url, pg_server_url

__all__ = ["database", "db_url", "pg_server_url"]
