"""Repositories: the only code that writes SQL (the project's style guide).

Each repository wraps one table (or one aggregate) and speaks in Python values: JSON columns are
decoded, secrets are left to the caller (entities encrypt before writing). ``Repos`` gathers them
for the kernel (``MailProxy.repos``).
"""

from __future__ import annotations

from ..engine import Database
from .accounts import AccountsRepo
from .command_log import CommandLogRepo
from .events import EventsRepo
from .instance import InstanceRepo
from .messages import MessagesRepo
from .queue import QueueRepo
from .receipt_leases import ReceiptLeasesRepo
from .receipts import ReceiptsRepo
from .storages import StoragesRepo
from .sync_state import SyncStateRepo
from .tenants import TenantsRepo

__all__ = [
    "AccountsRepo",
    "CommandLogRepo",
    "EventsRepo",
    "InstanceRepo",
    "MessagesRepo",
    "QueueRepo",
    "ReceiptLeasesRepo",
    "ReceiptsRepo",
    "Repos",
    "StoragesRepo",
    "SyncStateRepo",
    "TenantsRepo",
]


class Repos:
    """Every repository, built on one ``Database``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.instance = InstanceRepo(db)
        self.tenants = TenantsRepo(db)
        self.accounts = AccountsRepo(db)
        self.storages = StoragesRepo(db)
        self.messages = MessagesRepo(db)
        self.events = EventsRepo(db)
        self.command_log = CommandLogRepo(db)
        self.queue = QueueRepo(db)
        self.sync_state = SyncStateRepo(db)
        self.receipts = ReceiptsRepo(db)
        self.receipt_leases = ReceiptLeasesRepo(db)
