"""Repositories: the only code that writes SQL (STYLE.md §2).

Each repository wraps one table (or one aggregate) and speaks in Python values: JSON columns are
decoded, secrets are left to the caller (entities encrypt before writing). ``Repos`` gathers them
for the kernel (``MailProxy.repos``).
"""

from __future__ import annotations

from ..engine import Database
from .instance import InstanceRepo
from .tenants import TenantsRepo

__all__ = ["InstanceRepo", "Repos", "TenantsRepo"]


class Repos:
    """Every repository, built on one ``Database``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.instance = InstanceRepo(db)
        self.tenants = TenantsRepo(db)
